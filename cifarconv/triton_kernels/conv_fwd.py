"""Forward convolution as an implicit GEMM: the column matrix is never written to memory.

Per group g (M = C_out/g output channels, P = N*OH*OW output pixels):

    y[p, co] = b[co] + sum over (i, j, c) of  x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] * w[co, c, i, j]

i.e. a (P x K) @ (K x M) GEMM with K = kH*kW*C_in/g, where row p = (n, oh, ow) of the
left matrix is the receptive field of one output pixel, gathered on the fly.

Tiles and grid: program (pid_m, pid_n, g) computes a BLOCK_M x BLOCK_N tile of y (pixels x
output channels of group g).  The reduction runs tap by tap (i, j unrolled: the kernel
size is constexpr) and, inside each tap, over input channels in chunks of BLOCK_K, one
``tl.dot`` per chunk.  With channels_last input each chunk is a contiguous vector load.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..args import conv2d_output_hw
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
def conv2d_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, C_in_g, H, W, C_out_g, OH, OW,
    sxn, sxc, sxh, sxw,  # strides of x (N, C, H, W): any layout
    swo, swc, swh, sww,  # strides of w (C_out, C_in/g, kH, kW)
    syn, syc, syh, syw,  # strides of y
    sb,  # stride of the bias (0 when it is an expanded scalar)
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, FP64: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g = tl.program_id(2)

    # Index math, once per tile: split the tile's rows into (n, oh, ow) and find the
    # top-left corner (ih0, iw0) of each receptive field in the (unpadded) input.  Offsets
    # are int64 before they meet a stride, so tensors past 2**31 elements address correctly.
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rm < N * OH * OW
    n = rm // (OH * OW)
    oh = (rm % (OH * OW)) // OW
    ow = rm % OW
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW
    x_rows = x_ptr + n.to(tl.int64) * sxn + (g * C_in_g).to(tl.int64) * sxc

    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channel within group g
    col_ok = rn < C_out_g
    co = (g * C_out_g + rn).to(tl.int64)
    w_cols = w_ptr + co * swo
    rk = tl.arange(0, BLOCK_K)

    if FP64:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    for i in tl.static_range(KH):
        for j in tl.static_range(KW):
            # Tap (i, j): the pixel each row reads moves by a fixed (i*DH, j*DW).
            ih = ih0 + i * DH
            iw = iw0 + j * DW
            if PH > 0 or PW > 0:
                tap_ok = row_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            else:  # unpadded: every valid row reads inside the input (1x1 is then a plain GEMM)
                tap_ok = row_ok
            x_tap = x_rows + ih.to(tl.int64) * sxh + iw.to(tl.int64) * sxw
            w_tap = w_cols + i * swh + j * sww
            for c0 in range(0, C_in_g, BLOCK_K):
                c = c0 + rk
                c_ok = c < C_in_g
                c64 = c.to(tl.int64)
                a = tl.load(x_tap[:, None] + c64[None, :] * sxc, mask=tap_ok[:, None] & c_ok[None, :], other=0.0)
                b = tl.load(w_tap[None, :] + c64[:, None] * swc, mask=c_ok[:, None] & col_ok[None, :], other=0.0)
                acc = mma(a, b, acc, PRECISION, WIDEN, FP64)

    # Epilogue: bias, cast, store into y[n, co, oh, ow] (y's layout given by its strides).
    if HAS_BIAS:
        acc += tl.load(b_ptr + co * sb, mask=col_ok, other=0.0).to(acc.dtype)[None, :]
    y_rows = n.to(tl.int64) * syn + oh.to(tl.int64) * syh + ow.to(tl.int64) * syw
    y_ptrs = y_ptr + y_rows[:, None] + (co * syc)[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


# (BLOCK_M pixels, BLOCK_N out channels, BLOCK_K in channels, warps, stages)
TUNED = TunedKernel(conv2d_fwd_kernel, PIXEL_TILE_CONFIGS, FP64_CONFIG, PIXEL_TILE_INTERPRETER_CONFIG, SHAPE_KEY)


def conv2d(x, w, bias, stride, padding, dilation, groups, *, config=None):
    """y = conv2d(x, w, bias); y is allocated by the shared fake kernel (same shape and layout)."""
    y = meta.conv2d(x, w, bias, stride, padding, dilation, groups)
    if y.numel() == 0:
        return y
    n, c_in, h, wd = x.shape
    c_out, c_in_g, kh, kw = w.shape
    oh, ow = conv2d_output_hw((h, wd), (kh, kw), stride, padding, dilation)
    c_out_g = c_out // groups
    check_rows(n * oh * ow, "N*OH*OW")

    def grid(meta_):
        return (triton.cdiv(n * oh * ow, meta_["BLOCK_M"]), triton.cdiv(c_out_g, meta_["BLOCK_N"]), groups)

    args = (
        x, w, bias if bias is not None else x, y,  # x stands in for a missing bias: never read
        n, c_in_g, h, wd, c_out_g, oh, ow,
        *x.stride(), *w.stride(), *y.stride(), bias.stride(0) if bias is not None else 0,
    )  # fmt: skip
    kwargs = dict(
        KH=kh, KW=kw, SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1], DH=dilation[0], DW=dilation[1],
        HAS_BIAS=bias is not None, **dot_args(x),
    )  # fmt: skip
    TUNED.launch(grid, args, kwargs, x.dtype, config)
    return y
