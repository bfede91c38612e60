"""Backends: registering them, their names, what each needs, and which one runs a call.

A backend is a name for an op family (`cifarconv.ops.OpFamily`: its five ops with the
shared fake kernels and autograd) on some device types.  Every backend, built-in or not,
is registered with `register_backend`:

    @cifarconv.register_backend("winograd", devices=("cpu", "cuda"))
    def conv2d(x, w, bias, stride, padding, dilation, groups):
        ...

The forward is all a backend must bring; the ops it leaves out (grad input, grad weight,
im2col, col2im) run the ``custom`` backend's code, and `describe_backend` says which.
Backward and double backward come from the shared autograd formulas, which call the
family's own ops.  A backend whose ops are already defined (a C++ ``TORCH_LIBRARY`` block,
``torch.library.triton_op``) registers with ``ops=`` instead, and one family may serve
two names (``cpp`` and ``cuda`` share the extension's).

``torch`` (torch's own functions, the reference) and ``auto`` (the best backend for the
tensors' device) are special: neither can be registered or removed.  Installed packages
register backends from the ``cifarconv.backends`` entry-point group, loaded the first
time the registry is asked; ``load_plugin`` imports a file or module that registers some.

Asking for an unknown name is a ``ValueError``; a known backend that cannot run here is a
``RuntimeError`` that says why and what to use instead.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .ops import OP_NAMES, OpFamily, define_python_family, meta

AUTO = "auto"
REFERENCE = "torch"
ENTRY_POINT_GROUP = "cifarconv.backends"
# What "auto" picks, best first, per device type; custom runs everywhere.
AUTO_ORDER = {"cuda": ("cuda", "triton", "custom"), "cpu": ("cpp", "custom")}
_NAME = re.compile(r"[a-z][a-z0-9_]*")  # a backend's name is also its ops' prefix: cifarconv::<name>_conv2d


@dataclass(frozen=True)
class Backend:
    name: str
    ops: OpFamily | None  # None: its family could not be defined here (``available`` says why)
    devices: tuple[str, ...] | None  # device types it runs on; None: any
    available: Callable[[torch.device], str | None]  # why it cannot run on a device here, or None
    own_ops: tuple[str, ...]  # the ops it brings; the others run the custom backend's code
    builtin: bool
    plugin: str | None  # the plugin (file, module or entry point) that registered it


BACKENDS: dict[str, Backend] = {}  # every registered backend, in registration order
_PLUGIN_PREFIXES: set[str] = set()  # op prefixes register_backend defined from Python kernels
_loading_plugin: list[str] = []  # the plugin being imported, while it is (see load_plugin)


def _always(device: torch.device) -> None:
    return None


_UNSET = object()


def register_backend(
    name: str,
    conv2d: Callable | None = None,
    *,
    devices: Iterable[str] | None = None,
    conv2d_grad_input: Callable | None = None,
    conv2d_grad_weight: Callable | None = None,
    im2col: Callable | None = None,
    col2im: Callable | None = None,
    available: Callable[[torch.device], str | None] | None = None,
    ops: OpFamily | None = _UNSET,
    _builtin: bool = False,
):
    """Register backend ``name`` with its forward (``conv2d``, or as a decorator) and any other
    kernels, or with ``ops``, an op family defined elsewhere.

    Kernels take the op layer's arguments (`cifarconv.ops.schema`): 4-D tensors and explicit
    int pairs.  ``devices`` lists the device types it runs on (default: any); ``available``
    says why it cannot run on a device here, or None.  ``ops=None`` registers a backend whose
    family could not be defined here (a module that failed to build or import): ``available``
    must then give the reason.  Used as a decorator it returns the forward; else the `Backend`.
    """
    kernels = {"conv2d": conv2d, "conv2d_grad_input": conv2d_grad_input, "conv2d_grad_weight": conv2d_grad_weight,
               "im2col": im2col, "col2im": col2im}
    if conv2d is None and ops is _UNSET:

        def decorate(forward: Callable) -> Callable:
            register_backend(name, forward, devices=devices, available=available, _builtin=_builtin,
                             **{op: fn for op, fn in kernels.items() if op != "conv2d"})
            return forward

        return decorate
    devices = _check_devices(name, devices)
    _check_new_name(name, _builtin)
    given = {op: fn for op, fn in kernels.items() if fn is not None}
    if ops is not _UNSET:
        if given:
            raise ValueError(f"register_backend({name!r}): give either ops= or kernels, not both ({', '.join(given)})")
        if ops is None and available is None:
            raise ValueError(f"register_backend({name!r}): ops=None needs available= to say why it cannot run")
        own = OP_NAMES
    else:
        for op, fn in given.items():
            if not callable(fn):
                raise TypeError(f"register_backend({name!r}): {op} must be callable, got {type(fn).__name__}")
        ops = _define_family(name, given)
        own = tuple(op for op in OP_NAMES if op in given)
    backend = Backend(name, ops, devices, available or _always, own, _builtin,
                      _loading_plugin[-1] if _loading_plugin else None)
    BACKENDS[name] = backend
    return backend


def _check_new_name(name: str, builtin: bool) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"backend name {name!r} must be lower-case letters, digits and '_', starting with a letter "
                         "(it names the ops, cifarconv::<name>_conv2d)")
    if name == AUTO or (not builtin and name in BACKENDS and BACKENDS[name].builtin):
        raise ValueError(f"backend {name!r} is a built-in backend; choose another name")
    if name in BACKENDS:
        raise ValueError(f"backend {name!r} is already registered (by {BACKENDS[name].plugin or 'this process'}); "
                         "unregister_backend it first to replace it")


def _check_devices(name: str, devices: Iterable[str] | None) -> tuple[str, ...] | None:
    if devices is None:
        return None
    if isinstance(devices, str):
        devices = (devices,)
    checked = []
    for d in devices:
        try:
            device = torch.device(d)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"register_backend({name!r}): {d!r} is not a device type torch knows ({e})") from None
        if device.index is not None:
            raise ValueError(f"register_backend({name!r}): devices are device types like 'cuda', not {d!r}")
        checked.append(device.type)
    return tuple(checked)


def _define_family(prefix: str, kernels: dict[str, Callable]) -> OpFamily:
    """Define ``cifarconv::<prefix>_*`` from ``kernels``, the ``custom`` backend's code for the rest."""
    from .backends import custom

    ops_taken = [op for op in OP_NAMES if hasattr(getattr(torch.ops, "cifarconv"), f"{prefix}_{op}")]
    if ops_taken and prefix not in _PLUGIN_PREFIXES:
        raise ValueError(f"backend name {prefix!r} would redefine the ops cifarconv::{prefix}_* of another family")
    _PLUGIN_PREFIXES.add(prefix)
    return define_python_family(
        prefix, {op: _in_op_layout(op, kernels[op]) if op in kernels else getattr(custom, op) for op in OP_NAMES}
    )


