"""The small CNNs of the seed projects (public CIFAR-10 project texts, read by the tests from
``$CIFARCONV_SEEDS``), built from plain ``nn.Conv2d`` so that ``cifarconv.convert`` runs every conv on any backend.

- ``cnn3``: the "Basic CNN" of ``003_cc1b8323fc3dc935.txt``: three blocks of conv 5x5 (padding 2,
  stride 1) -> ReLU -> max-pool 2, widths 8, 16, 32, then linear 512 -> 64 -> 32 -> 10 with ReLUs
  between them (003's table lists the layers; its text says "conv + relu + max pool").
- ``cnn5``: the 5-conv CNN of ``004_f66964e7168fcf9d.txt`` (its ``ConvNet``), in the order its
  ``forward`` runs the layers: conv1 ReLU conv2 ReLU pool conv3 ReLU dropout conv4 ReLU pool conv5
  ReLU dropout, flatten, fc1 ReLU fc2 ReLU fc3 ReLU fc4; every conv 3x3, stride 1, widths
  8, 32, 64, 128, 256; ``nn.Dropout2d(0.5)``; fc 256, 128, 64, 10.  ``conv5_padding`` 1 is 004's
  (fc1 takes 8 * 8 * 256 = 16384); 0 is ``001_cd0e10538b5c8d41.txt``'s (fc1 takes 6 * 6 * 256 = 9216).
"""

from __future__ import annotations

from torch import nn


def cnn3(*, widths: tuple[int, int, int], kernel: int, hidden: tuple[int, int], num_classes: int = 10) -> nn.Sequential:
    layers, c_in = [], 3
    for width in widths:
        layers += [nn.Conv2d(c_in, width, kernel, stride=1, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2, 2)]
        c_in = width
    features = c_in * (32 // 2 ** len(widths)) ** 2  # 32 * 4 * 4 = 512 after three halvings of 32x32
    return nn.Sequential(
        *layers, nn.Flatten(),
        nn.Linear(features, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
        nn.Linear(hidden[1], num_classes),
    )


def cnn5(*, widths: tuple[int, ...], conv5_padding: int, dropout: float, hidden: tuple[int, int, int],
         num_classes: int = 10) -> nn.Sequential:
    c1, c2, c3, c4, c5 = widths
    side = 32 // 4 + 2 * conv5_padding - 2  # two max-pools take 32 to 8; the 3x3 conv5 then keeps 8 or gives 6
    return nn.Sequential(
        nn.Conv2d(3, c1, 3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(c2, c3, 3, stride=1, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
        nn.Conv2d(c3, c4, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(c4, c5, 3, stride=1, padding=conv5_padding), nn.ReLU(), nn.Dropout2d(dropout),
        nn.Flatten(),
        nn.Linear(side * side * c5, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
        nn.Linear(hidden[1], hidden[2]), nn.ReLU(), nn.Linear(hidden[2], num_classes),
    )
