"""Backend names, what each needs, and which one runs a given call.

Every name is known here before its code exists.  A backend's code lives in
``cifarconv.backends.<module>``, which provides ``OPS`` (its `OpFamily`) and
``unavailable_reason(device) -> str | None``.  Asking for an unknown name is a
``ValueError``; a known backend that cannot run here is a ``RuntimeError`` that
says why and what to use instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch

from .ops import OpFamily


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # cifarconv.backends.<module>
    devices: tuple[str, ...] | None  # device types it runs on; None: any


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("torch", "torch_reference", None),  # torch's own conv (cuDNN / oneDNN): the reference
        Backend("custom", "custom", None),  # pure-Python im2col + matmul
        Backend("cpp", "extension", ("cpu",)),  # the extension's C++ kernels
        Backend("cuda", "extension", ("cuda",)),  # the extension's CUDA kernels
        Backend("triton", "triton", ("cuda", "cpu")),  # Triton kernels; on CPU only under TRITON_INTERPRET=1
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


_modules: dict[str, object] = {}  # backend module name -> module, or the import error's text


def _load(module: str):
    if module not in _modules:
        qualified = f"{__package__}.backends.{module}"
        try:
            _modules[module] = importlib.import_module(qualified)
        except ModuleNotFoundError as e:
            if e.name != qualified:
                _modules[module] = f"its code could not be imported ({e})"
            else:
                _modules[module] = f"this version of cifarconv does not include it ({qualified} is missing)"
        except ImportError as e:
            _modules[module] = f"its code could not be imported ({e})"
    return _modules[module]


def unavailable_reason(name: str, device: torch.device | str) -> str | None:
    """Why backend ``name`` cannot run tensors on ``device`` here, or None if it can."""
    if check_name(name) == AUTO:
        return None
    backend = BACKENDS[name]
    device = torch.device(device)
    if backend.devices is not None and device.type not in backend.devices:
        # Another name for the same code on this device (cpp <-> cuda), if there is one.
        instead = [b.name for b in BACKENDS.values() if b.module == backend.module and device.type in (b.devices or ())]
        hint = f"; use backend {instead[0]!r} for {device.type} tensors" if instead else ""
        return f"it runs on {' and '.join(backend.devices)} tensors, not {device.type}{hint}"
    module = _load(backend.module)
    if isinstance(module, str):
        return module
    return module.unavailable_reason(device)


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
    return _load(BACKENDS[name].module).OPS
