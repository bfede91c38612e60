"""The argument grid every backend is checked on, against torch.nn.functional.conv2d.

Sizes are small so gradcheck/gradgradcheck stay fast, but every argument and
PyTorch's tricky combinations appear at least once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Case:
    id: str
    n: int = 2
    c_in: int = 4
    hw: tuple[int, int] = (7, 6)
    c_out: int = 6
    kernel: tuple[int, int] = (3, 3)
    bias: bool = True
    kwargs: dict = field(default_factory=dict)  # stride, padding, dilation, groups as the user passes them

    def tensors(self, dtype=torch.float64, device="cpu", seed=0):
        g = torch.Generator().manual_seed(seed)
        groups = self.kwargs.get("groups", 1)
        x = torch.randn(self.n, self.c_in, *self.hw, generator=g, dtype=dtype)
        w = torch.randn(self.c_out, self.c_in // groups, *self.kernel, generator=g, dtype=dtype)
        b = torch.randn(self.c_out, generator=g, dtype=dtype) if self.bias else None
        return tuple(t.to(device) if t is not None else None for t in (x, w, b))


CASES = [
    Case("3x3-pad1", kwargs=dict(padding=1)),
    Case("3x3-stride2-pad1", hw=(8, 8), kwargs=dict(stride=2, padding=1)),
    Case("no-bias", bias=False, kwargs=dict(padding=1)),
    Case("asym-stride-pad-dil-groups", kwargs=dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2)),
    Case("tuple-args", kernel=(2, 3), kwargs=dict(stride=(1, 2), padding=(0, 1), dilation=(1, 1))),
    Case("1x1", kernel=(1, 1)),
    Case("1x1-stride2", kernel=(1, 1), kwargs=dict(stride=2)),
    Case("1x1-pad1-groups", kernel=(1, 1), kwargs=dict(padding=1, groups=2)),
    Case("kernel-equals-input", hw=(5, 4), kernel=(5, 4)),
    Case("kernel-equals-padded-input", hw=(3, 3), kernel=(5, 5), kwargs=dict(padding=1)),
    Case("dilated-kernel-equals-input", hw=(5, 7), kernel=(3, 4), kwargs=dict(dilation=2)),
    Case("odd-sizes", n=3, c_in=3, hw=(9, 5), c_out=5, kernel=(3, 2), kwargs=dict(stride=(3, 2))),
    Case("stride-larger-than-kernel", hw=(9, 9), kernel=(2, 2), kwargs=dict(stride=3)),
    Case("padding-larger-than-kernel", kernel=(2, 2), kwargs=dict(padding=3)),
    Case("same-odd-kernel", kwargs=dict(padding="same")),
    Case("same-even-kernel-dilated", kernel=(4, 2), kwargs=dict(padding="same", dilation=(1, 3))),
    Case("same-dilated-groups", kwargs=dict(padding="same", dilation=2, groups=2)),
    Case("valid", kwargs=dict(padding="valid")),
    Case("depthwise", c_in=4, c_out=8, kwargs=dict(padding=1, groups=4)),
    Case("groups-equal-channels-out", c_in=6, c_out=3, kernel=(2, 2), kwargs=dict(groups=3)),
    Case("batch-1", n=1, kwargs=dict(padding=1)),
    Case("empty-batch", n=0, kwargs=dict(padding=1)),
    Case("one-channel", c_in=1, c_out=1, kwargs=dict(padding=1)),
    # torch gives an empty (N, 0, OH, OW) output that uses neither weight nor bias
    Case("no-input-channels", c_in=0, kwargs=dict(padding=1)),
]


def case_params():
    import pytest

    return [pytest.param(c, id=c.id) for c in CASES]
