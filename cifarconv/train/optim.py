"""How the weights move: the optimiser's parameter groups, the lr factor per step (or on a
plateau), Page's Nesterov SGD, Adam, and airbench94's lookahead.  The recipe's units are
explained in recipes.py."""

from __future__ import annotations

import torch
from torch import nn


def step_sizes(recipe: dict) -> tuple[float, float]:
    """(torch's lr, torch's weight_decay) of the main parameter group at lr factor 1, from the
    recipe's own units.

    Torch's SGD decays by lr * weight_decay per step, so a group with s times the lr is given
    weight_decay / s: the same decay per step whatever its lr (see `parameter_groups`)."""
    lr, wd, batch = recipe["lr"], recipe["weight_decay"], recipe["batch_size"]
    if recipe["convention"] == "airbench":
        # Nesterov momentum m makes steady steps 1 + 1/(1 - m) times the gradient; airbench divides that out.
        # Its decay per step, wd * batch / kilostep, is lr / kilostep times wd * batch / lr.
        kilostep = 1024 * (1 + 1 / (1 - recipe["momentum"]))
        return lr / kilostep, wd * batch / lr
    if recipe["convention"] == "torch":
        return lr, wd  # torch's own values
    return lr / batch, wd * batch  # per_example: summed loss, so lr / batch; the decay per step is lr * wd


def parameter_groups(model: nn.Module, recipe: dict) -> list[dict]:
    """The trainable BatchNorm parameters (bn_lr_scale x the lr), then every other trainable one.

    A parameter frozen later (the whitening bias) stays in its group: with no gradient, the
    optimisers skip it."""
    lr, weight_decay = step_sizes(recipe)
    bn = [p for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
          for p in m.parameters(recurse=False) if p.requires_grad]
    in_bn = {id(p) for p in bn}
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in in_bn]
    scale = recipe["bn_lr_scale"]
    groups = [dict(params=bn, lr=lr * scale, weight_decay=weight_decay / scale),
              dict(params=other, lr=lr, weight_decay=weight_decay)]
    return [group for group in groups if group["params"]]


def lr_factor(recipe: dict, total_steps: int):
    """The factor LambdaLR multiplies the lr by at step k (counted from 0): piecewise linear
    through (int(knot * total_steps), value), read at k + lr_step_offset, constant past the ends."""
    # int() as airbench94 takes its warm-up steps; the 1e-9 keeps 5/24 of 2328 steps at 485.
    knots = [int(k * total_steps + 1e-9) for k in recipe["lr_knots"]]
    values, offset = list(recipe["lr_values"]), recipe["lr_step_offset"]

    def factor(step: int) -> float:
        t = step + offset
        if t <= knots[0]:
            return float(values[0])
        for (a, fa), (b, fb) in zip(zip(knots, values), zip(knots[1:], values[1:])):
            if t <= b:
                return float(fb if b == a else fa + (fb - fa) * (t - a) / (b - a))
        return float(values[-1])
    return factor


class PageSGD(torch.optim.Optimizer):
    """Nesterov SGD as David Page's cifar10-fast writes it (torch_backend.py, ``nesterov_update``):

        step = -lr * (grad + weight_decay * w);  v = momentum * v + step;  w += step + momentum * v

    The velocity holds steps already scaled by their own lr.  torch.optim.SGD keeps it in
    gradient units and scales it by the current lr instead; the two agree while the lr is
    constant, and differ where it changes (every step of a linear schedule, and on the last
    step, at lr 0, where this one still moves by momentum * v)."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(w, memory_format=torch.preserve_format)
                v = state["velocity"]
                step = w.grad.add(w, alpha=weight_decay).mul_(-lr)
                v.mul_(momentum).add_(step)
                w.add_(step.add_(v, alpha=momentum))
        return loss


def make_optimizer(model: nn.Module, recipe: dict) -> torch.optim.Optimizer:
    groups = parameter_groups(model, recipe)
    kind, lr = recipe["optimizer"], groups[0]["lr"]
    if kind == "page_sgd":
        return PageSGD(groups, lr=lr, momentum=recipe["momentum"])
    if kind == "adam":  # weight_decay: L2, added to the gradient before the moments (not decoupled)
        return torch.optim.Adam(groups, lr=lr, betas=tuple(recipe["betas"]))
    if kind == "adamw":  # weight_decay: decoupled, w -= lr * weight_decay * w
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(recipe["betas"]))
    return torch.optim.SGD(groups, lr=lr, momentum=recipe["momentum"], nesterov=True)


class Schedule:
    """The recipe's lr schedule: the piecewise-linear factor per step (LambdaLR), or, with
    ``plateau_factor`` > 0, torch's ReduceLROnPlateau (mode max) stepped once per epoch on the
    accuracy the caller watches (validation, else training: see recipes.py)."""

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: dict, total_steps: int):
        self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe, total_steps))
        self.plateau = None
        if recipe["plateau_factor"]:
            # LambdaLR set the lr to lr * the (constant) factor; from here on only the plateau changes it.
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=recipe["plateau_factor"], patience=recipe["plateau_patience"],
                threshold=recipe["plateau_threshold"])

    def after_step(self) -> None:
        if self.plateau is None:
            self.per_step.step()

    def after_epoch(self, watched_accuracy: float) -> None:
        if self.plateau is not None:
            self.plateau.step(watched_accuracy)

    def state_dict(self) -> dict:
        return {"per_step": self.per_step.state_dict(),
                "plateau": None if self.plateau is None else self.plateau.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


class Lookahead:
    """airbench94's lookahead: every ``every`` steps, for every float tensor of the model's
    state (parameters and BatchNorm statistics), ema <- lerp(ema, net, 1 - d) then net <- ema,
    with d = decay * (step / total_steps) ** power; after the last step once more with d = 1,
    which sets the net to the ema."""

    def __init__(self, model: nn.Module, every: int, decay: float, power: float):
        self.every, self.decay, self.power = every, decay, power
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, d: float) -> None:
        for name, value in model.state_dict().items():  # state_dict tensors share the model's storage
            if name in self.ema:
                self.ema[name].lerp_(value, 1 - d)
                value.copy_(self.ema[name])

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """``step``: steps done so far, counted from 1."""
        if step % self.every == 0:
            self.update(model, self.decay * (step / total_steps) ** self.power)
        if step == total_steps:
            self.update(model, 1.0)

    def state_dict(self) -> dict:
        return dict(self.ema)

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            self.ema[name].copy_(value)
