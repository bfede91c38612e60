"""Grad weight (and grad bias) of a convolution as an implicit GEMM with split-K.

Per group g (M = C_out/g, K = C_in/g * kH * kW, P = N*OH*OW):

    dw[co, (c, i, j)] = sum over p = (n, oh, ow) of  dy[n, co, oh, ow] * x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]
    db[co]            = sum over p of dy[n, co, oh, ow]

an (M x P) @ (P x K) GEMM whose right matrix is the column matrix of x, gathered tile by
tile.  The reduction over P is very long next to M and K, so it is split into SPLIT_K
contiguous ranges that run in parallel; each writes an fp32 (fp64 for float64) partial
into its own slice of a workspace, and the host sums the slices (deterministic, no atomics).
grad bias is the same reduction over dy's rows, so the programs of the first K tile add
up their dy tiles as they go and write the bias partials too: no second pass over dy.

Tiles and grid: program (pid_m, pid_n, g * SPLIT_K + s) computes a BLOCK_M x BLOCK_N tile
of dw (output channels x columns (c, i, j)) over split s, BLOCK_K pixels per ``tl.dot``.
The column -> (c, i, j) split is done once per tile; the pixel -> (n, oh, ow) split once
per BLOCK_K pixels (the reduction index).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..args import conv2d_output_hw
from ..ops import meta
from .common import FP64_CONFIG, SHAPE_KEY, TunedKernel, check_rows, config, dot_args, mma

CONFIGS = [  # (BLOCK_M out channels, BLOCK_N columns (c, i, j), BLOCK_K pixels, warps, stages)
    config(128, 128, 32, 8, 3),
    config(64, 128, 32, 4, 4),
    config(128, 64, 32, 4, 4),
    config(64, 64, 64, 4, 3),
    config(32, 64, 64, 4, 3),
    config(32, 32, 32, 2, 3),
]
INTERPRETER_CONFIG = config(16, 64, 128)  # numpy: few big programs beat many small ones
ROWS_PER_SPLIT = 4096  # pixels per split-K range, at least
MAX_SPLIT_K = 32


def split_k(pixels: int) -> int:
    """How many ranges the pixel reduction is split into."""
    return max(1, min(MAX_SPLIT_K, pixels // ROWS_PER_SPLIT))


@triton.jit
def conv2d_wgrad_kernel(
    dy_ptr, x_ptr, dw_ptr, db_ptr,  # dw: (SPLIT_K, C_out, K) workspace, db: (SPLIT_K, C_out)
    dw_split_stride, db_split_stride,
    N, C_in_g, H, W, C_out_g, OH, OW, SPLIT_K,
    sdn, sdc, sdh, sdw,  # strides of dy (N, C_out, OH, OW)
    sxn, sxc, sxh, sxw,  # strides of x (N, C_in, H, W)
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, FP64: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_z = tl.program_id(2)
    g = pid_z // SPLIT_K
    s = pid_z % SPLIT_K

    # Rows: output channels of group g.
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rm < C_out_g
    co = (g * C_out_g + rm).to(tl.int64)
    dy_rows = dy_ptr + co * sdc

    # Columns: k = (c, i, j) in weight order, split once per tile.  Column k reads pixel
    # (oh*SH + tap_h, ow*SW + tap_w) of channel c for output pixel (oh, ow).
    K = C_in_g * KH * KW
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = rn < K
    c = rn // (KH * KW)
    tap_h = (rn % (KH * KW)) // KW * DH - PH
    tap_w = rn % KW * DW - PW
    x_cols = x_ptr + (g * C_in_g + c).to(tl.int64) * sxc

    # This program's range of the pixel reduction: split s of SPLIT_K, in whole BLOCK_Ks.
    P = N * OH * OW
    per_split = tl.cdiv(tl.cdiv(P, SPLIT_K), BLOCK_K) * BLOCK_K
    p_start = s * per_split
    p_end = tl.minimum(p_start + per_split, P)
    rk = tl.arange(0, BLOCK_K)

    if FP64:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
        bias_acc = tl.zeros((BLOCK_M,), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        bias_acc = tl.zeros((BLOCK_M,), dtype=tl.float32)

    for p0 in range(p_start, p_end, BLOCK_K):
        p = p0 + rk
        p_ok = p < p_end
        n = (p // (OH * OW)).to(tl.int64)
        oh = (p % (OH * OW)) // OW
        ow = p % OW
        # dy^T tile (channels x pixels)
        dy_pix = n * sdn + oh.to(tl.int64) * sdh + ow.to(tl.int64) * sdw
        a = tl.load(dy_rows[:, None] + dy_pix[None, :], mask=row_ok[:, None] & p_ok[None, :], other=0.0)
        # column-matrix tile (pixels x (c, i, j)), gathered from x
        ih = oh[:, None] * SH + tap_h[None, :]
        iw = ow[:, None] * SW + tap_w[None, :]
        x_ok = p_ok[:, None] & col_ok[None, :]
        if PH > 0 or PW > 0:
            x_ok = x_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_ptrs = x_cols[None, :] + (n * sxn)[:, None] + ih.to(tl.int64) * sxh + iw.to(tl.int64) * sxw
        b = tl.load(x_ptrs, mask=x_ok, other=0.0)
        acc = mma(a, b, acc, PRECISION, WIDEN, FP64)
        if HAS_BIAS:
            bias_acc += tl.sum(a.to(bias_acc.dtype), axis=1)

    # Partials go to slice s of the contiguous workspaces.
    dw_ptrs = dw_ptr + s.to(tl.int64) * dw_split_stride + co[:, None] * K + rn[None, :]
    tl.store(dw_ptrs, acc, mask=row_ok[:, None] & col_ok[None, :])
    if HAS_BIAS:
        if pid_n == 0:
            tl.store(db_ptr + s.to(tl.int64) * db_split_stride + co, bias_acc, mask=row_ok)


TUNED = TunedKernel(conv2d_wgrad_kernel, CONFIGS, FP64_CONFIG, INTERPRETER_CONFIG, [*SHAPE_KEY, "SPLIT_K"])


def conv2d_grad_weight(dy, x, kernel_size, stride, padding, dilation, groups, bias, *, config=None, splits=None):
    """(dw, db) for y = conv2d(x, w, b); db is empty when ``bias`` is false.  ``splits`` overrides split-K."""
    dw, db = meta.conv2d_grad_weight(dy, x, kernel_size, stride, padding, dilation, groups, bias)
    n, c_in, h, wd = x.shape
    c_out = dy.shape[1]
    kh, kw = kernel_size
    oh, ow = conv2d_output_hw((h, wd), kernel_size, stride, padding, dilation)
    c_in_g, c_out_g = c_in // groups, c_out // groups
    k = c_in_g * kh * kw
    check_rows(n * oh * ow, "N*OH*OW")
    splits = splits or split_k(n * oh * ow)
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    dw_partial = torch.empty((splits, c_out, k), dtype=acc_dtype, device=x.device)
    db_partial = torch.empty((splits, c_out if bias else 0), dtype=acc_dtype, device=x.device)

    def grid(meta_):
        return (triton.cdiv(c_out_g, meta_["BLOCK_M"]), triton.cdiv(k, meta_["BLOCK_N"]), groups * splits)

    args = (
        dy, x, dw_partial, db_partial if bias else dw_partial,  # no bias: db_ptr is never written
        dw_partial.stride(0), db_partial.stride(0),
        n, c_in_g, h, wd, c_out_g, oh, ow, splits,
        *dy.stride(), *x.stride(),
    )  # fmt: skip
    kwargs = dict(
        KH=kh, KW=kw, SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1], DH=dilation[0], DW=dilation[1],
        HAS_BIAS=bias, **dot_args(x),
    )  # fmt: skip
    TUNED.launch(grid, args, kwargs, x.dtype, config)
    # Sum the split-K partials and cast: the only host-side arithmetic.
    dw.copy_(dw_partial.sum(0).view(dw.shape))
    if bias:
        db.copy_(db_partial.sum(0))
    return dw, db
