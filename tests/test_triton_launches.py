"""What each Triton launch is asked for, checked without a GPU.

On a GPU these decide between the right answer and a wrong one, an illegal address or a
launch error, and the rest of the suite (the interpreter, on small tensors) cannot see
them.  So the launches are recorded (`common.launch` calls `common.launcher`) and checked:

* the offset width: int64 when a tensor's offsets reach 2**31, however few elements it
  has (and one such view run for real in the interpreter, in a subprocess);
* the grid: within CUDA's limits for any group count;
* the device: each launch runs with its tensors' device current, so Triton takes that
  device's current stream;
* grad weight's split-K ranges: every pixel once, and no index past int32.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton")
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402

from cifarconv.triton_kernels import common, conv_dgrad, conv_fwd, conv_wgrad, im2col_col2im  # noqa: E402

GRID_Y_Z_LIMIT = 65535  # CUDA: a grid's y and z dimensions


@contextlib.contextmanager
def recorded_launches(current_device=lambda: None):
    """Record each launch's (kernel name, grid, args, kwargs, current device) instead of running it."""
    launches = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            def run(*args, **kwargs):
                launches.append((self.kernel.__name__, grid, args, kwargs, current_device()))

            return run

    saved = common.launcher
    common.launcher = Recorder
    try:
        yield launches
    finally:
        common.launcher = saved


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(shape, device="meta", dtype=dtype)


# -- offsets ------------------------------------------------------------------------------


def test_offset_width_follows_how_far_a_view_reaches():
    big = meta(512, 512, 128, 128)
    assert not common.index_args(big[:64])["INDEX64"]  # 2**29 elements, contiguous: int32 reaches
    assert common.index_args(big[:, :128])["INDEX64"]  # 2**30 elements, but offsets to ~2**32
    assert common.index_args(big[::4, :, ::2])["INDEX64"]
    assert not common.index_args(meta(2**31))["INDEX64"]  # its last offset, 2**31 - 1, still fits
    assert common.index_args(meta(2**31 + 1))["INDEX64"]
    assert not common.index_args(meta(2**31 - 1), meta(0, 2**40))["INDEX64"]  # empty: reaches nothing
    far = meta(2**31 + 16).as_strided((3, 1, 4, 4), (2**30, 16, 4, 1))  # 48 elements
    assert common.reach(far) == 2**31 + 15 and common.index_args(far)["INDEX64"]


def test_a_channel_slice_of_a_large_batch_launches_with_64_bit_offsets():
    """cifarconv.conv2d(big[:, :128], w, backend="triton") with big (512, 512, 128, 128): every
    pass's launch is asked for 64-bit offsets."""
    x, dy = meta(512, 512, 128, 128)[:, :128], meta(512, 512, 128, 128)[:, :64]
    w = meta(64, 128, 3, 3)
    with recorded_launches() as launches:
        conv_fwd.conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1)
        conv_dgrad.conv2d_grad_input(dy, w, (128, 128), (1, 1), (1, 1), (1, 1), 1)
        conv_wgrad.conv2d_grad_weight(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)
    assert [name for name, *_ in launches] == ["conv2d_fwd_kernel", "conv2d_dgrad_kernel", "conv2d_wgrad_kernel"]
    assert all(kwargs["INDEX64"] for _, _, _, kwargs, _ in launches)


