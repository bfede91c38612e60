"""The built-in backends, one module each; each provides ``OPS`` (an OpFamily, or None where
it cannot be defined here) and ``unavailable_reason(device)``.

Each module guards its optional dependency (``cifarconv._C``, ``triton``), so all of them
import on any machine; `cifarconv.registry` registers them with `register_backend`, as any
plugin registers its own.
"""

from . import custom, extension, torch_reference, triton

__all__ = ["custom", "extension", "torch_reference", "triton"]
