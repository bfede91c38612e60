"""im2col and col2im: gather kernels, one output element per lane, no atomics.

im2col   cols[n, (c, i, j), (oh, ow)] = x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]   (0 in the padding)
col2im   x[n, c, h, w] = sum of cols[n, (c, i, j), (oh, ow)] over the taps with
         h + PH = oh*SH + i*DH  and  w + PW = ow*SW + j*DW   (its adjoint)

col2im is in gather form (like aten's CUDA col2im): each lane owns one pixel of the output
and visits the kH*kW taps that can reach it (kernel size constexpr, so the taps unroll),
keeping those where (h + PH - i*DH) is a non-negative multiple of SH below SH*OH (same
along w).  Every output is written once by its owner: no atomics, no zero-fill.

Both kernels are 1-D: lane e of program pid handles flat element offs = pid*BLOCK + e of
their (contiguous) output, split into its indices with int64 div/mod.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..args import conv2d_output_hw
from ..ops import meta
from .common import launch, zeros_acc

BLOCK = 1024


@triton.jit
def im2col_kernel(
    x_ptr, col_ptr, total, C, H, W, OH, OW,
    stride_xn, stride_xc, stride_xh, stride_xw,  # x (N, C, H, W): any layout
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < total
    # offs = ((((n*C + c)*KH + i)*KW + j)*OH + oh)*OW + ow
    ow = offs % OW
    oh = (offs // OW) % OH
    j = (offs // (OW * OH)) % KW
    i = (offs // (OW * OH * KW)) % KH
    nc = offs // (OW * OH * KW * KH)  # n*C + c
    ih = oh * SH - PH + i * DH
    iw = ow * SW - PW + j * DW
    inside = ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    v = tl.load(x_ptr + (nc // C) * stride_xn + (nc % C) * stride_xc + ih * stride_xh + iw * stride_xw,
                mask=inside, other=0.0)
    tl.store(col_ptr + offs, v, mask=ok)


@triton.jit
def col2im_kernel(
    col_ptr, x_ptr, total, C, H, W, OH, OW,
    stride_cn, stride_ck, stride_cl,  # cols (N, C*kH*kW, L)
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    FP64: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < total
    # offs = ((n*C + c)*H + h)*W + w
    w = offs % W
    h = (offs // W) % H
    c = (offs // (W * H)) % C
    n = offs // (W * H * C)
    acc = zeros_acc((BLOCK,), FP64)
    col_base = col_ptr + n * stride_cn
    for i in tl.static_range(KH):
        num_h = h + PH - i * DH  # = oh*SH for the output row oh whose tap i lands on h
        oh = num_h // SH
        ok_h = ok & (num_h >= 0) & (num_h % SH == 0) & (oh < OH)
        for j in tl.static_range(KW):
            num_w = w + PW - j * DW
            ow = num_w // SW
            tap_ok = ok_h & (num_w >= 0) & (num_w % SW == 0) & (ow < OW)
            row = c * (KH * KW) + (i * KW + j)  # column-matrix row (c, i, j), int64 like c
            v = tl.load(col_base + row * stride_ck + (oh * OW + ow) * stride_cl, mask=tap_ok, other=0.0)
            acc += v.to(acc.dtype)
    tl.store(x_ptr + offs, acc.to(x_ptr.dtype.element_ty), mask=ok)


def _window(kernel_size, dilation, padding, stride) -> dict:
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel_size, dilation, padding, stride
    return dict(KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, DH=dh, DW=dw, BLOCK=BLOCK)


def im2col(x, kernel_size, dilation, padding, stride):
    cols = meta.im2col(x, kernel_size, dilation, padding, stride)
    if cols.numel():
        _, c, h, w = x.shape
        oh, ow = conv2d_output_hw((h, w), kernel_size, stride, padding, dilation)
        grid = (triton.cdiv(cols.numel(), BLOCK),)
        args = (x, cols, cols.numel(), c, h, w, oh, ow, *x.stride())
        launch(im2col_kernel, grid, args, _window(kernel_size, dilation, padding, stride))
    return cols


def col2im(cols, output_size, kernel_size, dilation, padding, stride):
    x = meta.col2im(cols, output_size, kernel_size, dilation, padding, stride)
    if x.numel():
        _, c, h, w = x.shape
        oh, ow = conv2d_output_hw((h, w), kernel_size, stride, padding, dilation)
        grid = (triton.cdiv(x.numel(), BLOCK),)
        args = (cols, x, x.numel(), c, h, w, oh, ow, *cols.stride())
        constexprs = dict(FP64=x.dtype == torch.float64, **_window(kernel_size, dilation, padding, stride))
        launch(col2im_kernel, grid, args, constexprs)
    return x
