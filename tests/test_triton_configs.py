"""Every launch config the triton backend ships, each run explicitly on a small awkward case.

The autotuner picks one config per shape, so the suite above only ever runs the winners
(under the interpreter: the one interpreter config).  A config that miscompiles (a public
Triton conv did at num_warps=8) would then surface only on some shapes.  Here each kernel
runs with each config it can launch with (`TunedKernel`), on sizes that are not multiples
of any block, with stride, padding, dilation and groups:

* on a GPU, compiled for real with its warps and stages, in the dtypes it serves: the
  float32 / float16 / bfloat16 configs in float32 (both precision modes) and bfloat16, the
  float64 config in float64;
* under the interpreter (which ignores warps and stages), every combination of block
  sizes in float64, which checks the index math exactly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fp32
from cifarconv.registry import unavailable_reason
from conftest import REQUIRED

pytest.importorskip("triton")
from cifarconv.triton_kernels import conv_dgrad, conv_fwd, conv_wgrad  # noqa: E402

# (stride, padding, dilation, groups): a strided, padded, dilated, grouped conv and a 1x1
CONVS = [((2, 1), (1, 2), (2, 1), 2), ((1, 1), (0, 0), (1, 1), 1)]


def _params(module):
    tuned = module.TUNED
    kinds = [("gpu", c) for c in tuned.configs] + [("fp64", tuned.fp64_config), ("interpreter", tuned.interpreter_config)]
    return [
        pytest.param(kind, c, id=f"{kind}-{c.kwargs['BLOCK_M']}x{c.kwargs['BLOCK_N']}x{c.kwargs['BLOCK_K']}"
                                 f"-w{c.num_warps}s{c.num_stages}")
        for kind, c in kinds
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


# (dtype, float32 precision mode) per kind of config and device
RUNS = {
    ("gpu", "cuda"): [(torch.float32, "ieee"), (torch.float32, "tf32"), (torch.bfloat16, None)],
    ("fp64", "cuda"): [(torch.float64, None)],
    ("gpu", "cpu"): [(torch.float64, None)],
    ("fp64", "cpu"): [(torch.float64, None)],
    ("interpreter", "cpu"): [(torch.float64, None)],
}


def runs(kind, device):
    if (kind, device) not in RUNS:
        pytest.skip(f"{kind} configs never launch on {device}")  # the interpreter's config on a GPU
    for dtype, mode in RUNS[kind, device]:
        with fp32.fp32_mode(mode or "ieee"):
            yield dtype, mode


def check(got, want, dtype, mode):
    """got against the float64 reference ``want``."""
    if dtype == torch.float64:
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    elif dtype == torch.bfloat16:
        assert (got.double() - want).abs().max() <= 1.6e-2 * want.abs().max()
    else:
        fp32.assert_close_to_float64(got, want, mode)


@pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
@pytest.mark.parametrize("kind, config", _params(conv_fwd))
def test_forward_config(kind, config, conv, triton_device):
    kernel = (3, 2) if conv[0] != (1, 1) else (1, 1)
    x, w, b, y, _ = problem(triton_device, conv, kernel)
    for dtype, mode in runs(kind, triton_device):
        got = conv_fwd.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), *conv, config=config)
        check(got, y, dtype, mode)


@pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
@pytest.mark.parametrize("kind, config", _params(conv_dgrad))
def test_grad_input_config(kind, config, conv, triton_device):
    kernel = (3, 2) if conv[0] != (1, 1) else (1, 1)
    x, w, _, _, dy = problem(triton_device, conv, kernel)
    x = x.detach().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(x, w, None, *conv), x, dy)
    for dtype, mode in runs(kind, triton_device):
        got = conv_dgrad.conv2d_grad_input(dy.to(dtype), w.to(dtype), x.shape[-2:], *conv, config=config)
        check(got, want, dtype, mode)


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
@pytest.mark.parametrize("kind, config", _params(conv_wgrad))
def test_grad_weight_config(kind, config, conv, splits, triton_device):
    kernel = (3, 2) if conv[0] != (1, 1) else (1, 1)
    x, w, b, _, dy = problem(triton_device, conv, kernel)
    w, b = w.requires_grad_(), b.requires_grad_()
    want = torch.autograd.grad(F.conv2d(x, w, b, *conv), (w, b), dy)
    for dtype, mode in runs(kind, triton_device):
        got = conv_wgrad.conv2d_grad_weight(dy.to(dtype), x.to(dtype), kernel, *conv, True, config=config, splits=splits)
        for g, wnt in zip(got, want):
            check(g, wnt, dtype, mode)
