"""Grad input of a convolution as an implicit GEMM over dy with the rotated weight.

Input pixel (ih, iw) received tap (i, j) from output pixel (oh, ow) when

    ih + PH = oh*SH + i*DH    and    iw + PW = ow*SW + j*DW,

so dx[n, c, ih, iw] = sum over (i, j, co) of dy[n, co, oh, ow] * w[co, c, i, j] for the
taps where (ih + PH - i*DH) / SH is a whole number in [0, OH) (same along w): a GEMM
of (pixels x C_out/g) dy rows with the (C_out/g x C_in/g) slice w[:, :, i, j] per tap.

Stride > 1 without zero-insertion: split the input pixels into SH*SW *stride phases*
(ih % SH, iw % SW).  Within one phase (ph, pw) the divisibility above does not depend on
the pixel, only on the tap: tap i contributes iff (ph + PH - i*DH) % SH == 0, and then
oh = th + (ph + PH - i*DH) // SH for the phase-local row th = ih // SH.  So every program
works on pixels of one phase, skips the taps that never reach them, and reads dy at a
constant offset per tap -- a dense implicit GEMM with no zeros multiplied.  Each input
pixel belongs to exactly one program, which writes it once (no atomics, no zero-fill).

Grid: (pixel tiles of one phase, C_in/g tiles, groups * SH * SW).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..ops import meta
from .common import (
    FP64_CONFIG,
    PIXEL_TILE_CONFIGS,
    PIXEL_TILE_INTERPRETER_CONFIG,
    SHAPE_KEY,
    TunedKernel,
    check_rows,
    dot_args,
    mma,
)


@triton.jit
def conv2d_dgrad_kernel(
    dy_ptr, w_ptr, dx_ptr,
    N, C_in_g, H, W, C_out_g, OH, OW,
    TH, TW,  # phase-local extents: ceil(H / SH), ceil(W / SW)
    sdn, sdc, sdh, sdw,  # strides of dy (N, C_out, OH, OW)
    swo, swc, swh, sww,  # strides of w (C_out, C_in/g, kH, kW)
    sxn, sxc, sxh, sxw,  # strides of dx (N, C_in, H, W)
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    PRECISION: tl.constexpr, FP64: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_z = tl.program_id(2)
    g = pid_z // (SH * SW)
    ph = (pid_z % (SH * SW)) // SW  # this program's stride phase (ih % SH, iw % SW)
    pw = pid_z % SW

    # Rows: input pixels (n, ih, iw) of phase (ph, pw), ih = ph + th*SH, iw = pw + tw*SW.
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n = rm // (TH * TW)
    th = (rm % (TH * TW)) // TW
    tw = rm % TW
    ih = ph + th * SH
    iw = pw + tw * SW
    row_ok = (rm < N * TH * TW) & (ih < H) & (iw < W)
    dy_rows = dy_ptr + n.to(tl.int64) * sdn + (g * C_out_g).to(tl.int64) * sdc

    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # input channel within group g
    col_ok = rn < C_in_g
    rk = tl.arange(0, BLOCK_K)  # output channel within group g (the reduction)
    w_cols = w_ptr + (g * C_out_g).to(tl.int64) * swo + rn.to(tl.int64) * swc

    if FP64:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    for i in tl.static_range(KH):
        num_h = ph + PH - i * DH  # = SH * (oh - th) when tap i reaches this phase
        if num_h % SH == 0:
            oh = th + num_h // SH
            for j in tl.static_range(KW):
                num_w = pw + PW - j * DW
                if num_w % SW == 0:
                    ow = tw + num_w // SW
                    tap_ok = row_ok & (oh >= 0) & (oh < OH) & (ow >= 0) & (ow < OW)
                    dy_tap = dy_rows + oh.to(tl.int64) * sdh + ow.to(tl.int64) * sdw
                    w_tap = w_cols + i * swh + j * sww
                    for k0 in range(0, C_out_g, BLOCK_K):
                        k = k0 + rk
                        k_ok = k < C_out_g
                        k64 = k.to(tl.int64)
                        a = tl.load(dy_tap[:, None] + k64[None, :] * sdc, mask=tap_ok[:, None] & k_ok[None, :], other=0.0)
                        b = tl.load(w_tap[None, :] + k64[:, None] * swo, mask=k_ok[:, None] & col_ok[None, :], other=0.0)
                        acc = mma(a, b, acc, PRECISION, WIDEN, FP64)

    dx_rows = n.to(tl.int64) * sxn + ih.to(tl.int64) * sxh + iw.to(tl.int64) * sxw
    dx_ptrs = dx_ptr + dx_rows[:, None] + ((g * C_in_g + rn).to(tl.int64) * sxc)[None, :]
    tl.store(dx_ptrs, acc.to(dx_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


# (BLOCK_M input pixels, BLOCK_N in channels, BLOCK_K out channels, warps, stages)
TUNED = TunedKernel(conv2d_dgrad_kernel, PIXEL_TILE_CONFIGS, FP64_CONFIG, PIXEL_TILE_INTERPRETER_CONFIG, SHAPE_KEY)


def conv2d_grad_input(dy, w, input_size, stride, padding, dilation, groups, *, config=None):
    """dx for y = conv2d(x, w); dx is allocated by the shared fake kernel (layout follows dy)."""
    dx = meta.conv2d_grad_input(dy, w, input_size, stride, padding, dilation, groups)
    if dx.numel() == 0:
        return dx
    n, c_out, oh, ow = dy.shape
    _, c_in_g, kh, kw = w.shape
    h, wd = input_size
    sh, sw = stride
    th, tw = triton.cdiv(h, sh), triton.cdiv(wd, sw)
    c_out_g = c_out // groups
    check_rows(n * th * tw, "N*ceil(H/SH)*ceil(W/SW)")

    def grid(meta_):
        return (triton.cdiv(n * th * tw, meta_["BLOCK_M"]), triton.cdiv(c_in_g, meta_["BLOCK_N"]), groups * sh * sw)

    args = (
        dy, w, dx,
        n, c_in_g, h, wd, c_out_g, oh, ow, th, tw,
        *dy.stride(), *w.stride(), *dx.stride(),
    )  # fmt: skip
    kwargs = dict(
        KH=kh, KW=kw, SH=sh, SW=sw, PH=padding[0], PW=padding[1], DH=dilation[0], DW=dilation[1],
        **dot_args(dy),
    )  # fmt: skip
    TUNED.launch(grid, args, kwargs, dy.dtype, config)
    return dx
