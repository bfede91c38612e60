"""Grad weight (and grad bias) of a convolution as an implicit GEMM with split-K.

Per group g (M = C_out/g, K = kH*kW*C_in/g, P = N*OH*OW):

    dw[co, (i, j, c)] = sum over p = (n, oh, ow) of  dy[n, co, oh, ow] * x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]
    db[co]            = sum over p of dy[n, co, oh, ow]

an (M x P) @ (P x K) GEMM whose right matrix is the column matrix of x, gathered tile by
tile, with its columns in (i, j, c) order.  A BLOCK_N tile of columns lies inside one tap
(i, j) and holds BLOCK_N consecutive input channels, so with channels_last both operand
tiles are loads along channels: dy^T as BLOCK_K pixels x BLOCK_M output channels, x as
BLOCK_K pixels x BLOCK_N input channels, shifted by the tap.  With few input channels per
group (``FOLD_TAPS``: the stem) a tile spans the flattened (i, j, c) columns instead.

The reduction over P is long next to M and K, so it is split into SPLIT_K contiguous
ranges that run in parallel, as many as it takes to fill the GPU (`split_k`); each writes
an fp32 (fp64 for float64) partial into its own slice of a workspace, and one sum over the
slices on the GPU finishes it (deterministic, no atomics).  grad bias is the same
reduction over dy's rows, so the programs of the first column tile add up their dy tiles
as they go and write the bias partials too: no second pass over dy.

Grid: 1-D (`common.grid_1d`), (group, split) outermost, then the C_out/g tiles x the column
tiles.  The spatial sizes are constexpr, so the (n, oh, ow) split of each step's pixels
compiles to multiplies and shifts.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..args import conv2d_output_hw
from ..ops import meta
from .common import (
    INTERPRET, MAX_ROWS, accumulator_dtype, check_rows, choose_tile, dot_args, grid_1d, index_args, launch, mma, offset,
    zeros_acc,
)

FOLD_TAPS_BELOW = 16  # input channels per group below which a column tile spans several taps
SMS = 132  # programs to aim for: the multiprocessors of an H100 / H200
MAX_SPLIT_K = 64


def split_k(pixels: int, tiles: int, block_k: int) -> int:
    """How many ranges the pixel reduction is split into: enough programs for two waves on
    the GPU, each range at least 8 steps of BLOCK_K pixels."""
    if INTERPRET:
        return 1 if pixels < 4096 else 2
    return max(1, min(MAX_SPLIT_K, triton.cdiv(2 * SMS, tiles), pixels // (8 * block_k)))


def split_ranges(pixels: int, splits: int, block_k: int) -> int:
    """PER_SPLIT: split s reduces pixels [s * PER_SPLIT, min((s + 1) * PER_SPLIT, pixels)),
    whole BLOCK_Ks each.  The kernel forms these bounds and p0 + BLOCK_K - 1 in int32; with
    at most MAX_ROWS pixels (`check_rows`) and MAX_SPLIT_K splits none reaches 2**31."""
    per_split = triton.cdiv(triton.cdiv(pixels, splits), block_k) * block_k
    largest = max(splits * per_split, pixels + block_k)
    assert pixels <= MAX_ROWS and splits <= MAX_SPLIT_K and largest < 2**31, (pixels, splits, block_k)
    return per_split


@triton.jit
def conv2d_wgrad_kernel(
    dy_ptr, x_ptr, dw_ptr, db_ptr,  # dw: (SPLIT_K, C_out, K) workspace, db: (SPLIT_K, C_out)
    stride_dws, stride_dbs,  # their split strides: C_out * K and C_out
    N, C_in_g, C_out_g, SPLIT_K, PER_SPLIT,  # PER_SPLIT: pixels per split (`split_ranges`)
    stride_dyn, stride_dyc, stride_dyh, stride_dyw,  # dy (N, C_out, OH, OW)
    stride_xn, stride_xc, stride_xh, stride_xw,  # x (N, C_in, H, W)
    H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    HAS_BIAS: tl.constexpr, FOLD_TAPS: tl.constexpr, INDEX64: tl.constexpr,
    PRECISION: tl.constexpr, FP64: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    K = KH * KW * C_in_g
    if FOLD_TAPS:
        tiles_n = tl.cdiv(K, BLOCK_N)
    else:
        c_tiles = tl.cdiv(C_in_g, BLOCK_N)
        tiles_n = KH * KW * c_tiles
    tiles = tl.cdiv(C_out_g, BLOCK_M) * tiles_n  # per (group, split)
    pid_z = tl.program_id(0) // tiles
    pid = tl.program_id(0) % tiles
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    g = pid_z // SPLIT_K
    s = pid_z % SPLIT_K

    # Rows: output channels of group g.
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < C_out_g
    dy_cols = dy_ptr + offset(g * C_out_g + offs_m, INDEX64) * stride_dyc

    # Columns k = (i*KW + j)*C_in_g + c, and the (row, column) shift each one's tap reads at.
    if FOLD_TAPS:
        k = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        tap = k // C_in_g
        c = k % C_in_g
    else:
        tap = pid_n // c_tiles
        c = pid_n % c_tiles * BLOCK_N + tl.arange(0, BLOCK_N)
        k = tap * C_in_g + c
    n_ok = (k < K) & (c < C_in_g)
    tap_h = tap // KW * DH - PH
    tap_w = tap % KW * DW - PW
    x_cols = x_ptr + offset(g * C_in_g + c, INDEX64) * stride_xc

    # This program's range of the pixel reduction: split s of SPLIT_K, in whole BLOCK_Ks.
    P = N * OH * OW
    p_start = s * PER_SPLIT
    p_end = tl.minimum(p_start + PER_SPLIT, P)
    offs_k = tl.arange(0, BLOCK_K)

    acc = zeros_acc((BLOCK_M, BLOCK_N), FP64)
    bias_acc = tl.zeros((BLOCK_M,), dtype=acc.dtype)
    for p0 in range(p_start, p_end, BLOCK_K):
        p = p0 + offs_k
        p_ok = p < p_end
        n_img = p // (OH * OW)
        oh = p % (OH * OW) // OW
        ow = p % OW
        # dy^T tile: output channels x pixels
        dy_pix = offset(n_img, INDEX64) * stride_dyn + offset(oh, INDEX64) * stride_dyh \
            + offset(ow, INDEX64) * stride_dyw
        a = tl.load(dy_cols[:, None] + dy_pix[None, :], mask=m_ok[:, None] & p_ok[None, :], other=0.0)
        # column-matrix tile: pixels x columns, gathered from x
        ih = oh[:, None] * SH + tap_h
        iw = ow[:, None] * SW + tap_w
        b_ok = p_ok[:, None] & n_ok[None, :]
        if PH > 0 or PW > 0:
            b_ok = b_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_pix = offset(n_img, INDEX64)[:, None] * stride_xn + offset(ih, INDEX64) * stride_xh \
            + offset(iw, INDEX64) * stride_xw
        b = tl.load(x_cols[None, :] + x_pix, mask=b_ok, other=0.0)
        acc = mma(a, b, acc, PRECISION, WIDEN, FP64)
        if HAS_BIAS:
            bias_acc += tl.sum(a.to(bias_acc.dtype), axis=1)

    # Partials go to slice s of the contiguous workspaces, columns in (i, j, c) order.
    co = offset(g * C_out_g + offs_m, INDEX64)
    dw_ptrs = dw_ptr + offset(s, INDEX64) * stride_dws + (co * K)[:, None] + offset(k, INDEX64)[None, :]
    tl.store(dw_ptrs, acc, mask=m_ok[:, None] & n_ok[None, :])
    if HAS_BIAS:
        if pid_n == 0:
            tl.store(db_ptr + offset(s, INDEX64) * stride_dbs + co, bias_acc, mask=m_ok)


def conv2d_grad_weight(dy, x, kernel_size, stride, padding, dilation, groups, bias, *, tile=None, splits=None):
    """(dw, db) for y = conv2d(x, w, b); db is empty when ``bias`` is false.

    ``tile`` and ``splits`` override the launch config and split-K (tests, `make triton-check`).
    """
    dw, db = meta.conv2d_grad_weight(dy, x, kernel_size, stride, padding, dilation, groups, bias)
    n, c_in, h, wd = x.shape
    c_out = dy.shape[1]
    kh, kw = kernel_size
    oh, ow = conv2d_output_hw((h, wd), kernel_size, stride, padding, dilation)
    c_in_g, c_out_g = c_in // groups, c_out // groups
    k = c_in_g * kh * kw
    pixels = n * oh * ow
    check_rows(pixels, "N*OH*OW")
    acc_dtype = accumulator_dtype(x.dtype)
    if dw.numel() == 0:  # no input or no output channels: no GEMM, but db is still dy's sum
        if bias:
            db.copy_(dy.sum((0, 2, 3), dtype=acc_dtype))
        return dw, db
    fold = c_in_g < FOLD_TAPS_BELOW
    tile = tile or choose_tile(c_out_g, k if fold else c_in_g, pixels, x.dtype)
    tiles_n = triton.cdiv(k, tile.block_n) if fold else kh * kw * triton.cdiv(c_in_g, tile.block_n)
    tiles = triton.cdiv(c_out_g, tile.block_m) * tiles_n
    splits = splits or split_k(pixels, tiles * groups, tile.block_k)
    dw_partial = torch.empty((splits, c_out, k), dtype=acc_dtype, device=x.device)
    db_partial = torch.empty((splits, c_out if bias else 0), dtype=acc_dtype, device=x.device)

    grid = grid_1d(tiles, groups * splits)
    args = (
        dy, x, dw_partial, db_partial if bias else dw_partial,  # no bias: db_ptr is never written
        dw_partial.stride(0), db_partial.stride(0), n, c_in_g, c_out_g, splits,
        split_ranges(pixels, splits, tile.block_k), *dy.stride(), *x.stride(),
    )  # fmt: skip
    kwargs = dict(
        H=h, W=wd, OH=oh, OW=ow, KH=kh, KW=kw, SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1],
        DH=dilation[0], DW=dilation[1], HAS_BIAS=bias, FOLD_TAPS=fold,
        **index_args(dy, x, dw_partial, db_partial), **dot_args(x), **tile.kwargs(),
    )  # fmt: skip
    launch(conv2d_wgrad_kernel, grid, args, kwargs)
    # Sum the split-K partials on the GPU, in a fixed order, and move the columns from (i, j, c)
    # to the weight's (c, i, j) order.
    dw.copy_(dw_partial.sum(0).view(c_out, kh, kw, c_in_g).permute(0, 3, 1, 2))
    if bias:
        db.copy_(db_partial.sum(0))
    return dw, db
