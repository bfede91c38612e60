"""``vit``: a small vision transformer with a convolutional stem, as ``003_cc1b8323fc3dc935.txt``
trains from scratch after Xiao et al. 2021 ("Early Convolutions Help Transformers See Better"):
the patch embedding is a stack of 3x3 convs, each followed by BatchNorm and ReLU, and one 1x1
conv to the embedding width, instead of one large-stride "patchify" conv.

003 publishes no size and no figure for its from-scratch ViT; the size here is our choice
(its ``net`` entry in recipes.py): stem 3 -> 48 -> 96 (3x3, stride 2 each: 32x32 -> 8x8, i.e.
64 tokens, one per 4x4 patch), 1x1 conv 96 -> 192, a learned class token and position
embedding, 6 pre-norm encoder blocks of width 192 with 3 heads and an MLP of 384 (GELU), a
final LayerNorm and a linear head on the class token: about 1.9 M parameters.  The convs are
plain ``nn.Conv2d``, so ``cifarconv.convert`` runs them on any backend; attention and MLPs are
torch's own.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvStemViT(nn.Module):
    def __init__(self, *, stem: tuple[int, ...], dim: int, depth: int, heads: int, mlp: int, num_classes: int = 10,
                 image_size: int = 32):
        super().__init__()
        layers, c_in = [], 3
        for width in stem:  # each 3x3 stride-2 conv halves the image
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
        self.stem = nn.Sequential(*layers, nn.Conv2d(c_in, dim, 1))
        tokens = (image_size // 2 ** len(stem)) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        block = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)  # N, tokens, dim: one token per stem output pixel
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.position
        return self.head(self.norm(self.encoder(x))[:, 0])
