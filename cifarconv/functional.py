"""``conv2d``, ``unfold`` and ``fold`` with torch's semantics and a choice of backend.

Each function validates its arguments (``cifarconv.args``), brings the call into the
op layer's convention (4-D input, symmetric explicit padding) and runs the chosen
backend's op.  ``backend="torch"`` runs torch's own functions, the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .args import IntOrPair, check_blocks, check_floating, conv2d_args, conv2d_output_hw, fold_args, pair
from .registry import resolve


def _autocast(*tensors):
    """Cast like torch's autocast does for conv: floating tensors but float64 go to the autocast dtype."""
    device = tensors[0].device.type if isinstance(tensors[0], torch.Tensor) else None
    if device not in ("cuda", "cpu") or not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(
        t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t
        for t in tensors
    )


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """2-D convolution with exactly the semantics of torch's functional ``conv2d``."""
    input, weight, bias = _autocast(input, weight, bias)
    conv = conv2d_args(input, weight, bias, stride, padding, dilation, groups)
    x = input.unsqueeze(0) if conv.unbatched else input
    if conv.extra_padding != (0, 0):  # padding="same" with an even dilated kernel: one more at bottom/right
        x = F.pad(x, (0, conv.extra_padding[1], 0, conv.extra_padding[0]))
    ops = resolve(backend, x.device)
    if x.shape[1] == 0:
        y = _NoInputChannels.apply(x, weight, bias, conv2d_output_hw(x.shape[-2:], weight.shape[-2:], conv.stride,
                                                                    conv.padding, conv.dilation))
    else:
        y = ops.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y.squeeze(0) if conv.unbatched else y


class _NoInputChannels(torch.autograd.Function):
    """conv2d of an input with no channels, as torch computes it: an empty (N, 0, OH, OW)
    output that uses neither weight nor bias, so their gradients are zeros."""

    @staticmethod
    def forward(x, weight, bias, output_hw):
        return x.new_empty((x.shape[0], 0, *output_hw))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, _ = inputs
        ctx.save_for_backward(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        grad_bias = None if bias is None else bias.new_zeros(bias.shape)
        return x.new_zeros(x.shape), weight.new_zeros(weight.shape), grad_bias, None


def unfold(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    dilation: IntOrPair = 1,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """im2col: (N, C, H, W) -> (N, C*kH*kW, L), like torch's functional ``unfold``."""
    check_floating(input, "unfold: input")
    if input.dim() not in (3, 4):
        raise ValueError(f"unfold: expected a 3-D or 4-D input, got shape {tuple(input.shape)}")
    window = fold_args(kernel_size, dilation, padding, stride, "unfold")
    check_blocks(input.shape[-2:], window, "unfold")
    x = input.unsqueeze(0) if input.dim() == 3 else input
    cols = resolve(backend, x.device).im2col(x, window.kernel_size, window.dilation, window.padding, window.stride)
    return cols.squeeze(0) if input.dim() == 3 else cols


def fold(
    input: torch.Tensor,
    output_size: IntOrPair,
    kernel_size: IntOrPair,
    dilation: IntOrPair = 1,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """col2im: (N, C*kH*kW, L) -> (N, C, H, W), summing overlaps, like torch's functional ``fold``."""
    check_floating(input, "fold: input")
    if input.dim() not in (2, 3):
        raise ValueError(f"fold: expected a 2-D or 3-D input, got shape {tuple(input.shape)}")
    window = fold_args(kernel_size, dilation, padding, stride, "fold")
    size = pair(output_size, "fold: output_size")
    blocks = check_blocks(size, window, "fold")
    taps = window.kernel_size[0] * window.kernel_size[1]
    if input.shape[-2] % taps != 0:
        raise ValueError(
            f"fold: input dimension -2 ({input.shape[-2]}) must be divisible by kernel_size product {taps}"
        )
    if input.shape[-1] != blocks[0] * blocks[1]:
        raise ValueError(
            f"fold: input has {input.shape[-1]} blocks but output_size={tuple(size)} with these window "
            f"arguments gives {blocks[0]} x {blocks[1]} = {blocks[0] * blocks[1]}"
        )
    cols = input.unsqueeze(0) if input.dim() == 2 else input
    x = resolve(backend, cols.device).col2im(
        cols, size, window.kernel_size, window.dilation, window.padding, window.stride
    )
    return x.squeeze(0) if input.dim() == 2 else x
