"""float32 precision: every backend follows the switch that governs ``nn.Conv2d``.

On CUDA, torch's own float32 convolution (cuDNN) multiplies in TF32 on tensor cores exactly
when ``torch.backends.cudnn.conv.fp32_precision == "tf32"`` -- the default; the older
``torch.backends.cudnn.allow_tf32 = False`` sets it to full fp32 too.  cifarconv's backends
read that same switch at every call, so one setting controls them all:

* ``triton``: ``tl.dot(..., input_precision="tf32")`` or ``"ieee"``;
* ``custom``: its ``torch.matmul`` calls run with cuBLAS's matmul precision set to the conv
  switch (`conv_matmul_precision`), then restored;
* ``cuda``: the same, in C++, around its ``at::mm`` calls (``csrc/conv2d.cpp``).

On CPU, float32 is computed in float32 by every backend.  float64 never uses TF32, and
float16 / bfloat16 multiply at their own precision with float32 accumulation.

Under ``torch.compile`` the ``triton`` kernels hold the choice as a compile-time constant,
and torch.compile does not watch the conv switch: a compiled model keeps the precision it
was compiled with until it is recompiled (docs/precision.md).
"""

from __future__ import annotations

import contextlib

import torch


def conv_allows_tf32() -> bool:
    """Whether a float32 convolution on CUDA may use TF32 now, as torch's own would."""
    conv = getattr(torch.backends.cudnn, "conv", None)  # torch >= 2.9: the per-op switch
    if conv is not None:
        return conv.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


def uses_tf32(t: torch.Tensor) -> bool:
    """Whether a conv on ``t`` multiplies in TF32 under the current setting."""
    return t.is_cuda and t.dtype == torch.float32 and conv_allows_tf32()


@contextlib.contextmanager
def conv_matmul_precision(t: torch.Tensor):
    """Within this block, float32 CUDA matmuls on ``t``'s device follow the conv switch.

    The setting is process-wide while the block runs (cuBLAS reads one global flag), and
    is restored exactly afterwards.  Nothing changes for other dtypes or devices.
    """
    if not (t.is_cuda and t.dtype == torch.float32):
        yield
        return
    matmul = torch.backends.cuda.matmul
    saved = matmul.fp32_precision
    wanted = "tf32" if conv_allows_tf32() else "ieee"
    if saved == wanted:
        yield
        return
    matmul.fp32_precision = wanted
    try:
        yield
    finally:
        matmul.fp32_precision = saved
