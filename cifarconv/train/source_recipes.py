"""The seed projects' own recipes (``--recipe source``), value by value from their texts (read by
the tests from ``$CIFARCONV_SEEDS``); every key means what it means in recipes.py.

Each value is marked with where it comes from: a quote of the source, or "silent" where the
source says nothing and the value is our choice.  ``tests/test_seed_recipes.py`` checks each one
against the source's text.  001 publishes no hyperparameters (only its accuracy), and 003's
from-scratch ViT only "lr 1e-5, a different scheduler, longer training": neither has a source
recipe.
"""

from __future__ import annotations

from .recipe_parts import NO_LOOKAHEAD, NO_PLATEAU, NO_WHITENING

SOURCE_RECIPES = {
    # 003_cc1b8323fc3dc935.txt, "Basic CNN Architecture": "Using the hyperparameters below, the model is
    # capable of achieving ~50% test accuracy".
    "cnn3": {
        "net": {"widths": (8, 16, 32), "kernel": 5, "hidden": (64, 32)},  # its layer table
        "epochs": 20,                         # "| EPOCHS | 20 |"
        "batch_size": 128,                    # "| BATCH_SIZE | 128 |"
        "convention": "torch",                # silent on the loss: torch's mean cross-entropy, lr as torch's
        "optimizer": "adam",                  # "| Adam | Weight Decay: 0.01 |"
        "lr": 1e-4,                           # "| LEARNING_RATE | 1e-4 |"
        "momentum": None,
        "betas": (0.9, 0.999),                # silent: torch's defaults
        "weight_decay": 0.01,                 # "Weight Decay: 0.01", torch.optim.Adam's (L2)
        "bn_lr_scale": 1.0,                   # (no BatchNorm)
        "label_smoothing": 0.0,               # silent: none
        "lr_knots": (0.0, 1.0),               # silent on a scheduler (the ResNet's is named, this one has
        "lr_values": (1.0, 1.0),              # none): a constant lr
        "lr_step_offset": 0,
        **NO_PLATEAU, **NO_WHITENING, **NO_LOOKAHEAD,
        "normalize": "channel",               # silent: per-channel mean and std
        "val_images": 5000,                   # "a train set with 45,000 images and a validation set with 5,000"
        "flip": "none",                       # silent on augmentation: none
        "crop_pad": 0,
        "cutout": 0,
        "tta": 0,
    },
    # 004_f66964e7168fcf9d.txt: "config = TrainingConfig(lr = 3e-4, batch_size = 1024, steps = 21000, ...)",
    # "optimizer = optim.Adam(net.parameters(), lr = config.lr, betas = config.betas, weight_decay = ...)".
    "cnn5-padded": {
        "net": {"widths": (8, 32, 64, 128, 256), "conv5_padding": 1, "dropout": 0.5, "hidden": (256, 128, 64)},
        # "steps = 21000" at batch 1024: 48 full batches an epoch (the last partial one dropped), so
        # 21000 / 48 = 437.5 epochs.  004 draws each step's batch with next(iter(train_loader)), a fresh
        # shuffle every step; here each epoch is one shuffle, every image once.
        "epochs": 437.5,
        "batch_size": 1024,                   # "batch_size = 1024"
        "convention": "torch",                # "loss = F.cross_entropy(logits, targets)": the mean
        "optimizer": "adam",                  # "optim.Adam(...)"
        "lr": 3e-4,                           # "lr = 3e-4"
        "momentum": None,
        "betas": (0.9, 0.995),                # "betas = (0.9, 0.995)"
        "weight_decay": 5e-4,                 # "weight_decay = 5e-4", torch.optim.Adam's (L2)
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.0,               # F.cross_entropy's default
        "lr_knots": (0.0, 1.0),               # "lr = config.lr" every step: constant
        "lr_values": (1.0, 1.0),
        "lr_step_offset": 0,
        **NO_PLATEAU, **NO_WHITENING, **NO_LOOKAHEAD,
        "normalize": "unit",                  # "torch.tensor(image, dtype = torch.float32) / 255": no mean / std
        "val_images": 0,                      # 004 has no validation split (it keeps its best test step; we never do)
        "flip": "none",                       # "train_set = CIFAR10(root = ..., train = True)": no transforms
        "crop_pad": 0,
        "cutout": 0,
        "tta": 0,
    },
    # 003_cc1b8323fc3dc935.txt, "ResNet Architecture": "capable of achieving ~91% test accuracy".
    "resnet18": {
        "net": {"bn_eps": 1e-5, "bn_momentum": 0.1},  # silent on the layout ("the original ResNet paper"):
                                                      # our CIFAR ResNet-18 with torch's BatchNorm defaults
        "epochs": 50,                         # "| EPOCHS | 50 |"
        "batch_size": 128,                    # "| BATCH_SIZE | 128 |"
        "convention": "torch",                # silent on the loss: torch's mean cross-entropy
        "optimizer": "sgd",                   # "| SGD | Momentum: 0.9 <br> Weight Decay: 5e-4 <br> Nesterov: True |"
        "lr": 0.1,                            # "| LEARNING_RATE | 0.1 |"
        "momentum": 0.9,                      # "Momentum: 0.9"
        "betas": None,
        "weight_decay": 5e-4,                 # "Weight Decay: 5e-4"
        "bn_lr_scale": 1.0,
        "label_smoothing": 0.0,               # silent: none
        "lr_knots": (0.0, 1.0),               # only the plateau scheduler changes the lr
        "lr_values": (1.0, 1.0),
        "lr_step_offset": 0,
        # "| ReduceLROnPlateau | Mode: max <br> Factor: 0.1 <br> Patience: 3 <br> Threshold: 1e-3 |".  Silent
        # on what it watches; "mode max" is an accuracy: here the validation top-1 accuracy after each epoch.
        "plateau_factor": 0.1,
        "plateau_patience": 3,
        "plateau_threshold": 1e-3,
        **NO_WHITENING, **NO_LOOKAHEAD,
        "normalize": "channel",               # silent: per-channel mean and std
        "val_images": 5000,                   # "a train set with 45,000 images and a validation set with 5,000"
        "flip": "random",                     # silent on augmentation; our choice: the usual CIFAR ResNet
        "crop_pad": 4,                        # flips and 4-px shifts (~91 % needs some augmentation)
        "cutout": 0,
        "tta": 0,
    },
}
