"""The registered ops: torch.library.opcheck on every op, and torch.compile(fullgraph=True)."""

from __future__ import annotations

import pytest
import torch

from cifarconv.ops import OP_NAMES
from cifarconv.registry import resolve
from cifarconv.testing import CHECKS, Target
from cifarconv.testing.cases import op_args
from conftest import check_params


@check_params("opcheck")
def test_opcheck(param, backend, device):
    CHECKS["opcheck"].run(Target(backend, device), param)


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


def test_torch_compile_fullgraph(backend, device):
    CHECKS["compile"].run(Target(backend, device), None)


def test_torch_compile_functional_unfold_fold(backend, device):
    CHECKS["compile_unfold_fold"].run(Target(backend, device), None)


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
    args = op_args("cpu", ((2, 1), (1, 2), (2, 1), 2), channels_last=True, bias=True, reference=custom.OPS)
    for op in OP_NAMES:
        torch.library.opcheck(getattr(family, op), args[op])
    x, w, b = (t.double() for t in args["conv2d"][:3])
    conv = lambda x, w, b: family.conv2d(x, w, b, *args["conv2d"][3:])  # noqa: E731
    assert torch.autograd.gradgradcheck(conv, (x, w, b))