FAR_VIEW_SCRIPT = textwrap.dedent(
    """
    import sys

    import torch
    import torch.nn.functional as F
    from cifarconv.triton_kernels import conv_dgrad, conv_fwd, conv_wgrad

    device = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    # 4 GiB of address space; on the CPU only the pages the views use are written.
    base = torch.empty(2**31 + 32, dtype=torch.float16, device=device)
    far = base.as_strided((3, 1, 4, 4), (2**30, 16, 4, 1))  # 48 elements, offsets up to 2**31 + 15
    far.copy_(torch.randn(3, 1, 4, 4, generator=g))
    dy = base.as_strided((3, 2, 4, 4), (2**30, 1, 4, 1))  # reaches as far, its 2 channels overlapping
    w = torch.randn(2, 1, 3, 3, generator=g).half().to(device)
    conv = ((1, 1), (1, 1), (1, 1), 1)
    x64, w64, dy64 = (t.double().cpu().requires_grad_() for t in (far, w, dy))
    y_want = F.conv2d(x64, w64, None, *conv)
    dx_want, dw_want = torch.autograd.grad(y_want, (x64, w64), dy64)

    def check(got, want, what):
        err = (got.double().cpu() - want).abs().max().item()
        assert err <= 4e-3 * want.abs().max().item(), (what, err)

    check(conv_fwd.conv2d(far, w, None, *conv), y_want, "forward")
    check(conv_dgrad.conv2d_grad_input(dy, w, (4, 4), *conv), dx_want, "grad input")
    check(conv_wgrad.conv2d_grad_weight(dy, far, (3, 3), *conv, False)[0], dw_want, "grad weight")
    print("ok")
    """
)


