"""One module per backend; each provides ``OPS`` (an OpFamily) and ``unavailable_reason(device)``.

Each module guards its optional dependency (``cifarconv._C``, ``triton``), so all of them
import on any machine; `cifarconv.registry` names them.
"""

from . import custom, extension, torch_reference, triton

__all__ = ["custom", "extension", "torch_reference", "triton"]
