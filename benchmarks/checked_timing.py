"""Check, then time: each callable's first result is compared with torch's, and only the right ones are timed.

One helper for the conv passes of a layer and for the whole-model training step: a callable that
raises or whose result differs from torch's gets an error instead of a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch

from cifarconv.perf import timing

if TYPE_CHECKING:
    from settings import Settings


@dataclass(frozen=True)
class Checked:
    """What `check_and_time` found, by key; a key in ``error`` has no ``ms`` or ``peak_memory_bytes``."""

    ms: dict  # median ms per call, of the right callables and of the unchecked extras
    first_call_ms: dict  # wall time of the first call, synchronised (for triton: compiling included)
    peak_memory_bytes: dict  # CUDA: above what was allocated before the call; CPU: None
    max_rel_error: dict  # every key that was compared with a reference
    error: dict  # why a key has no time


def check_and_time(fns: Mapping[Hashable, Callable[[], tuple]], reference_of: Callable[[Hashable], Hashable],
                   tolerance: float, s: Settings, error_prefix: str = "",
                   make_extras: Callable[[], Mapping[Hashable, Callable]] | None = None) -> Checked:
    """Call each of ``fns`` once, in order, and compare its tuple of tensors with that of
    ``reference_of(key)`` (torch's: a key that is its own reference comes before those it checks);
    then time the right ones (`cifarconv.perf.timing`: median after warm-up, on CPU interleaved) together
    with the unchecked callables ``make_extras()`` makes once the references are freed, and take their
    peak memory."""
    references, right, first_ms, rel_errors, errors = {}, {}, {}, {}, {}
    for key, fn in fns.items():
        (result, error), first_ms[key] = wall_ms(partial(safe_call, fn), s.device)
        reference_key = reference_of(key)
        if error is None:
            if key == reference_key:
                references[key] = result
            elif reference_key not in references:
                error = "torch's own result is missing, nothing to compare with"
            else:
                rel_errors[key], error = compare(result, references[reference_key], tolerance)
                error = error and error_prefix + error
        del result
        if error is None:
            right[key] = fn
        else:
            errors[key] = error
    del references
    extras = make_extras() if make_extras else {}
    times = timing.time_ms({**right, **extras}, s.device, s.warmup, s.reps, s.quick)
    del extras
    memory = {key: timing.peak_memory_bytes(fn, s.device) for key, fn in right.items()}
    return Checked(times, first_ms, memory, rel_errors, errors)


def compare(got, want, tolerance: float) -> tuple[float | None, str | None]:
    """(max |got - want| / max |want| over the result tensors, error message or None)."""
    worst = 0.0
    for g, r in zip(got, want):
        if g.shape != r.shape:
            return None, f"shape {tuple(g.shape)}, torch's is {tuple(r.shape)}"
        scale = r.abs().max().float().item() or 1.0
        err = (g.float() - r.float()).abs().max().item() / scale
        if not err <= tolerance:  # NaN fails too
            return err, f"differs from torch: max |diff| / max |torch| = {err:.1e} > {tolerance:.0e}"
        worst = max(worst, err)
    return worst, None


def safe_call(fn):
    """(result, None), or (None, message) if the backend raised."""
    try:
        return fn(), None
    except Exception as e:  # a backend that fails here gets an error record, not a crash
        return None, f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def wall_ms(fn, device: torch.device):
    """(fn(), its wall-clock milliseconds), synchronised on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, (time.perf_counter() - start) * 1e3
