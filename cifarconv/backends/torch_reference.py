"""The ``torch`` backend: torch's own convolution (cuDNN / oneDNN / aten), the reference.

Its five ops are torch's functions with the op layer's arguments, so the functional layer
and the check battery treat it like every other backend; its autograd is torch's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import OpFamily


def conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, groups):
    shape = (grad_output.shape[0], weight.shape[1] * groups, *input_size)
    return torch.nn.grad.conv2d_input(shape, weight, grad_output, stride, padding, dilation, groups)  # allowed


def conv2d_grad_weight(grad_output, input, kernel_size, stride, padding, dilation, groups, bias):
    shape = (grad_output.shape[1], input.shape[1] // groups, *kernel_size)
    grad_weight = torch.nn.grad.conv2d_weight(input, shape, grad_output, stride, padding, dilation, groups)  # allowed
    grad_bias = grad_output.sum((0, 2, 3)) if bias else grad_output.new_empty(0)
    return grad_weight, grad_bias


def im2col(input, kernel_size, dilation, padding, stride):
    return F.unfold(input, kernel_size, dilation, padding, stride)  # allowed: this is the reference backend


def col2im(input, output_size, kernel_size, dilation, padding, stride):
    return F.fold(input, output_size, kernel_size, dilation, padding, stride)  # allowed


OPS = OpFamily(
    prefix="torch",
    conv2d=F.conv2d,  # allowed: this is the reference backend
    conv2d_grad_input=conv2d_grad_input,
    conv2d_grad_weight=conv2d_grad_weight,
    im2col=im2col,
    col2im=col2im,
)


def unavailable_reason(device: torch.device) -> str | None:
    return None