def test_a_view_reaching_past_2_31_gives_torch_s_values(triton_device):
    """The kernels run on a 48-element view whose offsets reach 2**31 + 15 (in the
    interpreter on CPU, compiled on a GPU).  With 32-bit offsets they wrap and read before
    the buffer: a crash, here in a subprocess (on the CPU about 4 GB of memory, which the
    interpreter copies back once per launch)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if triton_device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, "-c", FAR_VIEW_SCRIPT, triton_device], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (done.returncode, done.stderr[-3000:])


# -- grids ------------------------------------------------------------------------------------


def test_depthwise_conv_with_many_groups_fits_cuda_grid_limits():
    """A depthwise conv with 2**16 groups and stride 2: grad input has groups * 4 stride
    phases, the forward and grad weight at least groups sets of programs; no grid dimension
    beyond x may pass 65535, and x must cover every (set, tile) exactly."""
    groups = 2**16
    x, w, dy = meta(2, groups, 8, 8), meta(groups, 1, 3, 3), meta(2, groups, 4, 4)
    conv = ((2, 2), (1, 1), (1, 1), groups)
    with recorded_launches() as launches:
        conv_fwd.conv2d(x, w, None, *conv)
        conv_dgrad.conv2d_grad_input(dy, w, (8, 8), *conv)
        conv_wgrad.conv2d_grad_weight(dy, x, (3, 3), *conv, True)
    tile = common.INTERPRETER_TILE if common.INTERPRET else None
    for name, grid, _, kwargs, _ in launches:
        assert all(d <= GRID_Y_Z_LIMIT for d in grid[1:]), (name, grid)
        assert grid[0] <= common.MAX_PROGRAMS, (name, grid)
        sets = groups * (4 if name == "conv2d_dgrad_kernel" else 1)
        assert grid[0] % sets == 0 and grid[0] >= sets, (name, grid)
        if tile is not None:
            assert kwargs["BLOCK_M"] == tile.block_m


# -- devices ----------------------------------------------------------------------------------


def backend_launches(device="meta"):
    """(kernel, grid, args, kwargs) of every launch the backend's five host functions make for
    one small grouped, strided conv, recorded on ``device`` tensors."""
    x, w, dy = (torch.empty(s, device=device) for s in ((2, 4, 9, 8), (6, 2, 3, 3), (2, 6, 4, 8)))
    conv = ((2, 1), (1, 1), (1, 1), 2)
    window = ((3, 3), (1, 1), (1, 1), (2, 1))
    kernels = {}

    class Keep:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: kernels.setdefault(self.kernel.__name__, (self.kernel, grid, args, kwargs))

    saved, common.launcher = common.launcher, Keep
    try:
        conv_fwd.conv2d(x, w, torch.empty(6, device=device), *conv)
        conv_dgrad.conv2d_grad_input(dy, w, (9, 8), *conv)
        conv_wgrad.conv2d_grad_weight(dy, x, (3, 3), *conv, True)
        cols = im2col_col2im.im2col(x, *window)
        im2col_col2im.col2im(cols, (9, 8), *window)
    finally:
        common.launcher = saved
    return list(kernels.values())


def test_each_launch_runs_on_its_tensors_device(monkeypatch):
    """Tensors on cuda:0 while cuda:1 is current: each of the backend's launches must find
    cuda:0 current, the device whose current stream Triton then takes.  No GPU needed:
    CUDA's device switch (what `torch.cuda.device` calls) is simulated and recorded, and
    each launch's tensors are replaced by fake tensors of the same sizes and strides on
    cuda:0 (a device every CUDA machine has)."""
    current = [1]

    def exchange(index):
        previous = current[0]
        if index >= 0:
            current[0] = index
        return previous

    monkeypatch.setattr(torch.cuda, "_exchange_device", exchange)
    monkeypatch.setattr(torch.cuda, "_maybe_exchange_device", exchange)
    launches = backend_launches()
    assert len(launches) == 5
    with FakeTensorMode(), recorded_launches(lambda: current[0]) as recorded:
        for kernel, grid, args, kwargs in launches:
            on_gpu = [torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device="cuda:0")
                      if isinstance(a, torch.Tensor) else a for a in args]
            common.launch(kernel, grid, tuple(on_gpu), kwargs)
    assert [device for *_, device in recorded] == [0] * 5
    assert current[0] == 1  # restored after each launch


def test_a_launch_with_tensors_on_two_devices_is_refused():
    (kernel, grid, args, kwargs), *_ = backend_launches()
    with FakeTensorMode():
        mixed = [torch.empty(1, device="cuda:0" if i % 2 else "cpu") if isinstance(a, torch.Tensor) else a
                 for i, a in enumerate(args)]
        with pytest.raises(ValueError, match="must be on one device"):
            common.launch(kernel, grid, tuple(mixed), kwargs)


# -- grad weight's split-K ----------------------------------------------------------------


@pytest.mark.parametrize("block_k", [8, 32, 64])
@pytest.mark.parametrize("pixels", [1, 1000, 2**20 + 3, common.MAX_ROWS])
def test_split_ranges_cover_every_pixel_once_within_int32(pixels, block_k):
    for splits in (1, 3, conv_wgrad.MAX_SPLIT_K):
        per_split = conv_wgrad.split_ranges(pixels, splits, block_k)
        assert per_split % block_k == 0
        ranges = [(s * per_split, min((s + 1) * per_split, pixels)) for s in range(splits)]
        covered = [r for r in ranges if r[0] < r[1]]
        assert covered[0][0] == 0 and covered[-1][1] == pixels
        assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
        # What the kernel forms in int32: s * PER_SPLIT, p_start + PER_SPLIT, p0 + BLOCK_K - 1.
        assert max(splits * per_split, pixels + block_k - 1) < 2**31


@pytest.mark.parametrize("pass_", ["forward", "grad input", "grad weight"])
def test_too_many_pixels_for_int32_rows_is_a_clear_error(pass_):
    """One more pixel than int32 rows allow (with a tile's and a split's margin): each pass
    refuses with the advice to split the batch, before any launch."""
    h, w_ = 2**15, 2**16 - 1  # 2**31 - 2**15 pixels > MAX_ROWS
    x, dy, w = meta(1, 1, h, w_), meta(1, 1, h, w_), meta(1, 1, 1, 1)
    conv = ((1, 1), (0, 0), (1, 1), 1)
    calls = {
        "forward": lambda: conv_fwd.conv2d(x, w, None, *conv),
        "grad input": lambda: conv_dgrad.conv2d_grad_input(dy, w, (h, w_), *conv),
        "grad weight": lambda: conv_wgrad.conv2d_grad_weight(dy, x, (1, 1), *conv, True),
    }
    with recorded_launches() as launches, pytest.raises(ValueError, match="pixels is too many .* split the batch"):
        calls[pass_]()
    assert launches == []
