"""What the kernels share: tile choice, the dot precision, the launch helper and ``mma``.

Tiles.  Each conv pass is one GEMM per group, M x N, reduced over K.  Its launch config (a
`Tile`: BLOCK_M x BLOCK_N output tile, BLOCK_K reduced per step, warps, pipeline stages)
is chosen from the GEMM's shape by `choose_tile` -- a rule, not an autotuner, so a new
conv geometry costs one compile per kernel and no benchmarking.  The rule picks from a
small table (`TILES`), which ``tests/test_triton_configs.py`` runs and
``make triton-check`` compiles for sm_90 and sm_80, each entry.

* 16-bit: BLOCK_K 64 (K large) else 32; fp32 (TF32 or ieee): BLOCK_K 32, one stage fewer
  (its tiles take twice the shared memory).  BLOCK_M 128 when M fills it, else 64; BLOCK_N
  the smallest of 32, 64, 128 that covers N.  8 warps for a 128 x 128 tile, else 4: at
  most 64 fp32 accumulators a thread.  These are the wgmma shapes Hopper runs well
  (multiples of 64 rows per warpgroup, N and K multiples of 16).
* float64 exists for gradcheck: Triton 3.6's ``tl.dot`` cannot accumulate in float64 (its
  ``out_dtype`` must equal the accumulator's), and the float64 dots newer Triton compiles
  run out of registers, so float64 tiles are reduced with a broadcast multiply and
  ``tl.sum`` on one small tile (`FP64_TILE`).
* Under Triton's interpreter (``TRITON_INTERPRET=1``, CPU tests) every kernel uses one big
  tile sized for numpy.

Precision.  float32 tiles go through tensor cores as TF32 exactly when torch's own conv
would (`cifarconv.precision`), else "ieee".  float16 / bfloat16 multiply at their own
precision and accumulate in float32.

Offsets.  Element offsets are int32 when every offset the call forms fits (`index_args`:
fewer registers, faster address math), else int64.  What decides is how far a tensor's
offsets reach, sum((size - 1) * stride), not how many elements it has: a view of few
elements (a channel slice of a large batch, ``x[::2]``) can reach past 2**31.  Pixel
indices are int32 (`check_rows`).

Grids are 1-D (`grid_1d`), and each launch runs on its tensors' device (`launch`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from ..precision import uses_tf32

# Read the same variable Triton reads when ``@triton.jit`` runs, i.e. at import.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@dataclass(frozen=True)
class Tile:
    """One launch config: a BLOCK_M x BLOCK_N output tile, BLOCK_K reduced per step."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int

    def kwargs(self) -> dict:
        return dict(BLOCK_M=self.block_m, BLOCK_N=self.block_n, BLOCK_K=self.block_k,
                    num_warps=self.num_warps, num_stages=self.num_stages)

    @property
    def name(self) -> str:
        return f"{self.block_m}x{self.block_n}x{self.block_k}-w{self.num_warps}s{self.num_stages}"


def _tile(m: int, n: int, k: int, sixteen_bit: bool) -> Tile:
    warps = 8 if m * n >= 128 * 128 else 4
    return Tile(m, n, k, warps, 4 if sixteen_bit else 3)


# Every tile `choose_tile` can return, per kind of operand.
TILES = {
    "16-bit": [_tile(m, n, k, True) for m in (64, 128) for n in (32, 64, 128) for k in (32, 64)],
    "float32": [_tile(m, n, 32, False) for m in (64, 128) for n in (32, 64, 128)],
}
FP64_TILE = Tile(32, 32, 8, 4, 1)  # the (M, K, N) product of `mma`: 8192 values, 64 a thread
INTERPRETER_TILE = Tile(128, 32, 32, 4, 1)  # numpy: few big programs beat many small ones


def tiles_for(dtype: torch.dtype) -> list[Tile]:
    """The tiles a kernel may launch with for operands of ``dtype``, here."""
    if INTERPRET:
        return [INTERPRETER_TILE]
    if dtype == torch.float64:
        return [FP64_TILE]
    return TILES["float32" if dtype == torch.float32 else "16-bit"]


def _cover(size: int, choices: tuple[int, ...]) -> int:
    """The smallest choice >= size, else the largest."""
    return next((c for c in choices if c >= size), choices[-1])


def choose_tile(m: int, n: int, k: int, dtype: torch.dtype) -> Tile:
    """The tile for an M x N GEMM reduced over K (per step: one tap's channels, or pixels)."""
    if INTERPRET or dtype == torch.float64:
        return tiles_for(dtype)[0]
    sixteen_bit = dtype != torch.float32
    block_k = (64 if k >= 64 else 32) if sixteen_bit else 32
    return _tile(128 if m >= 128 else 64, _cover(n, (32, 64, 128)), block_k, sixteen_bit)


