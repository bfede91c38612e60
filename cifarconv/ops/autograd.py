"""Backward formulas shared by every op family.

Convolution is bilinear, so each op's derivatives are other ops of the same family:

  y  = conv2d(x, w, b)           dx = grad_input(dy, w)   dw, db = grad_weight(dy, x)
  dx = grad_input(dy, w)         is the adjoint of x -> conv2d(x, w):
                                   d/d(dy) = conv2d(g, w),          d/dw = grad_weight(dy, g)
  dw, db = grad_weight(dy, x)    pairs with <dy, conv2d(x, gw, gb)>:
                                   d/d(dy) = conv2d(x, gw, gb),     d/dx = grad_input(dy, gw)
  cols = im2col(x)  and  x = col2im(cols)  are adjoint linear maps: each one's backward is the other.

Because every formula calls differentiable ops, double (and higher) backward works,
and a backend's backward runs only its own kernels.
"""

from __future__ import annotations

import torch


def register(family) -> None:
    """Attach the formulas above to the five ops of ``family`` (an `OpFamily`)."""
    f = family

    # conv2d(input, weight, bias, stride, padding, dilation, groups)
    def conv2d_setup(ctx, inputs, output):
        x, w, b, *conv = inputs
        ctx.save_for_backward(x, w)
        ctx.conv = conv

    def conv2d_backward(ctx, grad):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x:
            gx = f.conv2d_grad_input(grad, w, x.shape[-2:], *ctx.conv)
        if need_w:
            gw, gb = f.conv2d_grad_weight(grad, x, w.shape[-2:], *ctx.conv, need_b)
            gb = gb if need_b else None
        elif need_b:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None

    # conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, groups)
    def grad_input_setup(ctx, inputs, output):
        dy, w, _, *conv = inputs
        ctx.save_for_backward(dy, w)
        ctx.conv = conv

    def grad_input_backward(ctx, g):
        dy, w = ctx.saved_tensors
        d_dy = d_w = None
        if ctx.needs_input_grad[0]:
            d_dy = f.conv2d(g, w, None, *ctx.conv)
        if ctx.needs_input_grad[1]:
            d_w = f.conv2d_grad_weight(dy, g, w.shape[-2:], *ctx.conv, False)[0]
        return d_dy, d_w, None, None, None, None, None

    # conv2d_grad_weight(grad_output, input, kernel_size, stride, padding, dilation, groups, bias)
    def grad_weight_setup(ctx, inputs, output):
        dy, x, kernel_size, *conv, _bias = inputs
        ctx.save_for_backward(dy, x)
        ctx.conv = conv
        ctx.weight_shape = output[0].shape

    def grad_weight_backward(ctx, g_weight, g_bias):
        dy, x = ctx.saved_tensors
        if g_weight is None:
            g_weight = dy.new_zeros(ctx.weight_shape)
        if g_bias is not None and g_bias.numel() == 0:
            g_bias = None  # the op was called with bias=False
        d_dy = d_x = None
        if ctx.needs_input_grad[0]:
            d_dy = f.conv2d(x, g_weight, g_bias, *ctx.conv)
        if ctx.needs_input_grad[1]:
            d_x = f.conv2d_grad_input(dy, g_weight, x.shape[-2:], *ctx.conv)
        return d_dy, d_x, None, None, None, None, None, None

    # im2col(input, kernel_size, dilation, padding, stride)
    def im2col_setup(ctx, inputs, output):
        x, *window = inputs
        ctx.input_size = x.shape[-2:]
        ctx.window = window

    def im2col_backward(ctx, g):
        return f.col2im(g, ctx.input_size, *ctx.window), None, None, None, None

    # col2im(input, output_size, kernel_size, dilation, padding, stride)
    def col2im_setup(ctx, inputs, output):
        _, _, *window = inputs
        ctx.window = window

    def col2im_backward(ctx, g):
        return f.im2col(g, *ctx.window), None, None, None, None, None

    formulas = {
        "conv2d": (conv2d_backward, conv2d_setup),
        "conv2d_grad_input": (grad_input_backward, grad_input_setup),
        "conv2d_grad_weight": (grad_weight_backward, grad_weight_setup),
        "im2col": (im2col_backward, im2col_setup),
        "col2im": (col2im_backward, col2im_setup),
    }
    for op, (backward, setup) in formulas.items():
        torch.library.register_autograd(family.qualname(op), backward, setup_context=setup)
