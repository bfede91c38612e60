"""The explicit-im2col floor of a conv pass: the least time the textbook design -- column
matrices in memory and one GEMM on them -- can take on this device.

    im2col_floor_ms = 2 x column bytes / copy bandwidth + GEMM ms

- Column bytes: the pass's column matrix, P x G K entries (P = N x OH x OW output pixels,
  K = C_in / G x kH x kW), written once and read once.  Forward and grad weight write it
  with im2col and read it in their GEMM; grad input writes it with its GEMM and reads it
  in col2im.  The copy bandwidth is the roofline's (``roofline.py``), which counts the bytes
  read and written, as this does.  A 1x1 kernel with stride 1 and no padding has no column
  matrix (the input already is one), so its floor is the GEMM alone.
- GEMM: the pass's GEMM at full size, with M = C_out / G, one per group, its operands laid
  out as the extension lays them out for the benchmark's memory format (csrc/conv2d.cpp):

      pass   channels_last (pixel-major columns)    NCHW (channel-major columns)
      fwd    y (P x M) = cols (P x K) @ W^T         y (M x P) = W (M x K) @ cols (K x P)
      dgrad  dcols (P x K) = dy (P x M) @ W         dcols (K x P) = W^T (K x M) @ dy (M x P)
      wgrad  dW (M x K) = dy^T (M x P) @ cols       dW (M x K) = dy (M x P) @ cols^T (P x K)

  (one product and its transpose, but a BLAS may run them at different speeds).
  ``torch.mm`` (``torch.bmm`` for groups) on this device in the benchmark's dtype, timed
  in the same run and with the same timer and statistic as the passes; float32 on CUDA
  uses TF32 exactly when the conv switch allows it, as the backends do.

So ``ms / im2col_floor_ms`` says how far a pass is from what its design must cost, beside
``ratio_to_torch``, which says how far it is from the library's convolution.  A backend
can beat this floor by never writing the columns to memory (chunks that stay in cache).
"""

from __future__ import annotations

from typing import Callable

import torch

from math import prod

from cifarconv.perf.layer import PASSES, ConvLayer  # noqa: F401  (PASSES: the passes a floor is given for)
from cifarconv.precision import conv_matmul_precision


def column_bytes(layer: ConvLayer, batch: int, element_size: int) -> int:
    """Bytes of one pass's column matrix (0 when the input is its own column matrix)."""
    if layer.kernel == (1, 1) and layer.stride == (1, 1) and layer.padding == (0, 0):
        return 0
    return prod(layer.columns_shape(batch)) * element_size


def gemm_functions(layer: ConvLayer, batch: int, dtype: torch.dtype, device: torch.device, channels_last: bool
                   ) -> dict[str, Callable[[], torch.Tensor]]:
    """One zero-argument callable per pass: that pass's GEMM on random operands."""
    ho, wo = layer.out_hw()
    g, p = layer.groups, batch * ho * wo
    m, k = layer.c_out // g, layer.c_in // g * layer.kernel[0] * layer.kernel[1]

    def rand(*shape):
        return torch.randn(g, *shape, device=device, dtype=dtype)

    def mm(a, b):
        with conv_matmul_precision(a):
            return torch.mm(a[0], b[0]) if g == 1 else torch.bmm(a, b)
    w = rand(m, k)
    if channels_last:  # pixels are rows
        cols, dy = rand(p, k), rand(p, m)
        return {"fwd": lambda: mm(cols, w.transpose(1, 2)), "dgrad": lambda: mm(dy, w),
                "wgrad": lambda: mm(dy.transpose(1, 2), cols)}
    cols, dy = rand(k, p), rand(m, p)  # channels are rows
    return {"fwd": lambda: mm(w, cols), "dgrad": lambda: mm(w.transpose(1, 2), dy),
            "wgrad": lambda: mm(dy, cols.transpose(1, 2))}


def im2col_floor_ms(nbytes: int, bandwidth_gbs: float, gemm_ms: float) -> float:
    """The floor of one pass: its columns written and read at the copy bandwidth, plus its GEMM."""
    return 2 * nbytes / (bandwidth_gbs * 1e9) * 1e3 + gemm_ms
