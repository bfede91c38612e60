"""Every launch config the triton backend ships, each run explicitly on a small awkward case.

The autotuner picks one config per shape, so the suite above only ever runs the winners
(under the interpreter: the one interpreter config).  A config that miscompiles (a public
Triton conv did at num_warps=8) would then surface only on some shapes.  Here each kernel
runs with each config of its list -- on a GPU compiled for real, with its warps and stages;
under the interpreter (which ignores warps and stages) each combination of block sizes --
on sizes that are not multiples of any block, with stride, padding, dilation and groups.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifarconv.registry import unavailable_reason
from conftest import REQUIRED

pytest.importorskip("triton")
from cifarconv.triton_kernels import conv_dgrad, conv_fwd, conv_wgrad  # noqa: E402

# (stride, padding, dilation, groups): a strided, padded, dilated, grouped conv and a 1x1
CONVS = [((2, 1), (1, 2), (2, 1), 2), ((1, 1), (0, 0), (1, 1), 1)]


def _params(module):
    return [
        pytest.param(c, id=f"{c.kwargs['BLOCK_M']}x{c.kwargs['BLOCK_N']}x{c.kwargs['BLOCK_K']}-w{c.num_warps}s{c.num_stages}")
        for c in (*module.CONFIGS, module.INTERPRETER_CONFIG)
    ]


@pytest.fixture
def triton_device(device):
    reason = unavailable_reason("triton", device)
    if reason is not None:
        (pytest.fail if "triton" in REQUIRED else pytest.skip)(f"triton on {device}: {reason}")
    return device


def problem(device, conv, kernel):
    """x (channels_last), w, b, dy for a conv whose sizes are multiples of no block size."""
    stride, padding, dilation, groups = conv
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 11, 9, generator=g, dtype=torch.float64)
    w = torch.randn(10, 6 // groups, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(10, generator=g, dtype=torch.float64)
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    x = x.to(memory_format=torch.channels_last)
    return (t.to(device) for t in (x, w, b, y, dy))


def check(got, want, dtype):
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


def dtypes(device):
    # float64 everywhere; on a GPU also float32 (TF32 off: compared at 1e-4), the tensor-core path
    return [torch.float64] + ([torch.float32] if device == "cuda" else [])


@pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
@pytest.mark.parametrize("config", _params(conv_fwd))
def test_forward_config(config, conv, triton_device):
    kernel = (3, 2) if conv[0] != (1, 1) else (1, 1)
    x, w, b, y, _ = problem(triton_device, conv, kernel)
    for dtype in dtypes(triton_device):
        with torch.backends.cudnn.flags(allow_tf32=False):
            got = conv_fwd.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), *conv, config=config)
        check(got, y, dtype)


@pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
@pytest.mark.parametrize("config", _params(conv_dgrad))
def test_grad_input_config(config, conv, triton_device):
    kernel = (3, 2) if conv[0] != (1, 1) else (1, 1)
    x, w, _, _, dy = problem(triton_device, conv, kernel)
    x = x.detach().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(x, w, None, *conv), x, dy)
    for dtype in dtypes(triton_device):
        with torch.backends.cudnn.flags(allow_tf32=False):
            got = conv_dgrad.conv2d_grad_input(dy.to(dtype), w.to(dtype), x.shape[-2:], *conv, config=config)
        check(got, want, dtype)


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
@pytest.mark.parametrize("config", _params(conv_wgrad))
def test_grad_weight_config(config, conv, splits, triton_device):
    kernel = (3, 2) if conv[0] != (1, 1) else (1, 1)
    x, w, b, _, dy = problem(triton_device, conv, kernel)
    w, b = w.requires_grad_(), b.requires_grad_()
    want = torch.autograd.grad(F.conv2d(x, w, b, *conv), (w, b), dy)
    for dtype in dtypes(triton_device):
        with torch.backends.cudnn.flags(allow_tf32=False):
            got = conv_wgrad.conv2d_grad_weight(
                dy.to(dtype), x.to(dtype), kernel, *conv, True, config=config, splits=splits
            )
        for g, wnt in zip(got, want):
            check(g, wnt, dtype)
