"""Each model's training recipe."""

from __future__ import annotations

# Per model: (epochs, batch size, peak learning rate).  ResNet-9 is David Page's recipe.
RECIPES = {"resnet9": (24, 512, 0.4), "resnet18": (30, 512, 0.2), "fastnet": (10, 1024, 0.4)}
MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING, WARMUP_FRACTION = 0.9, 5e-4, 0.2, 0.2
