"""Output shapes and memory layouts of the five ops.

These are the fake (meta) kernels that torch.compile and ``opcheck`` use, and the
allocation rules that real kernels follow, so fake and real outputs always agree.

Layout rule: ``conv2d`` returns channels_last when its input is channels_last (and
not also plain contiguous, as happens when C == 1 or H == W == 1), else contiguous
NCHW; ``conv2d_grad_input`` follows ``grad_output`` the same way; everything else is
contiguous.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..args import conv2d_output_hw


def activation_format(t: torch.Tensor) -> torch.memory_format:
    """channels_last for a strictly channels_last 4-D tensor, else contiguous_format."""
    if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def empty(shape: Sequence[int], like: torch.Tensor, fmt=torch.contiguous_format) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device, memory_format=fmt)


def conv2d(input, weight, bias, stride, padding, dilation, groups):
    oh, ow = conv2d_output_hw(input.shape[-2:], weight.shape[-2:], stride, padding, dilation)
    return empty((input.shape[0], weight.shape[0], oh, ow), input, activation_format(input))


def conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, groups):
    shape = (grad_output.shape[0], weight.shape[1] * groups, *input_size)
    return empty(shape, grad_output, activation_format(grad_output))


def conv2d_grad_weight(grad_output, input, kernel_size, stride, padding, dilation, groups, bias):
    c_out = grad_output.shape[1]
    grad_weight = empty((c_out, input.shape[1] // groups, *kernel_size), input)
    grad_bias = empty((c_out if bias else 0,), input)
    return grad_weight, grad_bias


def im2col(input, kernel_size, dilation, padding, stride):
    n, c, h, w = input.shape
    oh, ow = conv2d_output_hw((h, w), kernel_size, stride, padding, dilation)
    return empty((n, c * kernel_size[0] * kernel_size[1], oh * ow), input)


def col2im(input, output_size, kernel_size, dilation, padding, stride):
    n, ckk, _ = input.shape
    return empty((n, ckk // (kernel_size[0] * kernel_size[1]), *output_size), input)


FAKE_KERNELS = {
    "conv2d": conv2d,
    "conv2d_grad_input": conv2d_grad_input,
    "conv2d_grad_weight": conv2d_grad_weight,
    "im2col": im2col,
    "col2im": col2im,
}
