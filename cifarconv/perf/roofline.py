"""The device's measured limits, and the time floor they put under each conv pass.

- Peak compute: FLOP/s of one large square matmul in the dtype asked for (2 n^3 FLOPs).
- Bandwidth: bytes/s of one large tensor copy (it reads and writes every byte: 2 x size).
- Floor of a pass: max(FLOPs / peak, bytes / bandwidth), with the bytes a design of the
  pass must move (see `cifarconv.perf.layer.ConvLayer.bytes`).

Both are measured here, with the same timer as the conv passes (taking the fastest call,
as a peak should), so a floor is what this machine demonstrably does, not a data-sheet
figure.  A kernel can still beat a floor: a small layer's tensors may sit in a cache the
large copy cannot use, and on a CPU a convolution library may run closer to the
hardware's peak than a plain matmul does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .timing import time_ms

# (matmul n, copy MiB) per device type; quick=True uses the smaller pair.
SIZES = {"cuda": (8192, 1024), "cpu": (2048, 256)}
QUICK_SIZES = {"cuda": (4096, 256), "cpu": (1024, 64)}


@dataclass(frozen=True)
class Roofline:
    """Peak compute and bandwidth: measured (`measure` fills in the sizes it used) or known (sizes None)."""

    peak_tflops: float
    bandwidth_gbs: float
    matmul_n: int | None = None
    copy_bytes: int | None = None

    def floor_ms(self, flops: int, nbytes: int) -> float:
        return max(flops / (self.peak_tflops * 1e12), nbytes / (self.bandwidth_gbs * 1e9)) * 1e3

    def to_json(self) -> dict:
        return asdict(self)


def measure(device: torch.device, dtype: torch.dtype, warmup: int, reps: int, quick: bool = False) -> Roofline:
    n, mib = (QUICK_SIZES if quick else SIZES).get(device.type, SIZES["cpu"])
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device=device, dtype=dtype) for _ in range(2))
    src = torch.empty(mib * 2**20 // 4, device=device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    ms = time_ms({"matmul": lambda: torch.mm(a, b), "copy": lambda: dst.copy_(src)},
                   device, max(warmup, 1), max(reps, 3), quick, statistic="min")
    copy_bytes = 2 * src.numel() * src.element_size()
    return Roofline(
        peak_tflops=2 * n**3 / (ms["matmul"] * 1e-3) / 1e12,
        bandwidth_gbs=copy_bytes / (ms["copy"] * 1e-3) / 1e9,
        matmul_n=n,
        copy_bytes=copy_bytes,
    )
