"""The networks the trainer knows, built from plain ``nn.Conv2d`` (the trainer converts them).

- ``resnet9``: David Page's ResNet-9 (DAWNBench; davidcpage/cifar10-fast dawn_utils.py ``net``).
- ``resnet18``: the CIFAR variant of ResNet-18 (3x3 stem, no max-pool; kuangliu/pytorch-cifar).
- ``fastnet``: airbench94's net (KellerJordan/cifar10-airbench legacy/airbench94.py ``make_net``):
  a frozen 2x2 whitening conv set from the training images' patches, then three blocks of
  conv-pool-BN-GELU-conv-BN-GELU.
- ``cnn3``, ``cnn5-padded``, ``cnn5-unpadded``: the seed projects' small CNNs (cnn.py).
- ``vit``: a small ViT with a convolutional stem (vit.py).

Each network's settings (BatchNorm eps and momentum, output scale, ...) are in its recipe's
``net`` entry (recipes.py); ``MODELS[name]()`` builds the network with them.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .cnn import cnn3, cnn5
from .recipes import RECIPES
from .vit import ConvStemViT


class Mul(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


class Residual(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


def conv_bn(c_in: int, c_out: int, bn_eps: float, bn_momentum: float) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, bn_eps, bn_momentum), nn.ReLU()]


def resnet9(*, bn_eps: float, bn_momentum: float, scale: float, num_classes: int = 10) -> nn.Module:
    """prep 64; layer1 128 + pool + residual; layer2 256 + pool; layer3 512 + pool + residual;
    max-pool to 1x1; linear without bias; logits x scale.  The pool follows the first conv's ReLU."""
    bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
    return nn.Sequential(
        *conv_bn(3, 64, **bn),
        *conv_bn(64, 128, **bn), nn.MaxPool2d(2), Residual(*conv_bn(128, 128, **bn), *conv_bn(128, 128, **bn)),
        *conv_bn(128, 256, **bn), nn.MaxPool2d(2),
        *conv_bn(256, 512, **bn), nn.MaxPool2d(2), Residual(*conv_bn(512, 512, **bn), *conv_bn(512, 512, **bn)),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, num_classes, bias=False), Mul(scale),
    )


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, bn_eps: float, bn_momentum: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out, bn_eps, bn_momentum), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out, bn_eps, bn_momentum),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out, bn_eps, bn_momentum))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet18(*, bn_eps: float, bn_momentum: float, num_classes: int = 10) -> nn.Module:
    layers, c_in = [], 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c_in, c_out, stride, bn_eps, bn_momentum), BasicBlock(c_out, c_out, 1, bn_eps, bn_momentum)]
        c_in = c_out
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64, bn_eps, bn_momentum), nn.ReLU(), *layers,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
    )


class FastNet(nn.Sequential):
    """airbench94's net: whiten (3->24, 2x2, no padding, bias; weight frozen), GELU, three blocks
    conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU, max-pool 3, linear without bias, x scale."""

    def __init__(self, *, widths: tuple[int, int, int], bn_eps: float, bn_momentum: float,
                 bn_weight_trainable: bool, scale: float, dirac: bool, num_classes: int = 10):
        whiten = nn.Conv2d(3, 24, 2, bias=True)
        blocks, c_in = [], 24
        for width in widths:
            blocks += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.MaxPool2d(2),
                nn.BatchNorm2d(width, bn_eps, bn_momentum), nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width, bn_eps, bn_momentum), nn.GELU(),
            ]
            c_in = width
        super().__init__(whiten, nn.GELU(), *blocks, nn.MaxPool2d(3), nn.Flatten(),
                         nn.Linear(c_in, num_classes, bias=False), Mul(scale))
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    if m.bias is not None:
                        m.bias.zero_()
                    if dirac:  # a partial identity: output channel i copies input channel i, for i < C_in
                        nn.init.dirac_(m.weight[: m.in_channels])
                elif isinstance(m, nn.BatchNorm2d):
                    m.weight.requires_grad_(bn_weight_trainable)  # torch initialises it to 1
        whiten.weight.requires_grad_(False)

    @property
    def whiten(self) -> nn.Conv2d:
        return self[0]

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float) -> None:
        """Set the whitening conv from 2x2 patches of ``images`` (normalized, N x 3 x H x W): the
        patches' second-moment matrix (not centred) has eigenvectors v_i and eigenvalues l_i, in
        decreasing order; the filters are v_i / sqrt(l_i + eps), then their negatives."""
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, H-1, W-1, 2, 2 (tensor.unfold: a view, no conv)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()  # one row per patch, (c, kh, kw) order
        moments = (patches.T @ patches / len(patches)).cpu()  # on the images' device; the 12x12 problem on the CPU
        eigenvalues, eigenvectors = torch.linalg.eigh(moments)  # increasing order
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(12, 3, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).float())
        self.whiten.bias.zero_()


BUILDERS = {"resnet9": resnet9, "resnet18": resnet18, "fastnet": FastNet, "cnn3": cnn3, "cnn5-padded": cnn5,
            "cnn5-unpadded": cnn5, "vit": ConvStemViT}
MODELS = {name: functools.partial(build, **RECIPES[name]["net"]) for name, build in BUILDERS.items()}


def build_network(name: str, net: dict) -> nn.Module:
    """Network ``name`` with the settings ``net`` (a recipe's ``net`` entry, or one saved with weights)."""
    return BUILDERS[name](**net)
