"""The cases every backend is checked on: one definition for cifarconv's own test suite and
for `check_backend`, so that a backend of yours meets exactly what the built-in ones meet.

Sizes are small so that gradcheck and gradgradcheck stay fast, but every argument of
``torch.nn.functional.conv2d`` and its tricky combinations appear at least once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


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

    @property
    def size(self) -> int:
        """How big the case is, to report the smallest failing one."""
        return self.n * self.c_in * self.hw[0] * self.hw[1] + self.c_out * self.c_in * self.kernel[0] * self.kernel[1]


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
CASE = {c.id: c for c in CASES}
HALF_PRECISION_CASES = [CASE["3x3-pad1"], CASE["asym-stride-pad-dil-groups"]]

LAYOUTS = ["contiguous", "channels_last", "noncontiguous", "unbatched"]
# (case, layout) pairs of the argument grid: an unbatched input has no batch to empty
GRID = [(case, layout) for case in CASES for layout in LAYOUTS if not (layout == "unbatched" and case.n == 0)]


def relayout(x: torch.Tensor, w: torch.Tensor, layout: str):
    """The same values as (x, w) in another memory layout (or x without its batch dim)."""
    if layout == "channels_last":
        return x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    if layout == "noncontiguous":
        wide = torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
        xs = wide[..., ::2]
        xs.copy_(x)
        ws = w.transpose(2, 3).contiguous().transpose(2, 3)
        assert x.numel() == 0 or not xs.is_contiguous()
        assert w.numel() == 0 or w.shape[2] == 1 or w.shape[3] == 1 or not ws.is_contiguous()
        return xs, ws
    if layout == "unbatched":
        return x[0], w
    return x, w


# unfold / fold windows over a (7, 6) image
FOLD_HW = (7, 6)
WINDOWS = [
    ("3x3", dict(kernel_size=3)),
    ("asymmetric", dict(kernel_size=(2, 3), dilation=(2, 1), padding=(1, 0), stride=(1, 2))),
    ("1x1-stride2", dict(kernel_size=1, stride=2)),
    ("stride-gt-kernel", dict(kernel_size=2, stride=3, padding=2)),
    ("kernel-equals-input", dict(kernel_size=(7, 6))),
]


def blocks(window: dict) -> int:
    """The number of sliding blocks of ``window`` over a FOLD_HW image."""
    return F.unfold(torch.zeros(1, 1, *FOLD_HW), **window).shape[-1]


def taps(window: dict) -> int:
    k = window["kernel_size"]
    return k * k if isinstance(k, int) else k[0] * k[1]


# (stride, padding, dilation, groups) of the ops called directly (opcheck)
OP_CONFIGS = [("3x3-pad1", ((1, 1), (1, 1), (1, 1), 1)), ("asym-groups", ((2, 1), (1, 2), (2, 1), 2))]


def op_args(device, conv, channels_last, bias, reference):
    """Arguments for each of the five ops, all tensors requiring grad; ``reference`` (an op
    family) makes the grad_output and the columns."""
    stride, padding, dilation, groups = conv
    x = torch.randn(2, 4, 7, 6, device=device)
    w = torch.randn(6, 4 // groups, 3, 2, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    b = torch.randn(6, device=device) if bias else None
    y = reference.conv2d(x, w, b, stride, padding, dilation, groups)
    cols = reference.im2col(x, (3, 2), dilation, padding, stride)
    grad = lambda t: t.detach().clone().requires_grad_()  # noqa: E731
    return {
        "conv2d": (grad(x), grad(w), grad(b) if bias else None, stride, padding, dilation, groups),
        "conv2d_grad_input": (grad(y), grad(w), (7, 6), stride, padding, dilation, groups),
        "conv2d_grad_weight": (grad(y), grad(x), (3, 2), stride, padding, dilation, groups, bias),
        "im2col": (grad(x), (3, 2), dilation, padding, stride),
        "col2im": (grad(cols), (7, 6), (3, 2), dilation, padding, stride),
    }


def _bad_inputs():
    """(id, call(conv2d, unfold, fold), exception type, message): bad input that must raise a
    clear exception naming the problem, before any backend runs."""
    x, w = torch.randn(2, 4, 8, 8), torch.randn(6, 4, 3, 3)
    return [
        ("channels", lambda c, u, f: c(torch.randn(2, 3, 8, 8), w), ValueError, "input has 3 channels"),
        ("groups-input", lambda c, u, f: c(x, torch.randn(6, 2, 3, 3), groups=3), ValueError, "does not divide"),
        ("groups-output", lambda c, u, f: c(x, torch.randn(6, 1, 3, 3), groups=4), ValueError, "does not divide"),
        ("groups-zero", lambda c, u, f: c(x, w, groups=0), ValueError, "groups must be a positive int"),
        ("kernel-too-big", lambda c, u, f: c(x, torch.randn(6, 4, 9, 3)), ValueError, "larger than the padded"),
        ("dilation-too-big", lambda c, u, f: c(x, w, dilation=4), ValueError, "larger than the padded"),
        ("stride-zero", lambda c, u, f: c(x, w, stride=0), ValueError, "stride must be >= 1"),
        ("stride-negative", lambda c, u, f: c(x, w, stride=(1, -1)), ValueError, "stride must be >= 1"),
        ("dilation-zero", lambda c, u, f: c(x, w, dilation=0), ValueError, "dilation must be >= 1"),
        ("padding-negative", lambda c, u, f: c(x, w, padding=-1), ValueError, "padding must be >= 0"),
        ("padding-word", lambda c, u, f: c(x, w, padding="full"), ValueError, "'same' or 'valid'"),
        ("same-strided", lambda c, u, f: c(x, w, stride=2, padding="same"), ValueError, "'same' needs stride 1"),
        ("stride-triple", lambda c, u, f: c(x, w, stride=(1, 2, 3)), TypeError, "stride must be an int or a pair"),
        ("padding-float", lambda c, u, f: c(x, w, padding=1.5), TypeError, "padding must be an int or a pair"),
        ("input-2d", lambda c, u, f: c(x[0, 0], w), ValueError, "3-D .* or 4-D"),
        ("input-5d", lambda c, u, f: c(x[None], w), ValueError, "got 5-D"),
        ("weight-3d", lambda c, u, f: c(x, w[0]), ValueError, "4-D weight"),
        ("no-output-channels", lambda c, u, f: c(x, w[:0]), ValueError, "no output channels"),
        ("bias-size", lambda c, u, f: c(x, w, torch.randn(5)), ValueError, "bias must be a 1-D tensor of 6"),
        ("weight-dtype", lambda c, u, f: c(x, w.double()), TypeError, "dtype torch.float32 and weight dtype"),
        ("bias-dtype", lambda c, u, f: c(x, w, torch.randn(6).double()), TypeError, "bias dtype"),
        ("integer", lambda c, u, f: c(x.long(), w.long()), TypeError, "floating-point"),
        ("weight-device", lambda c, u, f: c(x, w.to("meta")), ValueError, "input is on cpu but weight is on meta"),
        ("numpy-input", lambda c, u, f: c(x.numpy(), w), TypeError, "input must be a tensor, got ndarray"),
        ("list-weight", lambda c, u, f: c(x, [1.0]), TypeError, "weight must be a tensor, got list"),
        ("unfold-too-big", lambda c, u, f: u(x, 9), ValueError, "does not fit"),
        ("unfold-list", lambda c, u, f: u([x], 3), TypeError, "input must be a tensor, got list"),
        ("unfold-2d", lambda c, u, f: u(x[0, 0], 3), ValueError, "3-D or 4-D"),
        ("unfold-stride-zero", lambda c, u, f: u(x, 3, stride=0), ValueError, "stride must be >= 1"),
        ("fold-blocks", lambda c, u, f: f(torch.randn(1, 12, 7), (5, 6), 2), ValueError, "gives 4 x 5 = 20"),
        ("fold-divisible", lambda c, u, f: f(torch.randn(1, 10, 20), (5, 6), 2), ValueError, "divisible by"),
        ("fold-padding", lambda c, u, f: f(torch.randn(1, 12, 20), (5, 6), 2, padding=-1), ValueError, "padding"),
        ("fold-1d", lambda c, u, f: f(torch.randn(12), (5, 6), 2), ValueError, "2-D or 3-D"),
    ]


BAD_INPUTS = _bad_inputs()
