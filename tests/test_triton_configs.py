"""Every launch config the triton backend can choose, each run explicitly on a small awkward case.

The tile rule (`common.choose_tile`) picks one tile per shape, so the suite above only ever
runs the tiles its small shapes get (under the interpreter: the one interpreter tile).  A
tile that miscompiles (a public Triton conv did at num_warps=8) would then surface only on
some shapes.  Here each kernel runs with each tile of the table (`common.TILES`, the
float64 tile, the interpreter's), on sizes that are multiples of no block size, with
stride, padding, dilation and groups, with few input channels (the folded-taps path) and
with many:

* under the interpreter (which ignores warps and stages), every tile in float64, which
  checks the index math exactly;
* on a GPU, compiled for real with its warps and stages, in the dtypes it serves: 16-bit
  tiles in bfloat16, float32 tiles in both precision modes, the float64 tile in float64.
  Compiling every tile there takes minutes, more than `make gpu-check` has, so by default
  a GPU runs the tiles the rule picks for ResNet-18's CIFAR layers; set
  ``CIFARCONV_ALL_TILES=1`` for all.  `make triton-check` compiles every one of them for
  sm_90 and sm_80 without a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from cifarconv.testing import fp32

pytest.importorskip("triton")
from cifarconv.triton_kernels import common, conv_dgrad, conv_fwd, conv_wgrad  # noqa: E402

# (stride, padding, dilation, groups): a strided, padded, dilated, grouped conv and a 1x1
CONVS = [((2, 1), (1, 2), (2, 1), 2), ((1, 1), (0, 0), (1, 1), 1)]
CHANNELS = {"few-channels": (6, 10), "many-channels": (36, 34)}  # (C_in, C_out): folded taps, channel blocks
TILES = [("16-bit", t) for t in common.TILES["16-bit"]] + [("float32", t) for t in common.TILES["float32"]] + [
    ("float64", common.FP64_TILE), ("interpreter", common.INTERPRETER_TILE)]
if not torch.cuda.is_available():  # the interpreter ignores warps and stages: each set of block sizes once
    TILES = list({(t.block_m, t.block_n, t.block_k): (kind, t) for kind, t in reversed(TILES)}.values())[::-1]

# (dtype, float32 precision mode) per kind of tile, on a GPU; the interpreter runs float64
GPU_RUNS = {
    "16-bit": [(torch.bfloat16, None)],
    "float32": [(torch.float32, "ieee"), (torch.float32, "tf32")],
    "float64": [(torch.float64, None)],
}


def resnet18_tiles() -> set:
    """The tiles the rule picks for ResNet-18's CIFAR layers at batch 512, in any pass and dtype."""
    layers = [(3, 64, 32, 1), (64, 64, 32, 1), (64, 128, 32, 2), (128, 128, 16, 1), (128, 256, 16, 2),
              (256, 256, 8, 1), (256, 512, 8, 2), (512, 512, 4, 1)]  # (C_in, C_out, H, stride), 3x3 and 1x1
    picked = set()
    for dtype in (torch.bfloat16, torch.float32):
        for c_in, c_out, hw, s in layers:
            pixels, taps = 512 * (hw // s) ** 2, 9
            picked |= {
                common.choose_tile(pixels, c_out, c_in * taps if c_in < 16 else c_in, dtype),
                common.choose_tile(512 * hw * hw // s // s, c_in, c_out, dtype),
                common.choose_tile(c_out, c_in * taps if c_in < 16 else c_in, pixels, dtype),
            }
    return picked


def runs(kind, tile, device):
    """(dtype, mode) pairs to run ``tile`` in here, each with the mode set."""
    if device == "cpu":
        todo = [(torch.float64, None)]
    elif kind == "interpreter":
        pytest.skip("the interpreter's tile never launches on a GPU")
    elif kind != "float64" and os.environ.get("CIFARCONV_ALL_TILES") != "1" and tile not in resnet18_tiles():
        pytest.skip("not picked for ResNet-18 (set CIFARCONV_ALL_TILES=1; make triton-check compiles it)")
    else:
        todo = GPU_RUNS[kind]
    for dtype, mode in todo:
        with fp32.fp32_mode(mode or "ieee"):
            yield dtype, mode


def problem(device, conv, channels, kernel):
    """x (channels_last), w, b, y, dy for a conv whose sizes are multiples of no block size."""
    stride, padding, dilation, groups = conv
    c_in, c_out = CHANNELS[channels]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, c_in, 11, 9, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, c_in // groups, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64)
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    x = x.to(memory_format=torch.channels_last)
    return (t.to(device) for t in (x, w, b, y, dy))


def check(got, want, dtype, mode):
    """got against the float64 reference ``want``."""
    if dtype == torch.float64:
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    elif dtype == torch.bfloat16:
        assert (got.double() - want).abs().max() <= 1.6e-2 * want.abs().max()
    else:
        fp32.assert_close_to_float64(got, want, mode)


def kernel_of(conv):
    return (3, 2) if conv[0] != (1, 1) else (1, 1)


params = pytest.mark.parametrize("kind, tile", TILES, ids=[f"{k}-{t.name}" for k, t in TILES])
convs = pytest.mark.parametrize("conv", CONVS, ids=["strided-dilated-groups", "1x1"])
channels = pytest.mark.parametrize("channels", CHANNELS)


@params
@convs
@channels
def test_forward_tile(kind, tile, conv, channels, triton_device):
    x, w, b, y, _ = problem(triton_device, conv, channels, kernel_of(conv))
    for dtype, mode in runs(kind, tile, triton_device):
        got = conv_fwd.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), *conv, tile=tile)
        check(got, y, dtype, mode)


@params
@convs
@channels
def test_grad_input_tile(kind, tile, conv, channels, triton_device):
    x, w, _, _, dy = problem(triton_device, conv, channels, kernel_of(conv))
    x = x.detach().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(x, w, None, *conv), x, dy)
    for dtype, mode in runs(kind, tile, triton_device):
        got = conv_dgrad.conv2d_grad_input(dy.to(dtype), w.to(dtype), x.shape[-2:], *conv, tile=tile)
        check(got, want, dtype, mode)


@pytest.mark.parametrize("splits", [1, 3])
@params
@convs
@channels
def test_grad_weight_tile(kind, tile, conv, channels, splits, triton_device):
    kernel = kernel_of(conv)
    x, w, b, _, dy = problem(triton_device, conv, channels, kernel)
    w, b = w.requires_grad_(), b.requires_grad_()
    want = torch.autograd.grad(F.conv2d(x, w, b, *conv), (w, b), dy)
    for dtype, mode in runs(kind, tile, triton_device):
        got = conv_wgrad.conv2d_grad_weight(dy.to(dtype), x.to(dtype), kernel, *conv, True, tile=tile, splits=splits)
        for g, wnt in zip(got, want):
            check(g, wnt, dtype, mode)
