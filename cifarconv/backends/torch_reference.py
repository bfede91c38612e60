"""The ``torch`` backend: torch's own convolution (cuDNN / oneDNN / aten), the reference.

It has the call interface of an op family (``conv2d``, ``im2col``, ``col2im``) so
the functional layer treats every backend alike; its autograd is torch's own.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

OPS = SimpleNamespace(
    prefix="torch",
    conv2d=F.conv2d,  # allowed: this is the reference backend
    im2col=F.unfold,  # allowed
    col2im=F.fold,  # allowed
)


def unavailable_reason(device: torch.device) -> str | None:
    return None
