"""The networks the trainer knows, built from plain ``nn.Conv2d`` (the trainer converts them).

- ``resnet9``: David Page's ResNet-9 (DAWNBench), ~94 % in 24 epochs on official CIFAR-10.
- ``resnet18``: the CIFAR variant of ResNet-18 (3x3 stem, no max-pool; kuangliu/pytorch-cifar).
- ``fastnet``: an airbench94-style net: a frozen 2x2 whitening conv set from the training
  images' patch covariance, then three blocks of conv-pool-BN-GELU-conv-BN-GELU.
"""

from __future__ import annotations

import torch
from torch import nn


class Mul(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


class Residual(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


def conv_bn(c_in: int, c_out: int, act: type[nn.Module] = nn.ReLU) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), act()]


def resnet9(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        *conv_bn(3, 64),
        *conv_bn(64, 128), nn.MaxPool2d(2), Residual(*conv_bn(128, 128), *conv_bn(128, 128)),
        *conv_bn(128, 256), nn.MaxPool2d(2),
        *conv_bn(256, 512), nn.MaxPool2d(2), Residual(*conv_bn(512, 512), *conv_bn(512, 512)),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, num_classes, bias=False), Mul(0.125),
    )


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet18(num_classes: int = 10) -> nn.Module:
    layers, c_in = [], 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), *layers,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
    )


class FastNet(nn.Sequential):
    """airbench94's layout: whiten (3->24, 2x2, frozen), blocks of widths 64/256/256, pool, linear / 9."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256)):
        whiten = nn.Conv2d(3, 24, 2, bias=True)
        whiten.requires_grad_(False)
        blocks, c_in = [], 24
        for width in widths:
            blocks += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(width), nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU(),
            ]
            c_in = width
        super().__init__(whiten, nn.GELU(), *blocks, nn.MaxPool2d(3), nn.Flatten(),
                         nn.Linear(c_in, num_classes, bias=False), Mul(1 / 9))

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv to whiten 2x2 patches of ``images`` (normalized, N x 3 x H x W):
        the patch covariance's eigenvectors scaled by 1/sqrt(eigenvalue), and their negatives."""
        whiten = self[0]
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, H-1, W-1, 2, 2 (tensor.unfold: a view, no conv)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
        patches = patches - patches.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(12, 3, 2, 2)
        whiten.weight.copy_(torch.cat([filters, -filters]).float())
        whiten.bias.zero_()


MODELS = {"resnet9": resnet9, "resnet18": resnet18, "fastnet": FastNet}
