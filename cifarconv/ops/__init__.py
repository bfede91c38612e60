"""The op layer: schemas, fake kernels and autograd shared by every backend."""

from .family import OpFamily, define_python_family, register_family
from .schema import NAMESPACE, OP_NAMES, SCHEMAS, qualname

__all__ = ["NAMESPACE", "OP_NAMES", "SCHEMAS", "OpFamily", "define_python_family", "qualname", "register_family"]
