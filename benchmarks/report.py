"""What conv_bench.py reports: its records, the table it prints, the machine and versions, and the JSON it writes."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

import cifarconv
from cifarconv.perf import roofline, timing
from cifarconv.precision import conv_allows_tf32
from cifarconv.train.atomic import atomic_write

if TYPE_CHECKING:
    from settings import Settings

# ---------------------------------------------------------------- records


def record(base, backend, pass_name, ms, flops, floor_ms, im2col_floor_ms, peak, rel_error, error) -> dict:
    """One JSON record; ``ratio_to_torch`` is filled in by `add_ratios`, ``fma_peak_fraction``
    by `add_peak_fractions`."""
    return {
        **base, "backend": backend, "pass": pass_name, "ms": ms,
        "tflops": flops / (ms * 1e-3) / 1e12 if ms and flops else None,
        "gflops": flops / (ms * 1e-3) / 1e9 if ms and flops else None, "fma_peak_fraction": None,
        "ratio_to_torch": None, "floor_ms": floor_ms, "im2col_floor_ms": im2col_floor_ms,
        "ratio_to_im2col_floor": ms / im2col_floor_ms if ms and im2col_floor_ms else None,
        "peak_memory_bytes": peak, "max_rel_error": rel_error, "error": error,
    }


def add_ratios(records: list[dict]) -> None:
    """ratio_to_torch = ms / torch's ms for the same layer and pass (2.0: twice as long as torch)."""
    torch_ms = {(r["model"], r["layer"], r["pass"]): r["ms"] for r in records if r["backend"] == "torch"}
    for r in records:
        ref = torch_ms.get((r["model"], r["layer"], r["pass"]))
        r["ratio_to_torch"] = r["ms"] / ref if r["ms"] is not None and ref else None


def add_peak_fractions(records: list[dict], peak_gflops: float | None) -> None:
    """fma_peak_fraction = GFLOP/s / the machine's measured FMA peak at the run's thread count (CPU)."""
    for r in records:
        r["fma_peak_fraction"] = r["gflops"] / peak_gflops if peak_gflops and r["gflops"] else None


# ---------------------------------------------------------------- the printed table

COLUMNS = (f"{'model':9s} {'layer':24s} {'n':>2s} {'pass':10s} {'backend':11s} {'ms':>9s} {'TFLOP/s':>8s} "
           f"{'GFLOP/s':>8s} {'% peak':>6s} {'time ÷ torch':>13s} {'floor ms':>9s} {'floor %':>8s} {'im2col ms':>9s} "
           f"{'x im2col':>8s} {'peak MiB':>9s}")
LEGEND = ("ms: median per call; % peak: GFLOP/s / the FMA peak measured above (CPU); "
          "time ÷ torch: ms / torch's ms (above 1: slower than torch);\n"
          "floor: the roofline's least time; floor %: floor / ms; im2col: the explicit-im2col floor (columns written "
          "and read once at the copy bandwidth + the pass's GEMM, timed here); x im2col: ms / that floor\n")


def run_heading(device: str, s: Settings, backends: list[str], layer_source: str) -> str:
    """The versions, the machine and the settings, before anything is measured."""
    return (f"cifarconv {cifarconv.__version__} | torch {torch.__version__} | {device} | {s.device}\n"
            f"backends {', '.join(backends)} | {layer_source} | batch {s.batch_size} | "
            f"{str(s.dtype).removeprefix('torch.')}{' channels_last' if s.channels_last else ''} | "
            f"warm-up {s.warmup}, {s.reps} reps | {timing.timer_name(s.device)}")


def table_heading(roof: roofline.Roofline) -> str:
    """The measured roofline, what the columns mean, and their names."""
    return (f"roofline: peak {roof.peak_tflops:.3f} TFLOP/s ({roof.matmul_n}^3 matmul), "
            f"bandwidth {roof.bandwidth_gbs:.1f} GB/s ({roof.copy_bytes / 2**21:.0f} MiB copy)\n{LEGEND}\n{COLUMNS}")


def table_rows(records: list[dict]) -> list[str]:
    """One line per record; model, layer and count only where they change."""
    rows, last = [], None
    for r in records:
        where = (r["model"], r["layer"])
        model, layer, n = (r["model"], r["layer"], str(r["count"])) if where != last else ("", "", "")
        last = where
        head = f"{model:9s} {layer:24s} {n:>2s} {r['pass']:10s} {r['backend']:11s}"
        if r["error"]:
            rows.append(f"{head} ERROR: {r['error']}")
            continue

        def num(value, fmt, scale=1.0):
            width = int(fmt.split(".")[0])
            return f"{'-':>{width}s}" if value is None else format(value * scale, fmt)
        efficiency = r["floor_ms"] / r["ms"] * 100 if r["floor_ms"] is not None else None
        rows.append(f"{head} {num(r['ms'], '9.3f')} {num(r['tflops'], '8.3g')} {num(r.get('gflops'), '8.1f')} "
                    f"{num(r.get('fma_peak_fraction'), '6.1f', 100.0)} {num(r['ratio_to_torch'], '13.2f')} "
                    f"{num(r['floor_ms'], '9.3f')} {num(efficiency, '8.1f')} "
                    f"{num(r['im2col_floor_ms'], '9.3f')} {num(r['ratio_to_im2col_floor'], '8.2f')} "
                    f"{num(r['peak_memory_bytes'], '9.1f', 2**-20)}")
    return rows


def print_failures(failures: list[dict]) -> None:
    """The records with an error, on stderr."""
    print(f"\n{len(failures)} result(s) differ from torch or failed; they have no time:", file=sys.stderr)
    for r in failures:
        print(f"  {r['backend']} {r['model']} {r['layer']} {r['pass']}: {r['error']}", file=sys.stderr)


# ---------------------------------------------------------------- the machine and the JSON

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = None
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"


def versions() -> dict:
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {"cifarconv": cifarconv.__version__, "torch": torch.__version__, "triton": version("triton"),
            "python": platform.python_version(), "cuda": torch.version.cuda}


def settings_json(backends: list[str], s: Settings, layer_source: str) -> dict:
    return {
        "device_type": s.device.type, "dtype": str(s.dtype).removeprefix("torch."), "channels_last": s.channels_last,
        "batch_size": s.batch_size, "backends": backends, "layers": layer_source, "quick": s.quick,
        "warmup": s.warmup, "reps": s.reps, "timer": timing.timer_name(s.device),
        "torch_num_threads": torch.get_num_threads(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        # float32 on CUDA: every backend follows the conv switch (cifarconv.precision)
        "conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
        "conv_uses_tf32": conv_allows_tf32(),
        "tolerance": s.tolerance, "ratio_to_torch": "ms / torch ms (above 1: slower than torch)",
        "im2col_floor_ms": "2 x column bytes / roofline bandwidth + the pass's GEMM (torch.mm, timed in this run, "
                           "median), benchmarks/floor.py; ratio_to_im2col_floor = ms / im2col_floor_ms",
        "peak_memory": "CUDA: max_memory_allocated above the allocation before the call; CPU: not measured (null)",
    }


def run_json(device: str, settings: dict, roof: roofline.Roofline, records: list[dict],
             triton_first_use: dict | None, machine: dict | None = None) -> dict:
    """The whole run, as ``--out`` writes it and ``plot.py`` reads it."""
    return {
        "device": device, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "settings": settings, "machine": machine, "roofline": roof.to_json(),
        "results": records, "triton_first_use": triton_first_use,
    }


def write_json(path: Path, result: dict) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(result, indent=1).encode())
