"""Each model's training recipes: every hyperparameter in one commented dict per recipe.

``python -m cifarconv.train --model M`` takes ``RECIPES[M]``, our default recipe for M;
``--recipe source`` takes ``SOURCE_RECIPES[M]`` instead (source_recipes.py: the recipe of the
project M comes from, value by value).  ``--epochs``, ``--batch-size``, ``--lr``, ``--val`` and
``--set KEY=VALUE`` override single values (``check`` says which are valid).

Each recipe states its learning rate and weight decay in its source's units, the recipe's
``convention``; the first two sum the loss over the batch, as their sources do:

- ``"airbench"`` (airbench94): ``lr`` is per 1024 examples and decoupled from the momentum,
  so torch's lr is ``lr / (1024 * (1 + 1 / (1 - momentum)))``; ``weight_decay`` is per 1024
  examples and decoupled from the lr: each step decays the weights by
  ``weight_decay * batch_size / (1024 * (1 + 1 / (1 - momentum)))`` times the lr factor, which
  torch's SGD is told as ``weight_decay = that / lr`` (its own lr, per group).
- ``"per_example"`` (Page): torch's lr is ``lr / batch_size`` on the summed loss (the mean
  loss's lr is ``lr``), and torch's weight decay is ``weight_decay * batch_size``, so each step
  decays by ``lr * weight_decay`` times the lr factor.
- ``"torch"`` (the seed projects, and our recipes for their networks): the loss is torch's
  mean cross-entropy over the batch, and ``lr`` and ``weight_decay`` go to the torch optimiser
  as they are.  With ``optimizer`` ``"adam"`` that is ``torch.optim.Adam``'s ``weight_decay``:
  an L2 term added to the gradient (not AdamW's decoupled decay), so on the mean loss its
  strength does not depend on the batch size.

Parameter groups: the trainable BatchNorm parameters take ``bn_lr_scale`` times the lr and
the same decay per step as the rest (their weight_decay divided by the scale).

The lr factor is piecewise linear in the step: ``lr_values`` at the steps
``int(knot * total_steps)`` for each of ``lr_knots``; step k (counted from 0) takes the factor
at ``k + lr_step_offset``.  Or, with ``plateau_factor`` > 0 (and a constant factor), torch's
``ReduceLROnPlateau`` in mode max: after each epoch it watches the validation top-1 accuracy
when there is a validation split (``val_images`` or ``--val``), else the epoch's training
accuracy (never the test set), and multiplies the lr by ``plateau_factor`` once it has not
improved by ``plateau_threshold`` (relative) for ``plateau_patience`` epochs.  A fractional
``epochs`` ends mid-epoch, after ``ceil(epochs * batches_per_epoch)`` steps.

``normalize`` is ``"channel"`` ((x - mean) / std per channel, from the training images used) or
``"unit"`` (x / 255 only, as 004 feeds its net).  ``val_images`` sets that many training images
aside for validation (a fixed class-balanced choice; ``--val`` overrides it).
"""

from __future__ import annotations

import math

from .recipe_parts import NO_LOOKAHEAD, NO_PLATEAU, NO_WHITENING
from .source_recipes import SOURCE_RECIPES

