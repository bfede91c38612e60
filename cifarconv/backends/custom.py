"""The ``custom`` backend: convolution as im2col + GEMM, in plain torch tensor ops.

Read it to see how a convolution becomes a matrix multiply.
No torch convolution and none of torch's unfold or fold runs here, forward or backward:
im2col is a strided view, col2im adds each kernel tap's slice back, and the GEMMs
are ``torch.matmul``.  It runs on any device torch runs on.

Shapes (g = groups, M = C_out/g, K = C_in/g * kH * kW, P = N * OH * OW):

  forward      y[g]   = W[g] (M x K)   @ cols[g] (K x P)
  grad input   dc[g]  = W[g]^T (K x M) @ dy[g] (M x P),  then dx = col2im(dc)
  grad weight  dW[g]  = dy[g] (M x P)  @ cols[g]^T (P x K),  db = sum of dy over P
"""

from __future__ import annotations

import torch

from ..args import conv2d_output_hw
from ..ops import define_python_family
from ..ops.meta import activation_format, empty
from ..precision import conv_matmul_precision


def windows(x, kernel_size, dilation, padding, stride):
    """All sliding windows of ``x`` as a (N, C, kH, kW, OH, OW) strided view (of a padded copy).

    Window element (n, c, i, j, oy, ox) is padded-input pixel
    (n, c, oy*stride_h + i*dilation_h, ox*stride_w + j*dilation_w): kernel taps step
    by ``dilation * row_stride`` in memory, output positions by ``stride * row_stride``.
    """
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel_size, dilation, padding, stride
    n, c, h, w = x.shape
    if ph or pw:
        padded = x.new_zeros(n, c, h + 2 * ph, w + 2 * pw)
        padded[:, :, ph : ph + h, pw : pw + w] = x
        x = padded
    oh, ow = conv2d_output_hw((h, w), kernel_size, stride, padding, dilation)
    s_n, s_c, s_h, s_w = x.stride()
    return x.as_strided(
        (n, c, kh, kw, oh, ow),
        (s_n, s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w),
        x.storage_offset(),
    )


def add_windows(win, output_size, kernel_size, dilation, padding, stride):
    """The adjoint of `windows`: sum (N, C, kH, kW, OH, OW) windows back into (N, C, H, W).

    Tap (i, j) of every window lands on the padded rows i*dh, i*dh + sh, ... and
    columns j*dw, j*dw + sw, ...: one strided slice per tap, added in a fixed order
    (deterministic, no atomics).
    """
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel_size, dilation, padding, stride
    n, c, _, _, oh, ow = win.shape
    h, w = output_size
    out = win.new_zeros(n, c, h + 2 * ph, w + 2 * pw)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw] += win[
                :, :, i, j
            ]
    return out[:, :, ph : ph + h, pw : pw + w]


def group_columns(x, kernel_size, stride, padding, dilation, groups):
    """im2col in GEMM layout: (g, K, P), rows (c, i, j) per group, columns (n, oy, ox)."""
    win = windows(x, kernel_size, dilation, padding, stride)
    n, c, kh, kw, oh, ow = win.shape
    return win.permute(1, 2, 3, 0, 4, 5).reshape(groups, c // groups * kh * kw, n * oh * ow)


def group_rows(t, groups):
    """(N, C, H, W) -> (g, C/g, N*H*W): channels as GEMM rows, one block per group."""
    n, c, h, w = t.shape
    return t.transpose(0, 1).reshape(groups, c // groups, n * h * w)


def group_weight(weight, groups):
    """(C_out, C_in/g, kH, kW) -> (g, M, K): one GEMM operand per group, rows (co), columns (c, i, j)."""
    c_out, c_in_g, kh, kw = weight.shape
    return weight.reshape(groups, c_out // groups, c_in_g * kh * kw)


def conv2d(input, weight, bias, stride, padding, dilation, groups):
    c_out = weight.shape[0]
    cols = group_columns(input, weight.shape[-2:], stride, padding, dilation, groups)
    with conv_matmul_precision(input):  # fp32 on CUDA: TF32 exactly when torch's conv would
        y = torch.matmul(group_weight(weight, groups), cols)  # (g, M, P)
    if bias is not None:
        y = y + bias.view(groups, c_out // groups, 1)
    oh, ow = conv2d_output_hw(input.shape[-2:], weight.shape[-2:], stride, padding, dilation)
    y = y.view(c_out, input.shape[0], oh, ow).transpose(0, 1)
    return empty(y.shape, y, activation_format(input)).copy_(y)


def conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, groups):
    c_out, c_in_g, kh, kw = weight.shape
    n, _, oh, ow = grad_output.shape
    with conv_matmul_precision(grad_output):
        dcols = torch.matmul(group_weight(weight, groups).transpose(1, 2), group_rows(grad_output, groups))  # (g, K, P)
    win = dcols.view(groups * c_in_g, kh, kw, n, oh, ow).permute(3, 0, 1, 2, 4, 5)
    dx = add_windows(win, input_size, (kh, kw), dilation, padding, stride)
    return empty(dx.shape, dx, activation_format(grad_output)).copy_(dx)


def conv2d_grad_weight(grad_output, input, kernel_size, stride, padding, dilation, groups, bias):
    c_out = grad_output.shape[1]
    dy = group_rows(grad_output, groups)  # (g, M, P)
    cols = group_columns(input, kernel_size, stride, padding, dilation, groups)  # (g, K, P)
    with conv_matmul_precision(input):
        grad_weight = torch.matmul(dy, cols.transpose(1, 2)).reshape(c_out, input.shape[1] // groups, *kernel_size)
    grad_bias = dy.sum(2).reshape(c_out) if bias else dy.new_empty(0)
    return grad_weight, grad_bias


def im2col(input, kernel_size, dilation, padding, stride):
    win = windows(input, kernel_size, dilation, padding, stride)
    n, c, kh, kw, oh, ow = win.shape
    cols = empty((n, c * kh * kw, oh * ow), input)
    cols.view(win.shape).copy_(win)  # always a fresh tensor: an op's output never aliases its input
    return cols


def col2im(input, output_size, kernel_size, dilation, padding, stride):
    n, ckk, _ = input.shape
    kh, kw = kernel_size
    oh, ow = conv2d_output_hw(output_size, kernel_size, stride, padding, dilation)
    win = input.reshape(n, ckk // (kh * kw), kh, kw, oh, ow)
    return add_windows(win, output_size, kernel_size, dilation, padding, stride).contiguous()


OPS = define_python_family(
    "custom",
    {
        "conv2d": conv2d,
        "conv2d_grad_input": conv2d_grad_input,
        "conv2d_grad_weight": conv2d_grad_weight,
        "im2col": im2col,
        "col2im": col2im,
    },
)


def unavailable_reason(device: torch.device) -> str | None:
    return None  # plain torch ops: runs wherever torch does
