"""cifarconv's checks, for any backend: `check_backend` runs on yours what the test suite runs
on the built-in ones, with the same cases (`cases`) and the same checks (`checks`)."""

from .battery import BackendCheckFailed, CheckResult, Report, check_backend
from .cases import CASES, Case
from .checks import CHECKS, Target

__all__ = ["CASES", "CHECKS", "BackendCheckFailed", "Case", "CheckResult", "Report", "Target", "check_backend"]
