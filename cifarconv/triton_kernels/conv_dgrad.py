"""Grad input of a convolution as an implicit GEMM over dy with the flipped weight.

Input pixel (ih, iw) received tap (i, j) from output pixel (oh, ow) when

    ih + PH = oh*SH + i*DH    and    iw + PW = ow*SW + j*DW,

so dx[n, c, ih, iw] = sum over (i, j, co) of dy[n, co, oh, ow] * w[co, c, i, j] for the
taps where (ih + PH - i*DH) / SH is a whole number in [0, OH) (same along w): a GEMM
of (pixels x C_out/g) dy rows with the (C_out/g x C_in/g) slice w[:, :, i, j] per tap.

Stride > 1 without zero-insertion: split the input pixels into SH*SW *stride phases*
(ih % SH, iw % SW).  Within one phase (ph, pw) the divisibility above does not depend on
the pixel, only on the tap: tap i reaches the phase iff (ph + PH - i*DH) % SH == 0, and
those taps are i0, i0 + STEP_H, i0 + 2*STEP_H, ... (STEP_H = SH / gcd(SH, DH)), each at
a constant row offset oh = th + (ph + PH - i*DH) / SH from the phase-local row th = ih // SH.
So a program works on pixels of one phase and visits only the taps that reach them -- a
dense implicit GEMM, no zeros multiplied.  Each input pixel belongs to exactly one program,
which writes it once (no atomics; a phase no tap reaches is written as zeros).

The weight is rearranged once per call to ``w_nk[g, i, j, co, c]`` (input channels
contiguous), so each tap's tile is a plain coalesced load; dy tiles are BLOCK_K contiguous
output channels per pixel in channels_last.  As in the forward kernel, the reduction is one
loop over (tap, channel block) steps, and the spatial sizes are constexpr.

Grid: 1-D (`common.grid_1d`), (group, phase) outermost, then the pixel tiles of one phase
x the C_in/g tiles.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..ops import meta
from .common import check_rows, choose_tile, dot_args, grid_1d, index_args, launch, mma, offset, zeros_acc


@triton.jit
def conv2d_dgrad_kernel(
    dy_ptr, w_ptr, dx_ptr,
    N, C_in_g, C_out_g,
    stride_dyn, stride_dyc, stride_dyh, stride_dyw,  # dy (N, C_out, OH, OW)
    stride_dxn, stride_dxc, stride_dxh, stride_dxw,  # dx (N, C_in, H, W)
    H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    TH: tl.constexpr, TW: tl.constexpr,  # phase-local extents: ceil(H / SH), ceil(W / SW)
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    STEP_H: tl.constexpr, STEP_W: tl.constexpr,  # SH / gcd(SH, DH), SW / gcd(SW, DW)
    INDEX64: tl.constexpr, PRECISION: tl.constexpr, FP64: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    tiles_n = tl.cdiv(C_in_g, BLOCK_N)
    tiles = tl.cdiv(N * TH * TW, BLOCK_M) * tiles_n  # per (group, phase)
    pid_z = tl.program_id(0) // tiles
    pid = tl.program_id(0) % tiles
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    g = pid_z // (SH * SW)
    ph = pid_z % (SH * SW) // SW  # this program's stride phase (ih % SH, iw % SW)
    pw = pid_z % SW

    # The taps reaching this phase: i = i0 + STEP_H * t for t < n_i (KH, 0 when none does).
    i0 = KH
    for t in tl.static_range(STEP_H):
        i0 = tl.where(((ph + PH - t * DH) % SH == 0) & (t < i0), t, i0)
    j0 = KW
    for t in tl.static_range(STEP_W):
        j0 = tl.where(((pw + PW - t * DW) % SW == 0) & (t < j0), t, j0)
    n_i = tl.cdiv(KH - i0, STEP_H)
    n_j = tl.cdiv(KW - j0, STEP_W)

    # Rows: input pixels (n, ih, iw) of phase (ph, pw), ih = ph + th*SH, iw = pw + tw*SW.
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n_img = offs_m // (TH * TW)
    th = offs_m % (TH * TW) // TW
    tw = offs_m % TW
    ih = ph + th * SH
    iw = pw + tw * SW
    m_ok = (offs_m < N * TH * TW) & (ih < H) & (iw < W)
    dy_rows = dy_ptr + offset(n_img, INDEX64) * stride_dyn + offset(g * C_out_g, INDEX64) * stride_dyc

    # Columns: input channels of group g; the weight of group g.
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < C_in_g
    w_cols = w_ptr + offset(g * KH * KW, INDEX64) * C_out_g * C_in_g + offs_n
    offs_k = tl.arange(0, BLOCK_K)

    acc = zeros_acc((BLOCK_M, BLOCK_N), FP64)
    k_blocks = tl.cdiv(C_out_g, BLOCK_K)
    for step in range(0, n_i * n_j * k_blocks):
        tap = step // k_blocks
        i = i0 + tap // n_j * STEP_H
        j = j0 + tap % n_j * STEP_W
        oh = th + (ph + PH - i * DH) // SH  # exact: tap i reaches this phase
        ow = tw + (pw + PW - j * DW) // SW
        a_rows = m_ok & (oh >= 0) & (oh < OH) & (ow >= 0) & (ow < OW)
        k = (step - tap * k_blocks) * BLOCK_K + offs_k  # output channel within group g
        k_ok = k < C_out_g
        pixel = offset(oh, INDEX64) * stride_dyh + offset(ow, INDEX64) * stride_dyw
        a = tl.load(dy_rows[:, None] + pixel[:, None] + offset(k, INDEX64)[None, :] * stride_dyc,
                    mask=a_rows[:, None] & k_ok[None, :], other=0.0)
        w_tap = offset(i * KW + j, INDEX64) * C_out_g * C_in_g
        b = tl.load(w_cols[None, :] + w_tap + offset(k, INDEX64)[:, None] * C_in_g,
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = mma(a, b, acc, PRECISION, WIDEN, FP64)

    dx_rows = offset(n_img, INDEX64) * stride_dxn + offset(ih, INDEX64) * stride_dxh + offset(iw, INDEX64) * stride_dxw
    dx_ptrs = dx_ptr + dx_rows[:, None] + offset(g * C_in_g + offs_n, INDEX64)[None, :] * stride_dxc
    tl.store(dx_ptrs, acc.to(dx_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def weight_nk(w: torch.Tensor, groups: int) -> torch.Tensor:
    """w (C_out, C_in_g, kH, kW) as (groups, kH, kW, C_out_g, C_in_g): input channels contiguous."""
    c_out, c_in_g, kh, kw = w.shape
    return w.view(groups, c_out // groups, c_in_g, kh, kw).permute(0, 3, 4, 1, 2).contiguous()


def conv2d_grad_input(dy, w, input_size, stride, padding, dilation, groups, *, tile=None):
    """dx for y = conv2d(x, w); dx is allocated by the shared fake kernel (layout follows dy).

    ``tile`` overrides the launch config (tests, `make triton-check`).
    """
    dx = meta.conv2d_grad_input(dy, w, input_size, stride, padding, dilation, groups)
    if dx.numel() == 0:
        return dx
    n, c_out, oh, ow = dy.shape
    _, c_in_g, kh, kw = w.shape
    h, wd = input_size
    (sh, sw), (dh, dw) = stride, dilation
    th, tw = triton.cdiv(h, sh), triton.cdiv(wd, sw)
    c_out_g = c_out // groups
    check_rows(n * th * tw, "N*ceil(H/SH)*ceil(W/SW)")
    tile = tile or choose_tile(n * th * tw, c_in_g, c_out_g, dy.dtype)
    w_nk = weight_nk(w, groups)

    grid = grid_1d(triton.cdiv(n * th * tw, tile.block_m) * triton.cdiv(c_in_g, tile.block_n), groups * sh * sw)
    args = (dy, w_nk, dx, n, c_in_g, c_out_g, *dy.stride(), *dx.stride())
    kwargs = dict(
        H=h, W=wd, OH=oh, OW=ow, TH=th, TW=tw, KH=kh, KW=kw, SH=sh, SW=sw, PH=padding[0], PW=padding[1],
        DH=dh, DW=dw, STEP_H=sh // math.gcd(sh, dh), STEP_W=sw // math.gcd(sw, dw),
        **index_args(dy, dx, w_nk), **dot_args(dy), **tile.kwargs(),
    )  # fmt: skip
    launch(conv2d_dgrad_kernel, grid, args, kwargs)
    return dx
