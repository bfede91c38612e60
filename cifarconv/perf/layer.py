"""One conv layer's arithmetic: its tensors, its three GEMMs, their FLOPs and the bytes each pass moves.

With g groups, every pass is g GEMMs, C (M x N) = A (M x K) @ B (K x N), summed over K:

  pass          GEMM per group       M               N               K               then
  forward       y     = W @ cols     C_out/g         N*OH*OW         C_in/g*kH*kW    + bias
  grad input    dcols = W^T @ dy     C_in/g*kH*kW    N*OH*OW         C_out/g         dx = col2im(dcols)
  grad weight   dW    = dy @ cols^T  C_out/g         C_in/g*kH*kW    N*OH*OW         db = sum of dy

so each pass does the same 2 * N * C_out * OH * OW * C_in/g * kH * kW FLOPs.  ``cols`` is
the column matrix (im2col of the input): row (c, i, j) holds input channel c seen
through kernel tap (i, j), column (n, oy, ox) one output position.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import NamedTuple

from ..args import conv2d_output_hw

PASSES = ("fwd", "dgrad", "wgrad")  # forward, grad input, grad weight
PASS_NAMES = {"fwd": "forward", "dgrad": "grad input", "wgrad": "grad weight"}
DESIGNS = ("im2col", "implicit")  # explicit im2col (columns in memory), implicit GEMM (no columns)


class Gemm(NamedTuple):
    """``groups`` GEMMs, each C (m x n) = A (m x k) @ B (k x n)."""

    m: int
    n: int
    k: int
    groups: int

    @property
    def flops(self) -> int:
        return 2 * self.groups * self.m * self.n * self.k


@dataclass(frozen=True)
class ConvLayer:
    """One conv layer, without its batch size (that is a run setting).

    ``padding`` is symmetric; ``extra_padding`` is one more zero row / column at the
    bottom / right, which ``padding="same"`` needs when a dilated kernel is even.
    """

    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool
    hw: tuple[int, int]  # input height, width
    extra_padding: tuple[int, int] = (0, 0)  # (bottom, right)

    @property
    def name(self) -> str:
        """Readable, e.g. ``64->128 k3 s2 32x32`` (padding, dilation, groups, bias only when unusual)."""
        def one(pair):
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"
        parts = [f"{self.c_in}->{self.c_out}", f"k{one(self.kernel)}", f"s{one(self.stride)}"]
        if self.extra_padding != (0, 0):
            parts.append(f"p{one(self.padding)}+{one(self.extra_padding)}")
        elif self.padding != tuple((k - 1) // 2 for k in self.kernel):
            parts.append(f"p{one(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"d{one(self.dilation)}")
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        if self.bias:
            parts.append("bias")
        parts.append(f"{self.hw[0]}x{self.hw[1]}")
        return " ".join(parts)

    def padded_hw(self) -> tuple[int, int]:
        return tuple(self.hw[i] + 2 * self.padding[i] + self.extra_padding[i] for i in range(2))  # type: ignore

    def out_hw(self) -> tuple[int, int]:
        # conv2d_output_hw adds 2 * padding; the extra rows / columns go into the size first.
        hw = (self.hw[0] + self.extra_padding[0], self.hw[1] + self.extra_padding[1])
        return conv2d_output_hw(hw, self.kernel, self.stride, self.padding, self.dilation)

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the input, weight and output tensors at this batch size."""
        return {
            "input": (batch, self.c_in, *self.hw),
            "weight": (self.c_out, self.c_in // self.groups, *self.kernel),
            "output": (batch, self.c_out, *self.out_hw()),
        }

    def gemm_sizes(self, batch: int) -> tuple[int, int, int]:
        """(C_out/g, C_in/g * kH * kW, N * OH * OW): weight rows, column-matrix rows, output positions."""
        oh, ow = self.out_hw()
        return self.c_out // self.groups, self.c_in // self.groups * prod(self.kernel), batch * oh * ow

    def gemms(self, batch: int) -> dict[str, Gemm]:
        """The GEMMs of each pass (see the table at the top of this module)."""
        c_out, kernel_rows, positions = self.gemm_sizes(batch)
        return {"fwd": Gemm(c_out, positions, kernel_rows, self.groups),
                "dgrad": Gemm(kernel_rows, positions, c_out, self.groups),
                "wgrad": Gemm(c_out, kernel_rows, positions, self.groups)}

    def flops(self, batch: int) -> int:
        """Multiply-adds x 2 of one pass; forward, grad input and grad weight each do this many."""
        return self.gemms(batch)["fwd"].flops

    def columns_shape(self, batch: int) -> tuple[int, int, int]:
        """The column matrix as (groups, C_in/g * kH * kW, N * OH * OW): one column per output position."""
        _, kernel_rows, positions = self.gemm_sizes(batch)
        return self.groups, kernel_rows, positions

    def bytes(self, batch: int, element_size: int) -> dict[str, dict[str, int]]:
        """``bytes[design][pass]``: the least traffic of each pass, every tensor it touches moved once.

        - ``implicit`` (implicit GEMM): the conv's own tensors only.  Forward reads x, w (and
          the bias) and writes y; grad input reads dy, w and writes dx; grad weight reads
          dy, x and writes dw (and the bias's grad).
        - ``im2col`` (explicit im2col): the same, plus the column matrix (C_in*kH*kW x
          N*OH*OW elements) written once and read once.  Forward and grad weight write
          cols from x, then their GEMM reads it; grad input's GEMM writes dcols, then
          col2im reads it.

        Not counted: re-reads inside a GEMM's tiling, caches, workspace chunking, and the
        copy ``padding="same"`` makes for ``extra_padding``.
        """
        s = {name: prod(shape) for name, shape in self.shapes(batch).items()}
        b = self.c_out if self.bias else 0
        implicit = {
            "fwd": s["input"] + s["weight"] + b + s["output"],
            "dgrad": s["output"] + s["weight"] + s["input"],
            "wgrad": s["output"] + s["input"] + s["weight"] + b,
        }
        columns = prod(self.columns_shape(batch))
        return {
            "im2col": {p: (n + 2 * columns) * element_size for p, n in implicit.items()},
            "implicit": {p: n * element_size for p, n in implicit.items()},
        }
