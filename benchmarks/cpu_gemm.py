"""The CPU side of the benchmark: cpp's GEMM paths as rows, and the machine they run on.

On CPU, ``cpp`` runs float32 convolutions on one of several GEMM paths (``aten``: im2col +
at::mm; ``generic``, ``avx2``, ``avx512``: the extension's own packed GEMM, docs/cpu-gemm.md).
The benchmark times them side by side in one run as rows ``cpp[aten]``, ``cpp[avx512]``:
each call switches the path in process (`cifarconv.backends.extension.set_cpu_gemm`) and
back.  `machine` describes the CPU -- its model, the instruction sets that matter here, the
paths and their blocking -- and measures its FMA peak with the extension's register-only
FMA loop, at one thread and at the run's thread count: the denominator of "% peak".
"""

from __future__ import annotations

import os
import platform

import torch

from cifarconv.backends import extension

# /proc/cpuinfo flags worth naming beside a CPU figure.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def paths() -> list[str]:
    """The GEMM paths this CPU runs (just aten without the extension)."""
    return extension.cpu_gemm_paths() if extension._C is not None else ["aten"]


def resolve(path: str) -> str:
    """``auto`` -> the path it means here; other names as they are."""
    if path != "auto":
        return path
    with extension.using_cpu_gemm("auto") as active:
        return active


def backend_name(label: str) -> str:
    """``cpp[avx512]`` -> ``cpp``: the backend a row runs."""
    return label.split("[", 1)[0]


def path_of(label: str) -> str | None:
    """``cpp[avx512]`` -> ``avx512``; None for a row without a path."""
    return label[label.index("[") + 1:-1] if "[" in label else None


def on_path(label: str, fn):
    """fn, run on the row's GEMM path (the switch set for the call and restored after)."""
    path = path_of(label)
    if path is None:
        return fn

    def run():
        before = extension.set_cpu_gemm(path)
        try:
            return fn()
        finally:
            extension.set_cpu_gemm(before)
    return run


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor() or platform.machine()


def isa_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in ISA_FLAGS if flag in flags]


def machine(device: torch.device, quick: bool = False) -> dict | None:
    """The CPU, its ISA, cpp's GEMM paths with their blocking, and each own path's FMA peak
    (GFLOP/s) at 1 thread and at the run's thread count; None on other devices."""
    if device.type != "cpu":
        return None
    threads = torch.get_num_threads()
    seconds = 0.05 if quick else 0.3
    own = [p for p in paths() if p != "aten"]
    peaks = {p: {"1": extension.cpu_fma_peak(p, 1, seconds), str(threads): extension.cpu_fma_peak(p, threads, seconds)}
             for p in own}
    widest = own[-1] if own else None  # paths() lists generic, avx2, avx512 in that order
    return {
        "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "torch_threads": threads,
        "isa_flags": isa_flags(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_gemm_paths": paths(), "cpu_gemm_auto": resolve("auto") if extension._C is not None else "aten",
        "cpu_gemm_info": {p: extension.cpu_gemm_info(p) for p in own},
        "fma_peak_gflops": {
            "per_path": peaks,
            "path": widest,
            "at_run_threads": peaks[widest][str(threads)] if widest else None,
        },
    }


def describe(m: dict) -> str:
    """The machine in two lines, for the run's heading."""
    peak = m["fma_peak_gflops"]
    per_path = ", ".join(f"{p} {v['1']:.0f} / {v[str(m['torch_threads'])]:.0f}" for p, v in peak["per_path"].items())
    info = m["cpu_gemm_info"].get(peak["path"]) or {}
    tile = (f"; {peak['path']}: MR x NR {info['mr']} x {info['nr']} (pixel rows {info['mr_pixels']}), KC {info['kc']}, "
            f"MC {info['mc']}, NC {info['nc']} "
            f"(L1d {info['l1d_bytes'] >> 10} KiB, L2 {info['l2_bytes'] >> 10} KiB)" if info else "")
    return (f"CPU: {m['cpu_model']} | ISA: {' '.join(m['isa_flags']) or '-'} | torch CPU capability "
            f"{m['torch_cpu_capability']} | cpp GEMM paths {', '.join(m['cpu_gemm_paths'])} (auto: {m['cpu_gemm_auto']})"
            f"{tile}\nFMA peak, GFLOP/s at 1 / {m['torch_threads']} threads: {per_path or '-'}; % peak is against "
            f"{peak['path'] or '-'} at {m['torch_threads']} threads")
