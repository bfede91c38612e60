"""Each model's training recipe: every hyperparameter in one commented dict per model.

``python -m cifarconv.train --model M`` takes ``RECIPES[M]``; ``--epochs``, ``--batch-size``,
``--lr`` and ``--set KEY=VALUE`` override single values (``check`` says which are valid).

Both sources sum the loss over the batch (never average it), and each states its learning
rate and weight decay in its own units, the recipe's ``convention``:

- ``"airbench"`` (airbench94): ``lr`` is per 1024 examples and decoupled from the momentum,
  so torch's lr is ``lr / (1024 * (1 + 1 / (1 - momentum)))``; ``weight_decay`` is per 1024
  examples and decoupled from the lr: each step decays the weights by
  ``weight_decay * batch_size / (1024 * (1 + 1 / (1 - momentum)))`` times the lr factor, which
  torch's SGD is told as ``weight_decay = that / lr`` (its own lr, per group).
- ``"per_example"`` (Page): torch's lr is ``lr / batch_size`` on the summed loss (the mean
  loss's lr is ``lr``), and torch's weight decay is ``weight_decay * batch_size``, so each step
  decays by ``lr * weight_decay`` times the lr factor.

Parameter groups: the trainable BatchNorm parameters take ``bn_lr_scale`` times the lr and
the same decay per step as the rest (their weight_decay divided by the scale).

The lr factor is piecewise linear in the step: ``lr_values`` at the steps
``int(knot * total_steps)`` for each of ``lr_knots``; step k (counted from 0) takes the factor
at ``k + lr_step_offset``.  A fractional ``epochs`` ends mid-epoch, after
``ceil(epochs * batches_per_epoch)`` steps.
"""

from __future__ import annotations

import math

RECIPES = {
    # airbench94: KellerJordan/cifar10-airbench, legacy/airbench94.py (its `hyp` dict and code).
    "fastnet": {
        "net": {                              # the network's own settings (models.py)
            "widths": (64, 256, 256),
            "bn_eps": 1e-12,
            "bn_momentum": 0.4,               # torch's momentum: airbench's "batchnorm_momentum 0.6" is 1 - 0.6
            "bn_weight_trainable": False,     # BatchNorm weights frozen at 1; biases trained
            "scale": 1 / 9,                   # logits x 1/9
            "dirac": True,                    # each conv: torch's default init, then dirac_ on its first C_in filters
        },
        "epochs": 9.9,                        # ceil(9.9 * 48) = 476 steps: the tenth epoch stops after 44 batches
        "batch_size": 1024,
        "convention": "airbench",
        "optimizer": "sgd",                   # torch.optim.SGD, Nesterov
        "lr": 11.5,                           # per 1024 examples, decoupled from the momentum
        "momentum": 0.85,
        "weight_decay": 0.0153,               # per 1024 examples, decoupled from the lr
        "bn_lr_scale": 64.0,                  # BatchNorm biases: 64x the lr, the same decay per step
        "label_smoothing": 0.2,
        "lr_knots": (0.0, 0.23, 1.0),         # fractions of the steps
        "lr_values": (0.2, 1.0, 0.07),        # linear 0.2 -> 1 over the first 23 %, then -> 0.07
        "lr_step_offset": 0,                  # the first step runs at factor 0.2
        "whiten_images": 5000,                # 2x2 patches of 5000 normalised train images set the whitening conv
        "whiten_eps": 5e-4,                   # filters = eigenvectors / sqrt(eigenvalue + whiten_eps), and negatives
        "whiten_bias_epochs": 3,              # its bias trains in epochs 0-2, then is frozen (its weight always is)
        "lookahead_every": 5,                 # every 5 steps: ema <- lerp(ema, net, 1 - d), net <- ema (0: off)
        "lookahead_decay": 0.95 ** 5,         # d = lookahead_decay * (step / total_steps) ** lookahead_power
        "lookahead_power": 3,                 # and after the last step once with d = 1: net <- ema
        "flip": "alternating",                # random flips at epoch 0, then the whole set flipped every odd epoch
        "crop_pad": 2,                        # reflect-pad 2 px, a random 32x32 crop each epoch
        "cutout": 0,                          # no cutout
        "tta": 2,                             # test: mirror and two 1-px translations (see evaluate.py)
    },
    # David Page's ResNet-9, the DAWNBench entry: davidcpage/cifar10-fast, dawn.py with dawn_utils.py,
    # core.py and torch_backend.py.
    "resnet9": {
        "net": {
            "bn_eps": 1e-5,                   # plain nn.BatchNorm2d, weight and bias trained
            "bn_momentum": 0.1,
            "scale": 0.125,                   # logits x 0.125
        },
        "epochs": 24,
        "batch_size": 512,
        "convention": "per_example",
        "optimizer": "page_sgd",              # Nesterov with the lr inside the momentum buffer (optim.py)
        "lr": 0.4,                            # peak; torch's lr 0.4 / 512 on the summed loss
        "momentum": 0.9,
        "weight_decay": 5e-4,                 # torch's weight_decay 5e-4 * 512
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.0,
        "lr_knots": (0.0, 5 / 24, 1.0),       # 0 -> 0.4 at epoch 5 -> 0 at epoch 24
        "lr_values": (0.0, 1.0, 0.0),
        "lr_step_offset": 1,                  # step k runs at epoch (k + 1) / batches per epoch: the last at lr 0
        "whiten_images": 0,                   # no whitening conv
        "whiten_eps": 0.0,
        "whiten_bias_epochs": 0,
        "lookahead_every": 0,                 # no lookahead, no EMA
        "lookahead_decay": 0.0,
        "lookahead_power": 0,
        "flip": "random",                     # each image flipped with p = 0.5, every epoch
        "crop_pad": 4,                        # reflect-pad 4 px, a random 32x32 crop
        "cutout": 8,                          # one 8x8 square inside the image set to 0 (the mean)
        "tta": 0,                             # none in the 24-epoch entry
    },
    # The CIFAR ResNet-18 (kuangliu/pytorch-cifar layout) with Page's recipe and the earlier trainer's
    # values: 30 epochs, peak lr 0.2, 20 % warm-up, label smoothing 0.2.  Not tuned (no GPU yet).
    "resnet18": {
        "net": {"bn_eps": 1e-5, "bn_momentum": 0.1},
        "epochs": 30,
        "batch_size": 512,
        "convention": "per_example",
        "optimizer": "page_sgd",
        "lr": 0.2,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.2,
        "lr_knots": (0.0, 0.2, 1.0),
        "lr_values": (0.0, 1.0, 0.0),
        "lr_step_offset": 1,
        "whiten_images": 0,
        "whiten_eps": 0.0,
        "whiten_bias_epochs": 0,
        "lookahead_every": 0,
        "lookahead_decay": 0.0,
        "lookahead_power": 0,
        "flip": "random",
        "crop_pad": 4,
        "cutout": 8,
        "tta": 0,
    },
}

