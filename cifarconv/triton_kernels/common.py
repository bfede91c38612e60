"""What the kernels share: launch configs, the dot precision, the launch helper and ``mma``.

Configs.  Each kernel ships a short list of `triton.Config` (tile sizes, warps, stages)
that `triton.autotune` chooses from, once per shape key, and caches.  Under Triton's
interpreter (``TRITON_INTERPRET=1``) every launch would benchmark every config, so there
the autotuner gets a single config sized for numpy instead.  Every config in either list
is run by ``tests/test_triton_configs.py``; on a GPU that compiles and runs each for real.

Precision.  float32 tiles go through tensor cores as TF32 exactly when
``torch.backends.cudnn.allow_tf32`` allows it (as torch's own conv does), else "ieee".
float16 / bfloat16 multiply at their own precision and accumulate in float32; float64
accumulates in float64 ("ieee": Triton lowers a float64 ``tl.dot`` to FMAs / DMMA).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

# Read the same variable Triton reads when ``@triton.jit`` runs, i.e. at import.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def config(block_m: int, block_n: int, block_k: int, num_warps: int = 4, num_stages: int = 3) -> triton.Config:
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k}, num_warps=num_warps, num_stages=num_stages
    )


def autotune_configs(gpu: list[triton.Config], interpreted: triton.Config) -> list[triton.Config]:
    """The configs the autotuner may pick from here: one under the interpreter, else the GPU list."""
    return [interpreted] if INTERPRET else gpu


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
# What an autotuned choice is cached by (with the tensors' dtypes, which Triton adds).
SHAPE_KEY = ["N", "C_in_g", "H", "W", "C_out_g", "KH", "KW", "SH", "SW", "DH", "DW"]


def dot_args(dtype: torch.dtype) -> dict:
    """Constexpr kernel arguments that follow from the element type."""
    tf32 = dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    return {
        "PRECISION": "tf32" if tf32 else "ieee",
        "FP64": dtype == torch.float64,
        # The interpreter's bfloat16 tl.dot is wrong (numpy has no bfloat16); widening the
        # tiles to float32 first is exact (a bf16 x bf16 product fits in float32).
        "WIDEN": INTERPRET and dtype == torch.bfloat16,
    }


def check_rows(rows: int, what: str) -> None:
    """Row indices (pixels) are int32 inside the kernels; element offsets are int64."""
    if rows >= 2**31:
        raise ValueError(f"triton backend: {what} = {rows} pixels is too many for one call (limit 2**31 - 1)")


def launch(kernel, grid, args: tuple, kwargs: dict, config: triton.Config | None = None) -> None:
    """Run an autotuned ``kernel``: through the autotuner, or (tests) with one given ``config``.

    The autotuned launch goes through ``wrap_triton`` so that inside a ``triton_op``
    torch.compile traces into the kernel instead of treating it as a black box.
    """
    if config is None:
        wrap_triton(kernel)[grid](*args, **kwargs)
    else:
        kernel.fn[grid](
            *args, **kwargs, **config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages
        )


@triton.jit
def mma(a, b, acc, PRECISION: tl.constexpr, WIDEN: tl.constexpr):
    """acc + a @ b for one pair of tiles, accumulating in acc's dtype (float32 or float64)."""
    if WIDEN:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=PRECISION)
