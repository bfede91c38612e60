"""``Conv2d``: a ``torch.nn.Conv2d`` whose convolution runs on a cifarconv backend."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .functional import conv2d
from .registry import AUTO, check_name


class Conv2d(nn.Conv2d):
    """Drop-in ``torch.nn.Conv2d``: same constructor, parameters, init, state_dict and repr.

    The extra keyword-only ``backend`` picks who computes the convolution (see
    ``cifarconv.names()``); it is an attribute you may change at any time.
    """

    def __init__(self, *args, backend: str = AUTO, **kwargs):
        super().__init__(*args, **kwargs)
        self.backend = check_name(backend)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        # Mirrors nn.Conv2d._conv_forward: non-zero padding modes pad first, then convolve unpadded.
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        else:
            padding = self.padding
        return conv2d(input, weight, bias, self.stride, padding, self.dilation, self.groups, backend=self.backend)


def convert(model: nn.Module, backend: str = AUTO) -> nn.Module:
    """Make every ``nn.Conv2d`` in ``model`` a cifarconv ``Conv2d`` running ``backend``; return ``model``.

    The swap is in place and keeps each module object, so parameters, buffers, hooks
    and optimizer references stay as they were.  Modules already converted just get
    the new backend.  Subclasses of ``nn.Conv2d`` with their own forward are left alone.
    """
    check_name(backend)
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = Conv2d
        if isinstance(module, Conv2d):
            module.backend = backend
    return model