def _in_op_layout(op: str, kernel: Callable) -> Callable:
    """``kernel`` with its outputs in the memory layout the shared fake kernels give
    (`cifarconv.ops.meta`), whatever layout it returns them in: conv2d and grad input
    follow their first argument (channels_last in, channels_last out), the rest are contiguous."""
    follows_input = op in ("conv2d", "conv2d_grad_input")

    def run(*args):
        out = kernel(*args)
        if isinstance(out, tuple):
            return tuple(o.contiguous() for o in out)
        return out.contiguous(memory_format=meta.activation_format(args[0]) if follows_input else
                              torch.contiguous_format)

    run.__name__ = run.__qualname__ = getattr(kernel, "__name__", op)
    run.__doc__ = kernel.__doc__
    return run


def unregister_backend(name: str) -> None:
    """Remove backend ``name`` (tests, notebooks).  Built-in backends cannot be removed.

    Its ops stay defined in torch.ops (torch cannot drop them); registering the name again
    redefines them."""
    check_name(name)
    if name == AUTO or BACKENDS[name].builtin:
        raise ValueError(f"backend {name!r} is a built-in backend and cannot be unregistered")
    del BACKENDS[name]
    for key in [k for k in _resolved if k[0] == name]:
        del _resolved[key]


def describe_backend(name: str) -> str:
    """What backend ``name`` is: where it runs, who registered it, and which of its ops are its
    own and which run the ``custom`` backend's code."""
    check_name(name)
    if name == AUTO:
        order = "; ".join(f"{d}: {' > '.join(names)}" for d, names in AUTO_ORDER.items())
        return f"auto: the best backend available for the tensors' device ({order}; custom elsewhere)"
    b = BACKENDS[name]
    borrowed = [op for op in OP_NAMES if op not in b.own_ops]
    lines = [
        f"{name}: ops cifarconv::{b.ops.prefix}_*" if name != REFERENCE else f"{name}: torch's own functions",
        f"  devices: {', '.join(b.devices) if b.devices else 'any'}",
        f"  registered by: {b.plugin or ('cifarconv' if b.builtin else 'this process')}",
        f"  own kernels: {', '.join(b.own_ops) or 'none'}",
    ]
    if borrowed:
        lines.append(f"  runs the custom backend's code for: {', '.join(borrowed)}")
    for device in b.devices or ("cpu",):
        reason = unavailable_reason(name, device)
        lines.append(f"  on {device}: {'available' if reason is None else 'unavailable: ' + reason}")
    return "\n".join(lines)


