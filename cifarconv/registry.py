"""Backend names, what each needs, and which one runs a given call.

A backend's code is a module of ``cifarconv.backends``, which provides ``OPS`` (its
`OpFamily`) and ``unavailable_reason(device) -> str | None``.  Asking for an unknown
name is a ``ValueError``; a known backend that cannot run here is a ``RuntimeError``
that says why and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

from . import backends
from .ops import OpFamily


@dataclass(frozen=True)
class Backend:
    name: str
    code: ModuleType  # a module of cifarconv.backends: OPS and unavailable_reason(device)
    devices: tuple[str, ...] | None  # device types it runs on; None: any


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("torch", backends.torch_reference, None),  # torch's own conv (cuDNN / oneDNN): the reference
        Backend("custom", backends.custom, None),  # pure-Python im2col + matmul
        Backend("cpp", backends.extension, ("cpu",)),  # the extension's C++ kernels
        Backend("cuda", backends.extension, ("cuda",)),  # the extension's CUDA kernels
        Backend("triton", backends.triton, ("cuda", "cpu")),  # Triton kernels; on CPU only under TRITON_INTERPRET=1
    )
}
AUTO = "auto"
NAMES = (*BACKENDS, AUTO)
# What "auto" picks, best first, per device type; custom runs everywhere.
AUTO_ORDER = {"cuda": ("cuda", "triton", "custom"), "cpu": ("cpp", "custom")}


def check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown conv backend {name!r}; valid names: {', '.join(NAMES)}")
    return name


def unavailable_reason(name: str, device: torch.device | str) -> str | None:
    """Why backend ``name`` cannot run tensors on ``device`` here, or None if it can."""
    if check_name(name) == AUTO:
        return None
    backend = BACKENDS[name]
    device = torch.device(device)
    if backend.devices is not None and device.type not in backend.devices:
        # Another name for the same code on this device (cpp <-> cuda), if there is one.
        instead = [b.name for b in BACKENDS.values() if b.code is backend.code and device.type in (b.devices or ())]
        hint = f"; use backend {instead[0]!r} for {device.type} tensors" if instead else ""
        return f"it runs on {' and '.join(backend.devices)} tensors, not {device.type}{hint}"
    return backend.code.unavailable_reason(device)


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backend names usable for tensors on ``device`` on this machine."""
    return [name for name in BACKENDS if unavailable_reason(name, device) is None]


_resolved: dict[tuple[str, str], OpFamily] = {}


def resolve(name: str, device: torch.device) -> OpFamily:
    """The ops that run backend ``name`` on ``device`` (for ``torch``, torch's own functions)."""
    key = (name, device.type)
    if key not in _resolved:
        _resolved[key] = _resolve(name, torch.device(device.type))
    return _resolved[key]


def _resolve(name: str, device: torch.device) -> OpFamily:
    if check_name(name) == AUTO:
        name = next(n for n in AUTO_ORDER.get(device.type, ("custom",)) if unavailable_reason(n, device) is None)
    reason = unavailable_reason(name, device)
    if reason is not None:
        others = ", ".join(available_backends(device))
        raise RuntimeError(
            f"conv backend {name!r} cannot run on {device.type} tensors here: {reason}. "
            f"Backends available for {device.type}: {others} (or 'auto')."
        )
    return BACKENDS[name].code.OPS