# Our fast recipe for 004's 5-conv CNN (its 5th conv padded, fc1 16384 -> 256): Adam with L2 weight
# decay on the mean loss as 004, but a one-cycle lr, flips, 4-px shifts and label smoothing, so that
# it beats 004's 21,000 steps on 2 CPU cores within 30 minutes.
CNN5_RECIPE = {
    "net": {                              # 004's ConvNet (cnn.py)
        "widths": (8, 32, 64, 128, 256),
        "conv5_padding": 1,
        "dropout": 0.5,                   # nn.Dropout2d(p = 0.5) after conv3 and conv5
        "hidden": (256, 128, 64),         # fc1 8 * 8 * 256 -> 256 -> 128 -> 64 -> 10
    },
    "epochs": 16,                         # about 22 minutes on 2 cores (docs/train.md)
    "batch_size": 256,
    "convention": "torch",
    "optimizer": "adam",
    "lr": 3e-3,                           # peak: 3-epoch pilots gave 49, 56 and 58 % at 1e-3, 2e-3 and 4e-3
    "momentum": None,
    "betas": (0.9, 0.995),                # 004's
    "weight_decay": 5e-4,                 # 004's, L2 as 004's torch.optim.Adam
    "bn_lr_scale": 1.0,
    "label_smoothing": 0.1,
    "lr_knots": (0.0, 0.15, 1.0),         # one cycle: 0.1 -> 1 over the first 15 % of steps, then -> 0
    "lr_values": (0.1, 1.0, 0.0),
    "lr_step_offset": 0,
    **NO_PLATEAU, **NO_WHITENING, **NO_LOOKAHEAD,
    "normalize": "channel",
    "val_images": 0,
    "flip": "random",
    "crop_pad": 4,
    "cutout": 0,
    "tta": 0,
}

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
        "betas": None,                        # (Adam only)
        "weight_decay": 0.0153,               # per 1024 examples, decoupled from the lr
        "bn_lr_scale": 64.0,                  # BatchNorm biases: 64x the lr, the same decay per step
        "label_smoothing": 0.2,
        "lr_knots": (0.0, 0.23, 1.0),         # fractions of the steps
        "lr_values": (0.2, 1.0, 0.07),        # linear 0.2 -> 1 over the first 23 %, then -> 0.07
        "lr_step_offset": 0,                  # the first step runs at factor 0.2
        **NO_PLATEAU,                         # no ReduceLROnPlateau
        "whiten_images": 5000,                # 2x2 patches of 5000 normalised train images set the whitening conv
        "whiten_eps": 5e-4,                   # filters = eigenvectors / sqrt(eigenvalue + whiten_eps), and negatives
        "whiten_bias_epochs": 3,              # its bias trains in epochs 0-2, then is frozen (its weight always is)
        "lookahead_every": 5,                 # every 5 steps: ema <- lerp(ema, net, 1 - d), net <- ema (0: off)
        "lookahead_decay": 0.95 ** 5,         # d = lookahead_decay * (step / total_steps) ** lookahead_power
        "lookahead_power": 3,                 # and after the last step once with d = 1: net <- ema
        "normalize": "channel",               # (x - mean) / std per channel, from the training images used
        "val_images": 0,                      # no validation split: the test set is scored after every epoch
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
        "betas": None,
        "weight_decay": 5e-4,                 # torch's weight_decay 5e-4 * 512
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.0,
        "lr_knots": (0.0, 5 / 24, 1.0),       # 0 -> 0.4 at epoch 5 -> 0 at epoch 24
        "lr_values": (0.0, 1.0, 0.0),
        "lr_step_offset": 1,                  # step k runs at epoch (k + 1) / batches per epoch: the last at lr 0
        **NO_PLATEAU, **NO_WHITENING,         # no whitening conv
        **NO_LOOKAHEAD,                       # no lookahead, no EMA
        "normalize": "channel",
        "val_images": 0,
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
        "betas": None,
        "weight_decay": 5e-4,
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.2,
        "lr_knots": (0.0, 0.2, 1.0),
        "lr_values": (0.0, 1.0, 0.0),
        "lr_step_offset": 1,
        **NO_PLATEAU, **NO_WHITENING, **NO_LOOKAHEAD,
        "normalize": "channel",
        "val_images": 0,
        "flip": "random",
        "crop_pad": 4,
        "cutout": 8,
        "tta": 0,
    },
    # Our recipe for 003's "Basic CNN", sized for the comparison `python -m cifarconv.train` runs with no
    # flags on a laptop CPU (torch, custom and cpp one after the other, within minutes): Adam with L2
    # weight decay on the mean loss, a one-cycle lr, flips and 2-px shifts.
    "cnn3": {
        "net": {                              # 003's table (cnn.py)
            "widths": (8, 16, 32),
            "kernel": 5,                      # 5x5, padding 2, stride 1
            "hidden": (64, 32),               # linear 512 -> 64 -> 32 -> 10
        },
        "epochs": 4,
        "batch_size": 128,
        "convention": "torch",                # mean loss; lr and weight decay are torch's own
        "optimizer": "adam",                  # torch.optim.Adam: weight_decay is L2 (added to the gradient)
        "lr": 3e-3,                           # peak
        "momentum": None,                     # (SGD only)
        "betas": (0.9, 0.999),                # torch's defaults
        "weight_decay": 5e-4,
        "bn_lr_scale": 1.0,                   # (no BatchNorm)
        "label_smoothing": 0.0,
        "lr_knots": (0.0, 0.2, 1.0),          # one cycle: 0.1 -> 1 over the first 20 % of steps, then -> 0
        "lr_values": (0.1, 1.0, 0.0),
        "lr_step_offset": 0,
        **NO_PLATEAU, **NO_WHITENING, **NO_LOOKAHEAD,
        "normalize": "channel",
        "val_images": 0,
        "flip": "random",
        "crop_pad": 2,                        # shifts of up to 2 px
        "cutout": 0,
        "tta": 0,
    },
    "cnn5-padded": CNN5_RECIPE,
    # The same recipe for 001's variant (5th conv unpadded, fc1 9216 -> 256), longer: 001 publishes no
    # hyperparameters at all, only its accuracy after hours on a GPU.
    "cnn5-unpadded": {
        **CNN5_RECIPE,
        "net": {**CNN5_RECIPE["net"], "conv5_padding": 0},  # 001: conv5 has no padding, 8x8 -> 6x6; fc1 6 * 6 * 256
        "epochs": 28,                         # about 37 minutes on 2 cores
    },
    # A conv-stem ViT (vit.py), from scratch.  003 publishes no from-scratch recipe beyond "lr 1e-5, a
    # different scheduler, longer training"; this one is ours, in the usual shape for small ViTs
    # (AdamW, warm-up then linear decay, label smoothing, flips and shifts).  Not tuned: no GPU has run it.
    "vit": {
        "net": {                              # our choice of size (vit.py)
            "stem": (48, 96),                 # 3x3 stride-2 convs with BatchNorm and ReLU, then 1x1 to dim
            "dim": 192,
            "depth": 6,
            "heads": 3,
            "mlp": 384,
        },
        "epochs": 100,
        "batch_size": 256,
        "convention": "torch",
        "optimizer": "adamw",                 # torch.optim.AdamW: decoupled weight decay
        "lr": 1e-3,
        "momentum": None,
        "betas": (0.9, 0.999),
        "weight_decay": 0.05,
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.1,
        "lr_knots": (0.0, 0.1, 1.0),          # 0 -> 1 over the first 10 % of steps, then -> 0
        "lr_values": (0.0, 1.0, 0.0),
        "lr_step_offset": 1,
        **NO_PLATEAU, **NO_WHITENING, **NO_LOOKAHEAD,
        "normalize": "channel",
        "val_images": 0,
        "flip": "random",
        "crop_pad": 4,
        "cutout": 0,
        "tta": 0,
    },
}