CONVENTIONS = ("airbench", "per_example")
OPTIMIZERS = ("sgd", "page_sgd")
FLIPS = ("none", "random", "alternating")


def _number(low, high=math.inf, integer=False, low_open=False):
    def ok(v):
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return False
        return (v > low if low_open else v >= low) and v < high
    kind = "an integer" if integer else "a number"
    return ok, f"{kind} {'>' if low_open else '>='} {low}" + (f" and < {high}" if high != math.inf else "")


def _knots(v):
    return (isinstance(v, (list, tuple)) and len(v) >= 2 and all(isinstance(k, (int, float)) for k in v)
            and v[0] == 0 and v[-1] == 1 and all(a <= b for a, b in zip(v, v[1:])))


# What each overridable value may be: (test, description).
CHECKS = {
    "epochs": _number(0, low_open=True),
    "batch_size": _number(1, integer=True),
    "convention": ((lambda v: v in CONVENTIONS), f"one of {', '.join(CONVENTIONS)}"),
    "optimizer": ((lambda v: v in OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
    "lr": _number(0, low_open=True),
    "momentum": _number(0, 1),
    "weight_decay": _number(0),
    "bn_lr_scale": _number(0, low_open=True),
    "label_smoothing": _number(0, 1),
    "lr_knots": (_knots, "a list of fractions from 0 to 1, non-decreasing, e.g. (0, 0.23, 1)"),
    "lr_values": ((lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and x >= 0 for x in v)),
                  "a list of factors >= 0, one per knot"),
    "lr_step_offset": ((lambda v: v in (0, 1) and not isinstance(v, bool)), "0 or 1"),
    "whiten_images": _number(0, integer=True),
    "whiten_eps": _number(0),
    "whiten_bias_epochs": _number(0, integer=True),
    "lookahead_every": _number(0, integer=True),
    "lookahead_decay": _number(0, 1, low_open=False),
    "lookahead_power": _number(0),
    "flip": ((lambda v: v in FLIPS), f"one of {', '.join(FLIPS)}"),
    "crop_pad": _number(0, 16, integer=True),
    "cutout": _number(0, 33, integer=True),
    "tta": ((lambda v: v in (0, 1, 2) and not isinstance(v, bool)), "0, 1 or 2"),
}


def check(recipe: dict) -> None:
    """Raise ValueError naming the first value that cannot be used."""
    for key, (ok, description) in CHECKS.items():
        if not ok(recipe[key]):
            raise ValueError(f"recipe value {key}={recipe[key]!r}: must be {description}")
    if len(recipe["lr_values"]) != len(recipe["lr_knots"]):
        raise ValueError(f"recipe values lr_knots and lr_values differ in length "
                         f"({len(recipe['lr_knots'])} and {len(recipe['lr_values'])})")
