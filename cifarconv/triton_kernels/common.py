"""What the kernels share: launch configs, the dot precision, the launch helper and ``mma``.

Configs.  Each kernel ships a short list of `triton.Config` (tile sizes, warps, stages)
for float32 / float16 / bfloat16, that `triton.autotune` chooses from once per shape key
and caches, plus one small config for float64 (`TunedKernel`).  Under Triton's interpreter
(``TRITON_INTERPRET=1``) every launch would benchmark every config, so there each kernel
gets a single config sized for numpy instead.  Every config is run by
``tests/test_triton_configs.py`` and compiled for sm_80 and sm_90 by ``make triton-check``.

Precision.  float32 tiles go through tensor cores as TF32 exactly when torch's own conv
would (`cifarconv.precision`), else "ieee".  float16 / bfloat16 multiply at their own
precision and accumulate in float32.  float64 exists for gradcheck: Triton 3.6's ``tl.dot``
cannot accumulate in float64 (its ``out_dtype`` must equal the accumulator's), and the
float64 dots that newer Triton does compile run out of registers, so float64 tiles are
reduced with a broadcast multiply and ``tl.sum`` on small tiles instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from ..precision import uses_tf32

# Read the same variable Triton reads when ``@triton.jit`` runs, i.e. at import.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def config(block_m: int, block_n: int, block_k: int, num_warps: int = 4, num_stages: int = 3) -> triton.Config:
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k}, num_warps=num_warps, num_stages=num_stages
    )


# Pixel-rows x channel-columns tiles of the forward and grad-input GEMMs (BLOCK_K: the
# channels reduced per tl.dot); the last entry is for few channels (CIFAR stems, groups).
PIXEL_TILE_CONFIGS = [
    config(128, 128, 32, 8, 3),
    config(128, 64, 32, 4, 4),
    config(64, 128, 32, 4, 4),
    config(64, 64, 32, 4, 3),
    config(128, 32, 32, 4, 4),
    config(64, 32, 16, 2, 3),
]
PIXEL_TILE_INTERPRETER_CONFIG = config(128, 16, 16)  # numpy: few big programs beat many small ones
# float64: the (BLOCK_M, BLOCK_K, BLOCK_N) product of `mma` stays at 8192 values, 64 a thread.
FP64_CONFIG = config(32, 32, 8, 4, 1)
# What an autotuned choice is cached by (with the tensors' dtypes, which Triton adds).
SHAPE_KEY = ["N", "C_in_g", "H", "W", "C_out_g", "KH", "KW", "SH", "SW", "DH", "DW"]


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


def check_rows(rows: int, what: str) -> None:
    """Row indices (pixels) are int32 inside the kernels; element offsets are int64."""
    if rows >= 2**31:
        raise ValueError(f"triton backend: {what} = {rows} pixels is too many for one call (limit 2**31 - 1)")


@dataclass
class TunedKernel:
    """A ``@triton.jit`` kernel with the configs it may launch with, per kind of operand.

    ``configs`` serve float32 / float16 / bfloat16 and ``fp64_config`` float64; under the
    interpreter ``interpreter_config`` serves every dtype.  Each kind gets its own
    ``triton.autotune`` over those configs, cached by ``key`` (Triton adds the dtypes).
    """

    kernel: triton.JITFunction
    configs: list[triton.Config]
    fp64_config: triton.Config
    interpreter_config: triton.Config
    key: list[str]
    _tuned: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._tuned = {
            fp64: triton.autotune(configs=self.configs_for(dtype), key=self.key)(self.kernel)
            for fp64, dtype in ((False, torch.float32), (True, torch.float64))
        }

    def configs_for(self, dtype: torch.dtype) -> list[triton.Config]:
        """What the autotuner may pick from for operands of ``dtype``, here."""
        if INTERPRET:
            return [self.interpreter_config]
        return [self.fp64_config] if dtype == torch.float64 else self.configs

    def launch(self, grid, args: tuple, kwargs: dict, dtype: torch.dtype, config: triton.Config | None = None):
        """Run through the autotuner (`launch`), or (tests) with one given ``config``."""
        if config is not None:
            self.kernel[grid](*args, **kwargs, **config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)
            return
        launch(self._tuned[dtype == torch.float64], grid, args, kwargs)


def launch(kernel, grid, args: tuple, kwargs: dict) -> None:
    """Every launch of the backend goes through here, via ``wrap_triton``: inside a
    ``triton_op`` torch.compile then traces into the kernel instead of treating it as a
    black box (and `make triton-check` records the launches here to compile them)."""
    wrap_triton(kernel)[grid](*args, **kwargs)


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
