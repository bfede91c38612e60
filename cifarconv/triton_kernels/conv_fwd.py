"""Forward convolution as an implicit GEMM: the column matrix is never written to memory.

Per group g (M = C_out/g output channels, P = N*OH*OW output pixels):

    y[p, co] = b[co] + sum over (i, j, c) of  x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] * w[co, c, i, j]

a (P x K) @ (K x M) GEMM with K = kH*kW*C_in/g, where row p = (n, oh, ow) of the left
matrix is the receptive field of one output pixel, gathered on the fly.

The weight is rearranged once per call to ``w_kn[g, (i*KW + j)*C_in_g + c, co]``: row k of
the right-hand matrix, output channels contiguous, so its tiles are plain coalesced loads.

Tiles and grid: program (g, pid) computes a BLOCK_M x BLOCK_N tile of y (pixels x output
channels of group g); pid runs over the output-channel tiles of one pixel tile first, so
the programs that share an input tile run together and find it in L2.  The grid is 1-D,
groups outermost (`common.grid_1d`).  The reduction is
one loop over (tap, channel block) steps -- one tap's BLOCK_K channels per ``tl.dot``,
channels fastest -- so Triton's software pipeline spans the taps, and with channels_last
input each step's tile is BLOCK_K contiguous channels per pixel.  With few input
channels per group (``FOLD_TAPS``: the 3-channel stem) the steps run over the flattened
K = (i, j, c) instead, so a tile is not mostly zero padding.

The spatial sizes are constexpr, so the (n, oh, ow) split of each pixel index compiles to
multiplies and shifts.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..args import conv2d_output_hw
from ..ops import meta
from .common import check_rows, choose_tile, dot_args, grid_1d, index_args, launch, mma, offset, zeros_acc

FOLD_TAPS_BELOW = 16  # input channels per group below which the taps are folded into K


@triton.jit
def conv2d_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, C_in_g, C_out_g,
    stride_xn, stride_xc, stride_xh, stride_xw,  # x (N, C_in, H, W): any layout
    stride_yn, stride_yc, stride_yh, stride_yw,  # y (N, C_out, OH, OW)
    stride_b,  # the bias (0 when it is an expanded scalar)
    H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    HAS_BIAS: tl.constexpr, FOLD_TAPS: tl.constexpr, INDEX64: tl.constexpr,
    PRECISION: tl.constexpr, FP64: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    tiles_n = tl.cdiv(C_out_g, BLOCK_N)
    tiles = tl.cdiv(N * OH * OW, BLOCK_M) * tiles_n  # per group
    g = tl.program_id(0) // tiles
    pid = tl.program_id(0) % tiles
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n

    # Rows: output pixels p = (n, oh, ow); (ih0, iw0) is the top-left corner of each
    # receptive field in the unpadded input.
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < N * OH * OW
    n_img = offs_m // (OH * OW)
    oh = offs_m % (OH * OW) // OW
    ow = offs_m % OW
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW
    x_rows = x_ptr + offset(n_img, INDEX64) * stride_xn + offset(g * C_in_g, INDEX64) * stride_xc

    # Columns: output channels of group g; the weight rows of group g.
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < C_out_g
    K = KH * KW * C_in_g
    w_cols = w_ptr + offset(g * K, INDEX64) * C_out_g + offs_n
    offs_k = tl.arange(0, BLOCK_K)

    acc = zeros_acc((BLOCK_M, BLOCK_N), FP64)
    if FOLD_TAPS:
        # Steps over k = (i*KW + j)*C_in_g + c itself: each column of a tile has its own tap.
        for k0 in range(0, K, BLOCK_K):
            k = k0 + offs_k
            k_ok = k < K
            tap = k // C_in_g
            c = k % C_in_g
            ih = ih0[:, None] + (tap // KW * DH)[None, :]
            iw = iw0[:, None] + (tap % KW * DW)[None, :]
            a_ok = m_ok[:, None] & k_ok[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            a_ptrs = x_rows[:, None] + offset(ih, INDEX64) * stride_xh + offset(iw, INDEX64) * stride_xw \
                + offset(c, INDEX64)[None, :] * stride_xc
            a = tl.load(a_ptrs, mask=a_ok, other=0.0)
            b = tl.load(w_cols[None, :] + offset(k, INDEX64)[:, None] * C_out_g, mask=k_ok[:, None] & n_ok[None, :],
                        other=0.0)
            acc = mma(a, b, acc, PRECISION, WIDEN, FP64)
    else:
        # Steps over (tap, channel block), channels fastest: tap (i, j) moves every row's
        # pixel by the same (i*DH, j*DW).
        c_blocks = tl.cdiv(C_in_g, BLOCK_K)
        for step in range(0, KH * KW * c_blocks):
            tap = step // c_blocks
            c = (step - tap * c_blocks) * BLOCK_K + offs_k
            ih = ih0 + tap // KW * DH
            iw = iw0 + tap % KW * DW
            if PH > 0 or PW > 0:
                a_rows = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            else:  # unpadded: every valid row reads inside the input
                a_rows = m_ok
            c_ok = c < C_in_g
            pixel = offset(ih, INDEX64) * stride_xh + offset(iw, INDEX64) * stride_xw
            a = tl.load(x_rows[:, None] + pixel[:, None] + offset(c, INDEX64)[None, :] * stride_xc,
                        mask=a_rows[:, None] & c_ok[None, :], other=0.0)
            b = tl.load(w_cols[None, :] + offset(tap * C_in_g + c, INDEX64)[:, None] * C_out_g,
                        mask=c_ok[:, None] & n_ok[None, :], other=0.0)
            acc = mma(a, b, acc, PRECISION, WIDEN, FP64)

    # Epilogue: bias, cast, store into y[n, g*C_out_g + co, oh, ow] (y's layout given by its strides).
    co = g * C_out_g + offs_n
    if HAS_BIAS:
        acc += tl.load(b_ptr + co * stride_b, mask=n_ok, other=0.0).to(acc.dtype)[None, :]
    y_rows = offset(n_img, INDEX64) * stride_yn + offset(oh, INDEX64) * stride_yh + offset(ow, INDEX64) * stride_yw
    y_ptrs = y_ptr + y_rows[:, None] + offset(co, INDEX64)[None, :] * stride_yc
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def weight_kn(w: torch.Tensor, groups: int) -> torch.Tensor:
    """w (C_out, C_in_g, kH, kW) as (groups, kH*kW*C_in_g, C_out_g): row (i*KW + j)*C_in_g + c."""
    c_out, c_in_g, kh, kw = w.shape
    return w.view(groups, c_out // groups, c_in_g, kh, kw).permute(0, 3, 4, 2, 1).contiguous()


def conv2d(x, w, bias, stride, padding, dilation, groups, *, tile=None):
    """y = conv2d(x, w, bias); y is allocated by the shared fake kernel (same shape and layout).

    ``tile`` overrides the launch config (tests, `make triton-check`).
    """
    y = meta.conv2d(x, w, bias, stride, padding, dilation, groups)
    if y.numel() == 0:
        return y
    n, c_in, h, wd = x.shape
    c_out, c_in_g, kh, kw = w.shape
    oh, ow = conv2d_output_hw((h, wd), (kh, kw), stride, padding, dilation)
    c_out_g = c_out // groups
    check_rows(n * oh * ow, "N*OH*OW")
    fold = c_in_g < FOLD_TAPS_BELOW
    # Folded taps gather each column on its own, which takes registers: 64-row tiles there.
    tile = tile or choose_tile(min(n * oh * ow, 64) if fold else n * oh * ow, c_out_g,
                               kh * kw * c_in_g if fold else c_in_g, x.dtype)
    w_kn = weight_kn(w, groups)

    grid = grid_1d(triton.cdiv(n * oh * ow, tile.block_m) * triton.cdiv(c_out_g, tile.block_n), groups)
    args = (
        x, w_kn, bias if bias is not None else x, y,  # x stands in for a missing bias: never read
        n, c_in_g, c_out_g, *x.stride(), *y.stride(), bias.stride(0) if bias is not None else 0,
    )  # fmt: skip
    kwargs = dict(
        H=h, W=wd, OH=oh, OW=ow, KH=kh, KW=kw, SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1],
        DH=dilation[0], DW=dilation[1], HAS_BIAS=bias is not None, FOLD_TAPS=fold,
        **index_args(x, y, w_kn, *([bias] if bias is not None else [])), **dot_args(x), **tile.kwargs(),
    )  # fmt: skip
    launch(conv2d_fwd_kernel, grid, args, kwargs)
    return y