def dot_args(t: torch.Tensor) -> dict:
    """Constexpr kernel arguments that follow from the operands' type (that of ``t``)."""
    dtype = t.dtype
    return {
        "PRECISION": "tf32" if uses_tf32(t) else "ieee",
        "FP64": dtype == torch.float64,
        # The interpreter's bfloat16 tl.dot is wrong (numpy has no bfloat16); widening the
        # tiles to float32 first is exact (a bf16 x bf16 product fits in float32).
        "WIDEN": INTERPRET and dtype == torch.bfloat16,
    }


def reach(t: torch.Tensor) -> int:
    """The largest element offset from ``t``'s first element that indexing it forms."""
    if t.numel() == 0:
        return 0
    return sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()))


def index_args(*tensors: torch.Tensor) -> dict:
    """``INDEX64``: whether element offsets need int64 (some tensor's offsets reach 2**31).

    Masked-off lanes (padding, rows past the end) may form larger offsets, which wrap in
    int32; they are never dereferenced.
    """
    return {"INDEX64": any(reach(t) >= 2**31 for t in tensors)}


# Pixel (row) indices are int32 in the kernels.  A program forms them up to one tile past
# the last row, and split-K rounds its ranges up to whole BLOCK_Ks (`conv_wgrad.split_ranges`),
# so the rows of one call stay this far below 2**31.
MAX_ROWS = 2**31 - 2**16
MAX_PROGRAMS = 2**31 - 1  # CUDA's limit on a grid's x dimension


def check_rows(rows: int, what: str) -> None:
    """Row indices (pixels) are int32 inside the kernels."""
    if rows > MAX_ROWS:
        raise ValueError(
            f"triton backend: {what} = {rows} pixels is too many for one call (limit 2**31 - 2**16); "
            "split the batch"
        )


def grid_1d(tiles: int, sets: int) -> tuple[int]:
    """The grid for ``sets`` (groups x stride phases, or groups x splits) of ``tiles``
    programs each, as one x dimension: program id = set * tiles + tile, which the kernel
    splits itself.  (CUDA caps a grid's y and z at 65535; a depthwise conv has thousands of
    groups.)"""
    programs = tiles * sets
    if programs > MAX_PROGRAMS:
        raise ValueError(
            f"triton backend: this call needs {programs} programs, more than one launch can have "
            f"({MAX_PROGRAMS}); split the batch"
        )
    return (programs,)


def launcher(kernel):
    """What launches ``kernel``: ``wrap_triton(kernel)`` on a GPU, so that inside a
    ``triton_op`` torch.compile traces into the kernel instead of treating it as a black
    box.  Under the interpreter the ops are opaque ``custom_op``s (`cifarconv.backends.triton`),
    and torch before 2.13 refuses to wrap an interpreted kernel: it launches as it is."""
    return kernel if INTERPRET else wrap_triton(kernel)


def launch(kernel, grid, args: tuple, kwargs: dict) -> None:
    """Every launch of the backend goes through here (`make triton-check` and the tests
    record the launches here, by replacing `launcher`).

    Triton launches on the current device and that device's current stream, so the launch
    runs with its tensors' device made current: it then runs on the stream torch orders the
    same tensors' other work on.  All its tensors must be on that one device.
    """
    devices = {a.device for a in args if isinstance(a, torch.Tensor)}
    if len(devices) != 1:
        raise ValueError(f"triton backend: a kernel's tensors must be on one device, got {sorted(map(str, devices))}")
    (device,) = devices
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        launcher(kernel)[grid](*args, **kwargs)


@triton.jit
def offset(v, INDEX64: tl.constexpr):
    """An index as an element offset: int64 when the call needs it (`index_args`)."""
    if INDEX64:
        out = v.to(tl.int64)
    else:
        out = v
    return out


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """What sums of ``dtype`` values run in: float64 for float64, float32 for every other dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@triton.jit
def zeros_acc(SHAPE: tl.constexpr, FP64: tl.constexpr):
    """A zero accumulator of shape ``SHAPE`` in the kernel's `accumulator_dtype`."""
    if FP64:
        acc = tl.zeros(SHAPE, dtype=tl.float64)
    else:
        acc = tl.zeros(SHAPE, dtype=tl.float32)
    return acc


@triton.jit
def mma(a, b, acc, PRECISION: tl.constexpr, WIDEN: tl.constexpr, FP64: tl.constexpr):
    """acc + a @ b for one pair of tiles, accumulating in acc's dtype (float32 or float64)."""
    # One branch each (no early return): Triton 3.6 would still build the tl.dot after it.
    if FP64:  # no tl.dot (see the module docstring): (M, K, 1) * (1, K, N), summed over K
        out = acc + tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    else:
        if WIDEN:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        out = tl.dot(a, b, acc, input_precision=PRECISION)
    return out
