"""The five ops every cifarconv backend implements, and their schemas.

A backend is an *op family*: ``cifarconv::<prefix>_<op>`` for each op below.  All
families share these schemas, the fake kernels in `meta.py` and the autograd
formulas in `autograd.py`; a backend only brings kernels.

Conventions (the functional layer in ``cifarconv.functional`` establishes them):
  * conv ops take 4-D (N, C, H, W) tensors and symmetric, explicit int pairs;
  * ``im2col`` takes (N, C, H, W) and returns columns (N, C*kH*kW, L), channel-major
    like torch's unfold; ``col2im`` is its adjoint (sums overlapping windows) like torch's fold;
  * ``conv2d_grad_weight`` returns (grad_weight, grad_bias); grad_bias is an empty
    tensor when ``bias`` is false.
"""

NAMESPACE = "cifarconv"

# The arguments every conv op ends with (its window and group count), and those of im2col
# and col2im (a window, in torch's unfold/fold order).
_CONV_ARGS = "SymInt[2] stride, SymInt[2] padding, SymInt[2] dilation, SymInt groups"
_WINDOW_ARGS = "SymInt[2] kernel_size, SymInt[2] dilation, SymInt[2] padding, SymInt[2] stride"

SCHEMAS: dict[str, str] = {
    "conv2d": f"(Tensor input, Tensor weight, Tensor? bias, {_CONV_ARGS}) -> Tensor",
    "conv2d_grad_input": f"(Tensor grad_output, Tensor weight, SymInt[2] input_size, {_CONV_ARGS}) -> Tensor",
    "conv2d_grad_weight": (
        f"(Tensor grad_output, Tensor input, SymInt[2] kernel_size, {_CONV_ARGS}, bool bias) -> (Tensor, Tensor)"
    ),
    "im2col": f"(Tensor input, {_WINDOW_ARGS}) -> Tensor",
    "col2im": f"(Tensor input, SymInt[2] output_size, {_WINDOW_ARGS}) -> Tensor",
}

OP_NAMES = tuple(SCHEMAS)


def qualname(prefix: str, op: str) -> str:
    """``cifarconv::<prefix>_<op>``, the registered name of one op of one family."""
    return f"{NAMESPACE}::{prefix}_{op}"
