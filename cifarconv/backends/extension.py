"""The ``cpp`` and ``cuda`` backends: the C++/CUDA extension built from ``csrc/``.

One op family, ``cifarconv::ext_*``, with C++ kernels registered for CPU tensors and
CUDA kernels for CUDA tensors (``TORCH_LIBRARY_IMPL``); torch's dispatcher picks by
the tensors' device.  The kernels are im2col / col2im of our own plus GEMMs through
``at::mm`` (see ``csrc/conv2d.cpp``).  Fake kernels and autograd come from the op layer.

If the extension was not built, or fails to load, cifarconv still imports; asking for
``cpp`` or ``cuda`` then raises an error saying why and how to build it.
"""

from __future__ import annotations

import torch

from ..ops import register_family

BUILD_HINT = (
    "build it with `pip install --no-build-isolation -e .` from the repository "
    "(needs a C++ compiler; the CUDA kernels also need a CUDA build of torch and nvcc)"
)

try:
    from .. import _C  # loading the library registers the cifarconv::ext_* ops
except ImportError as e:  # not built, or built against another torch
    _C = None
    _LOAD_ERROR = f"the C++/CUDA extension cifarconv._C is not built or failed to load ({e}); {BUILD_HINT}"
else:
    _LOAD_ERROR = None

OPS = register_family("ext") if _C is not None else None


def unavailable_reason(device: torch.device) -> str | None:
    if _C is None:
        return _LOAD_ERROR
    if device.type == "cuda":
        if not _C.with_cuda:
            return (
                "the extension was built without its CUDA kernels (torch had no CUDA, or nvcc was not found); "
                "rebuild with a CUDA torch and nvcc, or FORCE_CUDA=1: pip install --no-build-isolation -e ."
            )
    return None