CONVENTIONS = ("airbench", "per_example", "torch")
OPTIMIZERS = ("sgd", "page_sgd", "adam", "adamw")
SGD_OPTIMIZERS = ("sgd", "page_sgd")  # the ones with a momentum; the others have betas
FLIPS = ("none", "random", "alternating")
NORMALIZATIONS = ("channel", "unit")


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
    "momentum": ((lambda v: v is None or _number(0, 1)[0](v)), "a number >= 0 and < 1 (None for Adam)"),
    "betas": ((lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) == 2
                                       and all(_number(0, 1)[0](b) for b in v))),
              "two numbers >= 0 and < 1, e.g. (0.9, 0.999) (None for SGD)"),
    "weight_decay": _number(0),
    "bn_lr_scale": _number(0, low_open=True),
    "label_smoothing": _number(0, 1),
    "lr_knots": (_knots, "a list of fractions from 0 to 1, non-decreasing, e.g. (0, 0.23, 1)"),
    "lr_values": ((lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and x >= 0 for x in v)),
                  "a list of factors >= 0, one per knot"),
    "lr_step_offset": ((lambda v: v in (0, 1) and not isinstance(v, bool)), "0 or 1"),
    "plateau_factor": _number(0, 1),
    "plateau_patience": _number(0, integer=True),
    "plateau_threshold": _number(0),
    "whiten_images": _number(0, integer=True),
    "whiten_eps": _number(0),
    "whiten_bias_epochs": _number(0, integer=True),
    "lookahead_every": _number(0, integer=True),
    "lookahead_decay": _number(0, 1, low_open=False),
    "lookahead_power": _number(0),
    "normalize": ((lambda v: v in NORMALIZATIONS), f"one of {', '.join(NORMALIZATIONS)}"),
    "val_images": _number(0, integer=True),
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
    sgd = recipe["optimizer"] in SGD_OPTIMIZERS
    if sgd and recipe["momentum"] is None:
        raise ValueError(f"recipe value momentum=None: optimizer {recipe['optimizer']} needs a momentum")
    if not sgd and recipe["betas"] is None:
        raise ValueError(f"recipe value betas=None: optimizer {recipe['optimizer']} needs betas, e.g. (0.9, 0.999)")
    if recipe["plateau_factor"] and len(set(recipe["lr_values"])) > 1:
        raise ValueError("recipe values plateau_factor and lr_values: a plateau schedule needs a constant lr factor "
                         "(lr_values all equal), not both schedules at once")


def recipe(model: str, name: str = "default") -> dict:
    """The recipe ``name`` (one of ``recipe_names(model)``) of ``model``; KeyError naming what exists."""
    if model not in RECIPES:
        raise KeyError(f"unknown model {model!r}; models: {', '.join(RECIPES)}")
    named = NAMED_RECIPES.get(name, {})
    if model not in named:
        raise KeyError(f"model {model} has no recipe {name!r}; its recipes: {', '.join(recipe_names(model))}")
    return named[model]


def recipe_names(model: str) -> list[str]:
    return [name for name, recipes in NAMED_RECIPES.items() if model in recipes]


NAMED_RECIPES = {"default": RECIPES, "source": SOURCE_RECIPES}