def names() -> tuple[str, ...]:
    """Every backend name, registered ones first, then ``auto``."""
    load_entry_points()
    return (*BACKENDS, AUTO)


def check_name(name: str) -> str:
    if name not in BACKENDS and name != AUTO:
        load_entry_points()
        if name not in BACKENDS:
            raise ValueError(f"unknown conv backend {name!r}; valid names: {', '.join(names())}")
    return name


def unavailable_reason(name: str, device: torch.device | str) -> str | None:
    """Why backend ``name`` cannot run tensors on ``device`` here, or None if it can."""
    if check_name(name) == AUTO:
        return None
    backend = BACKENDS[name]
    device = torch.device(device)
    if backend.devices is not None and device.type not in backend.devices:
        # Another name for the same ops on this device (cpp <-> cuda), if there is one.
        instead = [b.name for b in BACKENDS.values() if b.ops is backend.ops and device.type in (b.devices or ())]
        hint = f"; use backend {instead[0]!r} for {device.type} tensors" if instead else ""
        return f"it runs on {' and '.join(backend.devices)} tensors, not {device.type}{hint}"
    if device.type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device is available (torch.cuda.is_available() is False)"
    return backend.available(device)


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backend names usable for tensors on ``device`` on this machine."""
    load_entry_points()
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
    return BACKENDS[name].ops


# -- plugins ----------------------------------------------------------------------------------


class PluginError(RuntimeError):
    """A plugin that could not be imported, or that registered nothing it should have."""


def load_plugin(spec: str) -> list[str]:
    """Import ``spec`` -- a Python file (``path/to/conv.py``) or an importable module
    (``my_pkg.conv``) -- which registers backends; return the names it registered.
    Loading the same plugin twice is a no-op the second time."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise PluginError(f"plugin {spec!r}: no such file")
        key = str(path.resolve())
        module_name = "cifarconv_plugin_" + re.sub(r"\W", "_", key)
    else:
        module_name = key = spec
    if module_name in sys.modules:
        return [b.name for b in BACKENDS.values() if b.plugin == key]
    before = set(BACKENDS)
    _loading_plugin.append(key)
    try:
        if module_name == key:
            importlib.import_module(spec)
        else:
            loader = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            try:
                loader.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
    except ModuleNotFoundError as e:
        if e.name == spec.split(".")[0] and module_name == key:
            raise PluginError(f"plugin {spec!r}: no such file or importable module") from None
        raise PluginError(f"plugin {spec!r} failed to import: {type(e).__name__}: {e}") from None
    except Exception as e:
        raise PluginError(f"plugin {spec!r} failed to import: {type(e).__name__}: {e}") from None
    finally:
        _loading_plugin.pop()
    return [name for name in BACKENDS if name not in before]


_entry_points_loaded = False


def load_entry_points() -> None:
    """Import every ``cifarconv.backends`` entry point of the installed packages, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry.dist, "name", "?")
        _loading_plugin.append(f"entry point {entry.name} ({dist})")
        try:
            entry.load()
        except Exception as e:
            raise PluginError(f"plugin {entry.name!r} (entry point {entry.value!r} of {dist}) failed to import: "
                              f"{type(e).__name__}: {e}") from None
        finally:
            _loading_plugin.pop()


# -- the built-in backends, registered like any other ---------------------------------------


def _register_builtins() -> None:
    from .backends import custom, extension, torch_reference, triton

    register_backend(REFERENCE, ops=torch_reference.OPS, available=torch_reference.unavailable_reason, _builtin=True)
    register_backend("custom", ops=custom.OPS, available=custom.unavailable_reason, _builtin=True)
    # one family, two names: the extension's C++ kernels on CPU tensors, its CUDA kernels on CUDA tensors
    for name, device in (("cpp", "cpu"), ("cuda", "cuda")):
        register_backend(name, ops=extension.OPS, devices=(device,), available=extension.unavailable_reason,
                         _builtin=True)
    # Triton kernels; on CPU only under TRITON_INTERPRET=1
    register_backend("triton", ops=getattr(triton, "OPS", None), devices=("cuda", "cpu"),
                     available=triton.unavailable_reason, _builtin=True)


_register_builtins()
