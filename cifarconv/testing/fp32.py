"""float32 checks against a float64 reference, in each precision mode torch's conv can be in.

On CUDA, float32 convolutions run in TF32 or in full float32 ("ieee") as
``torch.backends.cudnn.conv.fp32_precision`` says, and every cifarconv backend follows it
(`cifarconv.precision`).  A float32 result is compared with the float64 result of the same
(rounded) inputs, at a tolerance relative to the result's scale that fits the mode:
float32 rounding for "ieee", TF32's 10-bit mantissa for "tf32" (bfloat16, with 7, is
checked at 1.6e-2 elsewhere).  On CPU float32 is always float32.
"""

from __future__ import annotations

import contextlib

import torch

TOLERANCE = {"ieee": 1e-5, "tf32": 4e-3}


def modes(device) -> tuple[str, ...]:
    return ("ieee", "tf32") if torch.device(device).type == "cuda" else ("ieee",)


@contextlib.contextmanager
def fp32_mode(mode: str):
    """Set torch's conv float32 precision (the switch nn.Conv2d follows) for the block.

    cuBLAS's own matmul setting is set to the other mode, so that a backend following it
    instead of the conv switch computes in TF32 where "ieee" is asked, and fails there.
    """
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = mode
    matmul.fp32_precision = "tf32" if mode == "ieee" else "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


def assert_close_to_float64(got: torch.Tensor, want: torch.Tensor, mode: str, what: str = "") -> None:
    """``got`` (float32) is within the mode's tolerance of ``want`` (float64), relative to its scale."""
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if want.numel() == 0:
        return
    err = (got.double() - want).abs().max().item()
    scale = max(want.abs().max().item(), 1e-30)
    assert err <= TOLERANCE[mode] * scale, f"{what}: error {err:.3g} > {TOLERANCE[mode]} x {scale:.3g} ({mode})"
