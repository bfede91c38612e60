"""An op family: one backend's five ops, registered with torch.library.

Two ways to make one:

* `define_python_family` defines the ops from Python kernels with
  ``torch.library.custom_op`` (the ``custom`` backend does this);
* `register_family` takes ops that are already defined elsewhere -- by a C++
  ``TORCH_LIBRARY`` block or by ``torch.library.triton_op`` -- under the names
  ``cifarconv::<prefix>_<op>``.

Either way the family then gets the shared fake kernels and autograd formulas, so a
new backend plugs in without touching the module or the functional API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from . import autograd, meta
from .schema import NAMESPACE, OP_NAMES, SCHEMAS, qualname


@dataclass(frozen=True)
class OpFamily:
    prefix: str
    conv2d: Callable
    conv2d_grad_input: Callable
    conv2d_grad_weight: Callable
    im2col: Callable
    col2im: Callable

    def qualname(self, op: str) -> str:
        return qualname(self.prefix, op)


def _lookup(prefix: str) -> OpFamily:
    namespace = getattr(torch.ops, NAMESPACE)
    return OpFamily(prefix, **{op: getattr(namespace, f"{prefix}_{op}").default for op in OP_NAMES})


def register_family(prefix: str, *, fake: bool = True) -> OpFamily:
    """Give already-defined ops ``cifarconv::<prefix>_*`` fake kernels and autograd.

    Pass ``fake=False`` for ops whose definition already traces (``triton_op``).
    """
    family = _lookup(prefix)
    if fake:
        for op in OP_NAMES:
            torch.library.register_fake(family.qualname(op), meta.FAKE_KERNELS[op])
    autograd.register(family)
    return family


def define_python_family(prefix: str, kernels: Mapping[str, Callable]) -> OpFamily:
    """Define ``cifarconv::<prefix>_*`` from Python kernels (one per op) and register them."""
    missing = set(OP_NAMES) - set(kernels)
    if missing:
        raise ValueError(f"op family {prefix!r} lacks kernels for {sorted(missing)}")
    for op in OP_NAMES:
        torch.library.custom_op(qualname(prefix, op), kernels[op], mutates_args=(), schema=SCHEMAS[op])
    return register_family(prefix)
