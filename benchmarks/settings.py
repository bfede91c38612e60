"""What one conv_bench.py run measures on: device, dtype, layout, batch, warm-up and reps, and the
tolerance a backend's result is checked with against torch's."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A result is correct if max |result - torch's| <= TOLERANCE * max |torch's|.
TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 2e-2, torch.float16: 2e-2}
# float32 on CUDA: torch's cuDNN conv uses TF32 by default, and so does every backend then
# (cifarconv.precision); each rounds its inputs to 10 mantissa bits, so two sides may differ by a few
# 1e-4 of the largest value.
CUDA_FLOAT32_TOLERANCE = 5e-3


@dataclass(frozen=True)
class Settings:
    device: torch.device
    dtype: torch.dtype
    channels_last: bool
    batch_size: int
    warmup: int
    reps: int
    quick: bool

    @property
    def tolerance(self) -> float:
        if self.dtype == torch.float32 and self.device.type == "cuda":
            return CUDA_FLOAT32_TOLERANCE
        return TOLERANCE[self.dtype]

    def prepare(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(device=self.device, dtype=self.dtype)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last and t.dim() == 4 else t
