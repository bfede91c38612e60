"""Median times of callables, and their peak memory.

- CPU: ``time.perf_counter`` (a monotonic clock).  Every callable is warmed up, then the
  callables run in turns -- one call each per round, the order rotating every round --
  so that a slow spell of the machine (another process, a frequency change) falls on all
  of them alike rather than on whichever happened to run then.  Median of the rounds.
- CUDA: ``triton.testing.do_bench`` when triton imports (median; it clears the L2 cache
  before each call and sizes its own repetitions from time budgets), otherwise CUDA
  events around each of ``reps`` calls after ``warmup`` calls, median.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable, Mapping

import torch

# triton.testing.do_bench time budgets in ms (warm-up, measure); --quick uses the smaller pair.
DO_BENCH_MS = (25, 100)
DO_BENCH_QUICK_MS = (5, 20)


def _do_bench():
    try:
        from triton.testing import do_bench
    except Exception:  # triton missing, or broken on this machine
        return None
    return do_bench


def timer_name(device: torch.device) -> str:
    if device.type != "cuda":
        return "time.perf_counter, callables interleaved, median after warm-up"
    if _do_bench() is not None:
        return "triton.testing.do_bench (median)"
    return "CUDA events, median after warm-up"


STATISTICS = {"median": statistics.median, "min": min}


def time_ms(
    fns: Mapping[Hashable, Callable[[], object]], device: torch.device, warmup: int, reps: int, quick: bool = False,
    statistic: str = "median",
) -> dict[Hashable, float]:
    """Milliseconds per call of each callable in ``fns``: the median, or with ``statistic="min"`` the fastest."""
    if device.type == "cuda":
        return {key: _cuda_ms(fn, warmup, reps, quick, statistic) for key, fn in fns.items()}
    return _interleaved_ms(fns, warmup, reps, statistic)


def _interleaved_ms(fns, warmup: int, reps: int, statistic: str) -> dict:
    keys = list(fns)
    for key in keys:
        for _ in range(warmup):
            fns[key]()
    times: dict = {key: [] for key in keys}
    for r in range(reps):
        for i in range(len(keys)):
            key = keys[(i + r) % len(keys)]
            start = time.perf_counter()
            fns[key]()
            times[key].append((time.perf_counter() - start) * 1e3)
    return {key: STATISTICS[statistic](t) for key, t in times.items()}


def _cuda_ms(fn, warmup: int, reps: int, quick: bool, statistic: str) -> float:
    do_bench = _do_bench()
    if do_bench is not None:
        warm_ms, rep_ms = DO_BENCH_QUICK_MS if quick else DO_BENCH_MS
        return float(do_bench(fn, warmup=warm_ms, rep=rep_ms, return_mode=statistic))
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    torch.cuda.synchronize()
    for start, end in zip(starts, ends):
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return STATISTICS[statistic]([s.elapsed_time(e) for s, e in zip(starts, ends)])


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Extra memory one call allocates at its peak, above what was allocated before it (CUDA only).

    On CPU torch keeps no allocator statistics, so this is None there.
    """
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del result
    return peak
