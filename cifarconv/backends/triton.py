"""The ``triton`` backend: implicit-GEMM convolution kernels written in Triton.

The kernels live in `cifarconv.triton_kernels` (one file per job, each with its index
math explained).  This module only registers them as the op family ``cifarconv::triton_*``:

* on a GPU through ``torch.library.triton_op`` -- its launches go through ``wrap_triton``,
  so torch.compile traces into the kernels; the op's own Python is its fake kernel, and it
  allocates outputs with the shared fake kernels of `cifarconv.ops.meta`, so both agree;
* under Triton's interpreter (``TRITON_INTERPRET=1``, how CPU tensors run it, for tests)
  through ``torch.library.custom_op`` with the shared fake kernels: an interpreted kernel
  cannot be traced (torch's ``wrap_triton`` hands it back unwrapped, or before torch 2.13
  refuses it, and it would run on fake tensors), so there the op is opaque to
  torch.compile instead and launches its kernels directly (`common.launcher`).

``import triton`` below is the top-level package: imports are absolute, so this module's
own name shadows nothing.  Without triton installed this module still imports, and
`unavailable_reason` says what to install; ``OPS`` exists only when triton imports.
"""

from typing import Optional, Sequence

import numpy
import torch

try:
    import triton  # noqa: F401
except ImportError as e:
    _TRITON_MISSING: Optional[str] = (
        "triton is not installed: pip install \"cifarconv[triton]\" (a CUDA build of torch brings it; "
        "with a CPU torch it runs only in its interpreter, for tests)"
        if e.name == "triton"
        else f"triton could not be imported ({e})"
    )
else:
    _TRITON_MISSING = None


def unavailable_reason(device: torch.device) -> Optional[str]:
    if _TRITON_MISSING is not None:
        return _TRITON_MISSING
    if device.type == "cpu" and not INTERPRET:
        return (
            "on CPU tensors Triton runs only in its interpreter, for tests: "
            "set TRITON_INTERPRET=1 in the environment before importing cifarconv"
        )
    if device.type == "cpu" and _interpreter_broken():
        return (
            f"Triton {triton.__version__}'s interpreter fails with NumPy {numpy.__version__} (it calls int() on "
            "1-element arrays, an error since NumPy 2.4): use Triton >= 3.7 or NumPy < 2.4"
        )
    return None


def _interpreter_broken() -> bool:
    """Triton 3.6's interpreter turns scalar arguments into 1-element arrays and calls int()
    on them, which NumPy 2.4 refuses; Triton 3.7 and later run with it."""
    def major_minor(version: str) -> tuple[int, int]:
        return tuple(int(part) for part in version.split(".")[:2])

    return major_minor(triton.__version__) < (3, 7) and major_minor(numpy.__version__) >= (2, 4)


if _TRITON_MISSING is None:
    from ..ops import SCHEMAS, qualname, register_family
    from ..triton_kernels import conv_dgrad, conv_fwd, conv_wgrad, im2col_col2im
    from ..triton_kernels.common import INTERPRET

    # The op signatures; triton_op infers its schema from these annotations.
    def conv2d(
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: Optional[torch.Tensor],
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
    ) -> torch.Tensor:
        return conv_fwd.conv2d(input, weight, bias, stride, padding, dilation, groups)

    def conv2d_grad_input(
        grad_output: torch.Tensor,
        weight: torch.Tensor,
        input_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
    ) -> torch.Tensor:
        return conv_dgrad.conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, groups)

    def conv2d_grad_weight(
        grad_output: torch.Tensor,
        input: torch.Tensor,
        kernel_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
        bias: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return conv_wgrad.conv2d_grad_weight(
            grad_output, input, kernel_size, stride, padding, dilation, groups, bias
        )

    def im2col(
        input: torch.Tensor,
        kernel_size: Sequence[int],
        dilation: Sequence[int],
        padding: Sequence[int],
        stride: Sequence[int],
    ) -> torch.Tensor:
        return im2col_col2im.im2col(input, kernel_size, dilation, padding, stride)

    def col2im(
        input: torch.Tensor,
        output_size: Sequence[int],
        kernel_size: Sequence[int],
        dilation: Sequence[int],
        padding: Sequence[int],
        stride: Sequence[int],
    ) -> torch.Tensor:
        return im2col_col2im.col2im(input, output_size, kernel_size, dilation, padding, stride)

    _KERNELS = {
        "conv2d": conv2d,
        "conv2d_grad_input": conv2d_grad_input,
        "conv2d_grad_weight": conv2d_grad_weight,
        "im2col": im2col,
        "col2im": col2im,
    }
    for _op, _fn in _KERNELS.items():
        if INTERPRET:
            torch.library.custom_op(qualname("triton", _op), _fn, mutates_args=(), schema=SCHEMAS[_op])
        else:
            torch.library.triton_op(qualname("triton", _op), _fn, mutates_args=())
    OPS = register_family("triton", fake=INTERPRET)
