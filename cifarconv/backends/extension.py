"""The ``cpp`` and ``cuda`` backends: the C++/CUDA extension built from ``csrc/``.

One op family, ``cifarconv::ext_*``, with C++ kernels registered for CPU tensors and
CUDA kernels for CUDA tensors (``TORCH_LIBRARY_IMPL``); torch's dispatcher picks by
the tensors' device.  The kernels are im2col / col2im of our own plus GEMMs through
``at::mm`` (see ``csrc/conv2d.cpp``); on CPU, float32 runs the extension's own packed
GEMM with im2col in its packing instead (``csrc/cpu/``, docs/cpu-gemm.md), on the path
`cpu_gemm` reports and switches.  Fake kernels and autograd come from the op layer.

If the extension was not built, or fails to load, cifarconv still imports; asking for
``cpp`` or ``cuda`` then raises an error saying why and how to build it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..ops import register_family

BUILD_HINT = (
    "build it with `pip install --no-build-isolation -e .` from the repository "
    "(needs a C++ compiler; the CUDA kernels also need a CUDA build of torch and nvcc)"
)

try:
    from .. import _C  # loading the library registers the cifarconv::ext_* ops
except ImportError as e:  # not built, or built against another torch
    _C = None
    _LOAD_ERROR = f"the C++/CUDA extension cifarconv._C is not built or failed to load ({e}); {BUILD_HINT}"
else:
    _LOAD_ERROR = None

OPS = register_family("ext") if _C is not None else None


def unavailable_reason(device: torch.device) -> str | None:
    if _C is None:
        return _LOAD_ERROR
    if device.type == "cuda":
        if not _C.with_cuda:
            return (
                "the extension was built without its CUDA kernels (torch had no CUDA, or nvcc was not found); "
                "rebuild with a CUDA torch and nvcc, or FORCE_CUDA=1: pip install --no-build-isolation -e ."
            )
    return None


# ---------------------------------------------------------------- the CPU GEMM path

CPU_GEMM_PATHS = ("aten", "generic", "avx2", "avx512", "auto")
CPU_GEMM_INFO = ("mr", "mr_pixels", "nr", "ku", "kc", "mc", "nc", "l1d_bytes", "l2_bytes", "l3_bytes")


def _ops():
    if _C is None:
        raise RuntimeError(_LOAD_ERROR)
    return torch.ops.cifarconv


def cpu_gemm() -> str:
    """The GEMM path float32 ``cpp`` convolutions take now: ``aten`` (im2col + at::mm),
    ``generic``, ``avx2`` or ``avx512`` (the extension's own packed GEMM).  Other dtypes
    always take ``aten``.  Set by `set_cpu_gemm`, else ``CIFARCONV_CPU_GEMM``, else auto
    (the widest path this x86-64 CPU runs; ``aten`` on other CPUs)."""
    return _ops().cpu_gemm_active()


def set_cpu_gemm(path: str | None) -> str | None:
    """Switch this process's float32 ``cpp`` convolutions to ``path`` (one of
    `CPU_GEMM_PATHS`), or with None back to ``CIFARCONV_CPU_GEMM`` / auto.  Returns the
    previous switch setting (None if there was none).  A path this CPU cannot run is a
    RuntimeError naming the ones it can."""
    if path is not None and path not in CPU_GEMM_PATHS:
        raise ValueError(f"CPU GEMM path must be one of {', '.join(CPU_GEMM_PATHS)}, got {path!r}")
    return _ops().cpu_gemm_select(path)


@contextlib.contextmanager
def using_cpu_gemm(path: str | None) -> Iterator[str]:
    """``with using_cpu_gemm("aten"): ...``: `set_cpu_gemm` for the block; yields the path in effect."""
    before = set_cpu_gemm(path)
    try:
        yield cpu_gemm()
    finally:
        set_cpu_gemm(before)


def cpu_gemm_paths() -> list[str]:
    """The paths this CPU can run (``aten`` and ``generic`` everywhere)."""
    return list(_ops().cpu_gemm_supported())


def cpu_gemm_info(path: str) -> dict[str, int]:
    """A path's register tile (MR x NR, MR_PIXELS x NR where the rows are pixels, KU), its cache
    blocking (KC, MC, NC, derived from the cache sizes read at run time) and those sizes."""
    return dict(zip(CPU_GEMM_INFO, _ops().cpu_gemm_info(path)))


def cpu_fma_peak(path: str, threads: int, seconds: float = 0.3) -> float:
    """GFLOP/s of ``path``'s register-only FMA loop on ``threads`` threads at once: the
    peak its micro-kernel can approach on this machine (`cpu_gemm_info` names the tile)."""
    return _ops().cpu_fma_peak(path, threads, seconds)
