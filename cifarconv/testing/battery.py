"""`check_backend`: every check of `cifarconv.testing.checks` on one backend, as a report."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import torch

from ..registry import check_name, unavailable_reason
from .checks import CHECKS, Target


@dataclass
class CheckResult:
    """One check over all its params: how many passed, and the smallest that failed."""

    name: str
    doc: str
    total: int
    passed: int = 0
    failed: int = 0
    first_failure: str | None = None  # the id of the smallest failing param
    error: str | None = None  # its error, last line first
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0


@dataclass
class Report:
    backend: str
    device: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def __str__(self) -> str:
        width = max((len(r.name) for r in self.results), default=5)
        lines = [f"check_backend({self.backend!r}, device={self.device!r}):",
                 f"  {'check':{width}s}  {'result':>10s}  {'s':>6s}  what / smallest failing case"]
        for r in self.results:
            result = f"{r.passed}/{r.total} ok" if r.ok else f"FAILED {r.failed}"
            lines.append(f"  {r.name:{width}s}  {result:>10s}  {r.seconds:6.1f}  {r.doc if r.ok else r.first_failure}")
            if not r.ok:
                lines.append(f"  {'':{width}s}  {'':>10s}  {'':>6s}  {r.error}")
        failed = [r.name for r in self.results if not r.ok]
        lines.append(f"{'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
        return "\n".join(lines)


class BackendCheckFailed(AssertionError):
    def __init__(self, report: Report):
        super().__init__(str(report))
        self.report = report


def _summary(e: BaseException) -> str:
    lines = [line for line in "".join(traceback.format_exception_only(type(e), e)).strip().splitlines() if line]
    return " | ".join(lines[:6])


def check_backend(name: str, device: str = "cpu", *, checks=None, strict: bool = False,
                  fast_gradcheck: bool | None = None) -> Report:
    """Run cifarconv's checks on backend ``name`` for ``device`` tensors: the argument grid,
    every dtype, gradcheck and gradgradcheck, unfold/fold, opcheck, torch.compile and bad
    input, each against torch (`cifarconv.testing.checks`).

    ``checks`` picks some by name (default: all of `CHECKS`).  Returns a `Report`; raises
    `BackendCheckFailed` only when ``strict`` and a check failed.  ``fast_gradcheck``
    (default: only for Triton's interpreter) compares random projections of the Jacobians.
    """
    check_name(name)
    reason = unavailable_reason(name, device)
    if reason is not None:
        raise RuntimeError(f"check_backend: backend {name!r} cannot run on {device} here: {reason}")
    unknown = sorted(set(checks or ()) - set(CHECKS))
    if unknown:
        raise ValueError(f"check_backend: unknown checks {unknown}; valid: {', '.join(CHECKS)}")
    if fast_gradcheck is None:
        fast_gradcheck = name == "triton" and torch.device(device).type == "cpu"
    target = Target(name, device, fast_gradcheck)
    report = Report(name, device)
    for check in (CHECKS[c] for c in (checks or CHECKS)):
        result = CheckResult(check.name, check.doc, len(check.params))
        start = time.perf_counter()
        for param_id, param in check.params:
            try:
                check.run(target, param)
            except Exception as e:  # a failed check, whatever the backend raised
                result.failed += 1
                if result.first_failure is None:
                    result.first_failure, result.error = param_id, _summary(e)
            else:
                result.passed += 1
        result.seconds = time.perf_counter() - start
        report.results.append(result)
    if strict and not report.ok:
        raise BackendCheckFailed(report)
    return report
