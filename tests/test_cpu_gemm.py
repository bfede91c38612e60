"""The extension's own CPU GEMM (csrc/cpu/gemm/, docs/cpu-gemm.md): every path, in float32.

float32 ``cpp`` convolutions run the extension's packed GEMM on the path `cpu_gemm` names
(generic, avx2, avx512), or ``aten`` (im2col + at::mm); float64, bfloat16 and float16
always take ``aten``.  So the float64 gradcheck suite does not reach the packed GEMM, and
this file checks it in float32 against a float64 reference, on every path this CPU runs:

* the case grid: edge tails (M, N and K not multiples of MR, NR or KC), 1x1, strided,
  dilated, grouped, padded and wide kernels, random shapes, both memory formats, all
  three passes (forward with bias, grad input, grad weight with grad bias);
* the tolerance is the float32 rounding bound of a sum of that many terms:
  |result - exact| <= c * length * 2^-24 * (the same sum of absolute values);
* switching paths (in process and by CIFARCONV_CPU_GEMM) and its errors.

With CIFARCONV_CPU_GEMM set (CI runs the grid once per path that way), the grid runs on
that path alone, taken from the environment; otherwise on every path, switched in process.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from cifarconv.backends import extension

pytestmark = pytest.mark.skipif(extension._C is None, reason="the extension is not built")

FORCED = os.environ.get("CIFARCONV_CPU_GEMM") or None
ALL_PATHS = ("aten", "generic", "avx2", "avx512")


def grid_paths() -> list[str]:
    if extension._C is None:
        return []
    if FORCED is not None:
        return [FORCED]
    return extension.cpu_gemm_paths()


@pytest.fixture(autouse=True)
def _no_switch_left_over():
    extension.set_cpu_gemm(None) if extension._C is not None else None
    yield
    extension.set_cpu_gemm(None) if extension._C is not None else None


@dataclass(frozen=True)
class Conv:
    id: str
    n: int
    c_in: int
    hw: tuple[int, int]
    c_out: int
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def window(self):
        return self.stride, self.padding, self.dilation, self.groups


# MR x NR is 4 x 8 (generic), 6 x 16 (avx2), 8 x 32 (avx512; 14 x 32 where the rows are
# pixels); KC is 768, 384 and 192 with a 48 KB L1; MC / NC a few hundred to 1400 pixels
# (cpu_gemm_info has the exact ones).
CASES = [
    Conv("tails-m37-k207-p429", n=3, c_in=23, hw=(13, 11), c_out=37),
    Conv("k810-past-every-kc", n=2, c_in=90, hw=(6, 6), c_out=5),
    Conv("pixels-past-mc-nc", n=3, c_in=3, hw=(25, 23), c_out=9),
    Conv("1x1", n=2, c_in=17, hw=(7, 9), c_out=33, kernel=(1, 1), padding=(0, 0)),
    Conv("1x1-stride2", n=2, c_in=16, hw=(9, 9), c_out=20, kernel=(1, 1), stride=(2, 2), padding=(0, 0)),
    Conv("3x3-stride2", n=2, c_in=8, hw=(10, 9), c_out=12, stride=(2, 2)),
    Conv("2x2-stride3", n=2, c_in=5, hw=(11, 10), c_out=7, kernel=(2, 2), stride=(3, 3), padding=(0, 0)),
    Conv("dilated", n=2, c_in=6, hw=(11, 12), c_out=10, dilation=(2, 2), padding=(2, 2)),
    Conv("asymmetric", n=2, c_in=4, hw=(9, 10), c_out=6, kernel=(2, 3), stride=(1, 2), padding=(0, 1),
         dilation=(2, 1)),
    Conv("stride2-dilated-groups", n=2, c_in=6, hw=(9, 8), c_out=6, stride=(2, 1), padding=(2, 1),
         dilation=(2, 2), groups=3),
    Conv("grouped", n=2, c_in=12, hw=(8, 8), c_out=9, groups=3),
    Conv("depthwise", n=2, c_in=8, hw=(7, 7), c_out=16, groups=8),
    Conv("padding-past-kernel", n=2, c_in=4, hw=(7, 6), c_out=6, kernel=(2, 2), padding=(3, 3)),
    Conv("5x5-pad2", n=2, c_in=3, hw=(16, 16), c_out=8, kernel=(5, 5), padding=(2, 2)),
    Conv("wide-kernel-1x17", n=2, c_in=3, hw=(3, 20), c_out=4, kernel=(1, 17), padding=(0, 2)),
    Conv("kernel-fills-input", n=3, c_in=5, hw=(4, 5), c_out=3, kernel=(4, 5), padding=(0, 0)),
    Conv("one-channel", n=2, c_in=1, hw=(7, 6), c_out=1),  # NCHW and NHWC are the same tensor
    Conv("one-channel-in", n=2, c_in=1, hw=(9, 8), c_out=40),
    Conv("many-small-images", n=40, c_in=16, hw=(4, 4), c_out=24),
    Conv("threads-split-channels", n=1, c_in=64, hw=(4, 4), c_out=72),  # more channels than pixels
    Conv("grad-weight-split-columns", n=2, c_in=64, hw=(6, 6), c_out=32),
    Conv("grad-weight-split-pixels", n=4, c_in=8, hw=(16, 16), c_out=24),
    # ResNet-18's 512-channel layers at batch 16 (fewer input channels, to stay quick): dW's
    # rows pass the MC a 2 MB L2 gives (a few hundred), and the pixels (grad weight's k)
    # fill a whole KC, so grad weight packs full blocks of dy in several row blocks.
    Conv("512-channels-4x4", n=16, c_in=24, hw=(4, 4), c_out=512),
    Conv("512-channels-1x1-stride2", n=16, c_in=96, hw=(8, 8), c_out=512, kernel=(1, 1), stride=(2, 2),
         padding=(0, 0)),
]


def random_cases(count: int, seed: int = 27) -> list[Conv]:
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        groups = rng.choice((1, 1, 2, 3))
        kernel = (rng.randint(1, 5), rng.randint(1, 5))
        stride = (rng.randint(1, 3), rng.randint(1, 3))
        dilation = (rng.randint(1, 2), rng.randint(1, 2))
        padding = (rng.randint(0, 3), rng.randint(0, 3))
        hw = tuple(rng.randint(1, 14) for _ in range(2))
        reach = [dilation[d] * (kernel[d] - 1) + 1 for d in range(2)]
        if any(hw[d] + 2 * padding[d] < reach[d] for d in range(2)):
            continue
        cases.append(Conv(f"random-{len(cases)}", n=rng.randint(1, 4), c_in=groups * rng.randint(1, 12),
                          hw=hw, c_out=groups * rng.randint(1, 12), kernel=kernel, stride=stride,
                          padding=padding, dilation=dilation, groups=groups))
    return cases


GRID = CASES + random_cases(8)
UNIT = 2.0**-24  # float32's unit roundoff


def assert_within_rounding(got: torch.Tensor, exact: torch.Tensor, magnitude: torch.Tensor, length: int, what: str):
    """|got - exact| <= 2 (length + 4) u |.| elementwise: float32 rounding of a sum of
    `length` terms, whatever order the GEMM sums them in (`magnitude`: the same sum of
    absolute values)."""
    assert got.dtype == torch.float32 and got.shape == exact.shape, (what, got.dtype, got.shape, exact.shape)
    bound = 2 * (length + 4) * UNIT * magnitude
    err = (got.double() - exact).abs()
    worst = (err - bound).max().item() if err.numel() else 0.0
    assert worst <= 0, f"{what}: error {err.max().item():.3g} past the rounding bound by {worst:.3g}"


def check_passes(case: Conv, layout: str, seed: int = 0):
    ops = torch.ops.cifarconv
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.n, case.c_in, *case.hw, generator=g)
    w = torch.randn(case.c_out, case.c_in // case.groups, *case.kernel, generator=g)
    b = torch.randn(case.c_out, generator=g)
    kw = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    y64 = F.conv2d(x.double(), w.double(), b.double(), **kw)
    dy = torch.randn(y64.shape, generator=g)
    if layout == "channels_last":
        x, dy = x.contiguous(memory_format=torch.channels_last), dy.contiguous(memory_format=torch.channels_last)

    def backward(dy_, x_, w_):
        return torch.ops.aten.convolution_backward(dy_, x_, w_, [case.c_out], case.stride, case.padding,
                                                   case.dilation, False, (0, 0), case.groups, (True, True, True))

    ax, aw, ady = x.double().abs(), w.double().abs(), dy.double().abs()
    taps = case.kernel[0] * case.kernel[1]

    y = ops.ext_conv2d(x, w, b, *case.window)
    assert_within_rounding(y, y64, F.conv2d(ax, aw, b.double().abs(), **kw),
                           case.c_in // case.groups * taps + 1, "forward")

    dx64, dw64, db64 = backward(dy.double(), x.double(), w.double())
    dxa, dwa, dba = backward(ady, ax, aw)
    dx = ops.ext_conv2d_grad_input(dy, w, case.hw, *case.window)
    assert_within_rounding(dx, dx64, dxa, case.c_out // case.groups * taps, "grad input")
    dw, db = ops.ext_conv2d_grad_weight(dy, x, case.kernel, *case.window, True)
    pixels = y64.shape[0] * y64.shape[2] * y64.shape[3]
    assert_within_rounding(dw, dw64, dwa, pixels + torch.get_num_threads(), "grad weight")
    assert_within_rounding(db, db64, dba, pixels + torch.get_num_threads(), "grad bias")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", GRID, ids=lambda c: c.id)
@pytest.mark.parametrize("path", grid_paths())
def test_fp32_case_grid(path, case, layout):
    """All three passes of one case on one path, float32 against float64."""
    if FORCED is not None:  # the environment chose the path
        assert FORCED == "auto" or extension.cpu_gemm() == FORCED
        check_passes(case, layout)
    else:
        with extension.using_cpu_gemm(path) as active:
            assert active == path
            check_passes(case, layout)


# Cache blocks far smaller than any cache gives (KC, MC, NC = 16, 28, 64, rounded down per
# path), so that every loop of the GEMM runs many blocks with tails on shapes this small,
# whatever this machine's caches are: MC = 28 is not a multiple of avx512's MR = 8, nor
# avx2's MR = 6.
TINY_BLOCKING = "16,28,64"
TINY_CASES = [c for c in CASES if c.id in ("tails-m37-k207-p429", "3x3-stride2", "stride2-dilated-groups",
                                           "threads-split-channels", "grad-weight-split-columns",
                                           "grad-weight-split-pixels")]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", TINY_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("path", grid_paths())
def test_fp32_tiny_cache_blocks(path, case, layout, monkeypatch):
    """All three passes with tiny cache blocks (CIFARCONV_CPU_GEMM_BLOCKING)."""
    monkeypatch.setenv("CIFARCONV_CPU_GEMM_BLOCKING", TINY_BLOCKING)
    if path != "aten":
        info = extension.cpu_gemm_info(path)
        assert (info["kc"], info["mc"]) == (16, 28 // info["mr_pixels"] * info["mr_pixels"])
    if FORCED is not None:
        check_passes(case, layout)
    else:
        with extension.using_cpu_gemm(path):
            check_passes(case, layout)


@pytest.mark.parametrize("path", grid_paths())
def test_strided_views(path):
    """Inputs that are views with strides of their own (every second column, a channel
    slice): the packers read any strides."""
    ops = torch.ops.cifarconv
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 10, 9, 16, generator=g)[:, 1:8, :, ::2]
    w = torch.randn(6, 7, 3, 3, generator=g)
    dy = torch.randn(2, 6, 8, 9, generator=g).transpose(2, 3)
    with extension.using_cpu_gemm(path):
        y = ops.ext_conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1)
        dx = ops.ext_conv2d_grad_input(dy, w, (9, 8), (1, 1), (1, 1), (1, 1), 1)
        dw, _ = ops.ext_conv2d_grad_weight(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, False)
    ref = torch.ops.aten.convolution_backward(dy.double(), x.double(), w.double(), None, (1, 1), (1, 1), (1, 1),
                                              False, (0, 0), 1, (True, True, False))
    torch.testing.assert_close(y.double(), F.conv2d(x.double(), w.double(), padding=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx.double(), ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw.double(), ref[1], rtol=1e-5, atol=1e-4)


def test_paths_and_the_switch():
    paths = extension.cpu_gemm_paths()
    assert {"aten", "generic"} <= set(paths) and set(paths) <= set(ALL_PATHS)
    for path in paths:
        with extension.using_cpu_gemm(path) as active:
            assert active == path == extension.cpu_gemm()
    with extension.using_cpu_gemm("auto") as best:  # the widest own path on x86-64, at::mm elsewhere
        x86 = platform.machine().lower() in ("x86_64", "amd64")
        assert best == ([p for p in ("avx512", "avx2", "generic") if p in paths][0] if x86 else "aten")
    assert extension.set_cpu_gemm("aten") is None
    assert extension.set_cpu_gemm(None) == "aten"


def test_environment_forces_a_path(monkeypatch):
    for path in extension.cpu_gemm_paths():
        monkeypatch.setenv("CIFARCONV_CPU_GEMM", path)
        assert extension.cpu_gemm() == path
    monkeypatch.setenv("CIFARCONV_CPU_GEMM", "aten")
    with extension.using_cpu_gemm("generic"):  # the in-process switch wins
        assert extension.cpu_gemm() == "generic"
    assert extension.cpu_gemm() == "aten"


def test_bad_path_names_are_clear_errors(monkeypatch):
    import cifarconv

    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    monkeypatch.setenv("CIFARCONV_CPU_GEMM", "fastest")
    with pytest.raises(RuntimeError, match="CIFARCONV_CPU_GEMM must be one of aten, generic, avx2, avx512 or auto, "
                                           "got 'fastest'"):
        cifarconv.conv2d(x, w, backend="cpp")
    with pytest.raises(RuntimeError, match="CIFARCONV_CPU_GEMM must be one of"):  # every dtype checks it
        cifarconv.conv2d(x.double(), w.double(), backend="cpp")
    with pytest.raises(ValueError, match="CPU GEMM path must be one of"):
        extension.set_cpu_gemm("sse")


def test_forcing_an_isa_the_cpu_lacks_is_an_error(monkeypatch):
    """Paths this CPU lacks raise, in process and from the environment, naming the ones it
    has; those it has run."""
    import cifarconv

    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    supported = extension.cpu_gemm_paths()
    for path in ALL_PATHS:
        if path in supported:
            with extension.using_cpu_gemm(path):
                torch.testing.assert_close(cifarconv.conv2d(x, w, backend="cpp"), F.conv2d(x, w))
            continue
        with pytest.raises(RuntimeError, match=f"cannot run the {path} path .*the paths it can run: aten, generic"):
            extension.set_cpu_gemm(path)
        monkeypatch.setenv("CIFARCONV_CPU_GEMM", path)
        with pytest.raises(RuntimeError, match=f"CIFARCONV_CPU_GEMM={path}: this CPU cannot run"):
            cifarconv.conv2d(x, w, backend="cpp")
        monkeypatch.delenv("CIFARCONV_CPU_GEMM")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_dtypes_take_aten_on_every_path(dtype):
    """float64, bfloat16 and float16 run im2col + at::mm whatever the path: bitwise the
    same results as with the aten path."""
    ops = torch.ops.cifarconv
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 9, 9, generator=g).to(dtype)
    w = torch.randn(5, 6, 3, 3, generator=g).to(dtype)
    dy = torch.randn(2, 5, 5, 5, generator=g).to(dtype)

    def run():
        return (ops.ext_conv2d(x, w, None, (2, 2), (1, 1), (1, 1), 1),
                ops.ext_conv2d_grad_input(dy, w, (9, 9), (2, 2), (1, 1), (1, 1), 1),
                *ops.ext_conv2d_grad_weight(dy, x, (3, 3), (2, 2), (1, 1), (1, 1), 1, True))

    with extension.using_cpu_gemm("aten"):
        want = run()
    for path in extension.cpu_gemm_paths():
        with extension.using_cpu_gemm(path):
            for got, ref in zip(run(), want):
                assert torch.equal(got, ref), path


def test_info_and_fma_peak():
    for path in extension.cpu_gemm_paths():
        if path == "aten":
            with pytest.raises(RuntimeError, match="at::mm"):
                extension.cpu_gemm_info(path)
            continue
        info = extension.cpu_gemm_info(path)
        assert info["kc"] % info["ku"] == 0 and info["mc"] % info["mr_pixels"] == 0 and info["nc"] % info["nr"] == 0
        assert info["l1d_bytes"] > 0 and info["l2_bytes"] > 0
        assert extension.cpu_fma_peak(path, 1, 0.02) > 0
    with pytest.raises(RuntimeError, match="threads must be 1 to"):
        extension.cpu_fma_peak("generic", torch.get_num_threads() + 1, 0.02)
