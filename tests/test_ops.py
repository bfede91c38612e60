"""The registered ops: torch.library.opcheck on every op, and torch.compile(fullgraph=True)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cifarconv
from cifarconv.ops import OP_NAMES
from cifarconv.registry import resolve

CONFIGS = [  # (stride, padding, dilation, groups)
    pytest.param(((1, 1), (1, 1), (1, 1), 1), id="3x3-pad1"),
    pytest.param(((2, 1), (1, 2), (2, 1), 2), id="asym-groups"),
]


def op_args(device, conv, channels_last, bias):
    """Arguments for each of the five ops, all tensors requiring grad."""
    stride, padding, dilation, groups = conv
    x = torch.randn(2, 4, 7, 6, device=device)
    w = torch.randn(6, 4 // groups, 3, 2, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    b = torch.randn(6, device=device) if bias else None
    ops = resolve("custom", torch.device(device))  # reference values to build grad_output and columns
    y = ops.conv2d(x, w, b, stride, padding, dilation, groups)
    cols = ops.im2col(x, (3, 2), dilation, padding, stride)
    grad = lambda t: t.detach().clone().requires_grad_()  # noqa: E731
    return {
        "conv2d": (grad(x), grad(w), grad(b) if bias else None, stride, padding, dilation, groups),
        "conv2d_grad_input": (grad(y), grad(w), (7, 6), stride, padding, dilation, groups),
        "conv2d_grad_weight": (grad(y), grad(x), (3, 2), stride, padding, dilation, groups, bias),
        "im2col": (grad(x), (3, 2), dilation, padding, stride),
        "col2im": (grad(cols), (7, 6), (3, 2), dilation, padding, stride),
    }


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("conv", CONFIGS)
@pytest.mark.parametrize("op", OP_NAMES)
def test_opcheck(op, conv, channels_last, bias, backend, device):
    family = resolve(backend, torch.device(device))
    args = op_args(device, conv, channels_last, bias)[op]
    torch.library.opcheck(getattr(family, op), args)


@pytest.fixture
def nan_filled_empties():
    """torch.empty fills its memory with NaN while this is on, so memory no kernel wrote shows."""
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    # with torch.utils.deterministic.fill_uninitialized_memory; warn_only: no op is refused for it
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


@pytest.mark.parametrize("c_in, c_out", [(0, 3), (4, 0)], ids=["no-input-channels", "no-output-channels"])
def test_ops_with_zero_channels(c_in, c_out, backend, device, nan_filled_empties):
    """Called directly, each op computes a convolution with no input or no output channels as
    the sum over nothing it is: y is the bias, dx zeros, dw empty, db dy's sum over pixels.
    (cifarconv.conv2d itself gives torch's result, checked with the other cases.)"""
    family = resolve(backend, torch.device(device))
    conv = ((1, 1), (1, 1), (1, 1), 1)
    x = torch.randn(2, c_in, 5, 4, device=device, dtype=torch.float64)
    w = torch.randn(c_out, c_in, 3, 3, device=device, dtype=torch.float64)
    b = torch.randn(c_out, device=device, dtype=torch.float64)
    dy = torch.randn(2, c_out, 5, 4, device=device, dtype=torch.float64)
    torch.testing.assert_close(family.conv2d(x, w, b, *conv), b.view(1, -1, 1, 1).expand(2, c_out, 5, 4))
    torch.testing.assert_close(family.conv2d(x, w, None, *conv), x.new_zeros(2, c_out, 5, 4))
    torch.testing.assert_close(family.conv2d_grad_input(dy, w, (5, 4), *conv), x.new_zeros(2, c_in, 5, 4))
    dw, db = family.conv2d_grad_weight(dy, x, (3, 3), *conv, True)
    assert dw.shape == w.shape
    torch.testing.assert_close(dw, torch.zeros_like(w))
    torch.testing.assert_close(db, dy.sum((0, 2, 3)))


class Net(nn.Module):
    def __init__(self, backend):
        super().__init__()
        self.a = cifarconv.Conv2d(3, 8, 3, padding=1, backend=backend)
        self.b = cifarconv.Conv2d(8, 8, 3, stride=2, padding="valid", groups=2, bias=False, backend=backend)
        self.c = cifarconv.Conv2d(8, 4, 2, padding="same", padding_mode="reflect", backend=backend)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def test_torch_compile_fullgraph(backend, device):
    torch.manual_seed(0)
    net = Net(backend).to(device)
    compiled = torch.compile(net, fullgraph=True)
    x = torch.randn(2, 3, 10, 10, device=device, requires_grad=True)
    y = compiled(x)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    y_ref = net(x)
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-4)


def test_torch_compile_functional_unfold_fold(backend, device):
    def f(x):
        cols = cifarconv.unfold(x, 3, padding=1, backend=backend)
        return cifarconv.fold(cols * 2, x.shape[-2:], 3, padding=1, backend=backend)

    x = torch.randn(2, 3, 6, 5, device=device)
    torch.testing.assert_close(torch.compile(f, fullgraph=True)(x), f(x))


def test_register_family_plugs_in_ops_defined_elsewhere():
    """The path the C++ extension takes: ops defined outside Python's custom_op get fake + autograd."""
    from cifarconv.backends import custom
    from cifarconv.ops import SCHEMAS, qualname, register_family

    lib = torch.library.Library("cifarconv", "FRAGMENT")  # stands in for a C++ TORCH_LIBRARY block
    for op, schema in SCHEMAS.items():
        lib.define(f"plugtest_{op}{schema}")
        lib.impl(f"plugtest_{op}", getattr(custom, op), "CPU")
    family = register_family("plugtest")
    assert family.conv2d is torch.ops.cifarconv.plugtest_conv2d.default
    assert family.qualname("im2col") == qualname("plugtest", "im2col") == "cifarconv::plugtest_im2col"
    args = op_args("cpu", ((2, 1), (1, 2), (2, 1), 2), channels_last=True, bias=True)
    for op in OP_NAMES:
        torch.library.opcheck(getattr(family, op), args[op])
    x, w, b = (t.double() for t in args["conv2d"][:3])
    conv = lambda x, w, b: family.conv2d(x, w, b, *args["conv2d"][3:])  # noqa: E731
    assert torch.autograd.gradgradcheck(conv, (x, w, b))
