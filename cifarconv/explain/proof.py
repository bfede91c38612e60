"""A proof, not a claim: the chosen backend's columns, and one forward computed from them.

On a small random input (batch at most 2; the layer's channels and size where they are
small, see `proof_layer`):

1. ``cols = cifarconv.unfold(x, ..., backend=...)``, compared with ``F.unfold``: im2col
   only copies elements, so the two must agree exactly;
2. per group g, ``y[g] = W[g] (C_out/g x C_in/g*kH*kW) @ cols[g]`` (+ bias), compared with
   ``F.conv2d`` on the same tensors, to within the dtype's rounding.

``F.unfold`` and ``F.conv2d`` are the reference here, not a backend.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from math import prod

import torch
import torch.nn.functional as F

from ..functional import unfold as cifarconv_unfold
from ..perf.layer import ConvLayer

PROOF_BATCH = 2
PROOF_HW = 32  # the proof's input is at most this high and wide (more only where the dilated kernel needs it)
PROOF_ELEMENTS = 1 << 24  # and none of its tensors (input, weight, columns, output) is larger
# The forward from columns must match F.conv2d to this fraction of F.conv2d's largest value.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 1e-2}
# float32 on CUDA: cuDNN's conv rounds its inputs to TF32 (10 mantissa bits) by default.
CUDA_FLOAT32_TOLERANCE = 5e-3


@dataclass(frozen=True)
class Proof:
    backend: str
    device: str
    layer: str  # the layer proved on: the layer itself, or a smaller copy (see `proof_layer`)
    input: list[int]
    unfold_max_diff: float  # max |cifarconv.unfold - F.unfold|
    conv_max_diff: float  # max |columns @ weight - F.conv2d|
    conv_max_abs: float  # max |F.conv2d|
    tolerance: float  # of conv_max_abs

    @property
    def ok(self) -> bool:
        return self.unfold_max_diff == 0 and self.conv_max_diff <= self.tolerance * self.conv_max_abs

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def largest_tensor(layer: ConvLayer) -> int:
    shapes = layer.shapes(PROOF_BATCH)
    return max(prod(shapes["input"]), prod(shapes["weight"]), prod(shapes["output"]),
               prod(layer.columns_shape(PROOF_BATCH)))


def proof_layer(layer: ConvLayer) -> ConvLayer:
    """``layer`` itself where it is small, else a copy with its kernel, stride, padding, dilation and groups.

    The copy is at most PROOF_HW high and wide; if a tensor still has more than
    PROOF_ELEMENTS elements, it has half as many channels per group, again, down to one;
    then the smallest input the kernel fits.  (A layer whose kernel or groups alone pass
    the limit stays that large.)
    """
    need = [layer.dilation[i] * (layer.kernel[i] - 1) + 1 - 2 * layer.padding[i] - layer.extra_padding[i]
            for i in range(2)]  # the smallest input the dilated kernel fits, padded
    small = replace(layer, hw=tuple(min(layer.hw[i], max(PROOF_HW, need[i])) for i in range(2)))
    g = layer.groups
    while largest_tensor(small) > PROOF_ELEMENTS and (small.c_in > g or small.c_out > g):
        small = replace(small, c_in=g * max(1, small.c_in // g // 2), c_out=g * max(1, small.c_out // g // 2))
    if largest_tensor(small) > PROOF_ELEMENTS:
        small = replace(small, hw=(max(1, need[0]), max(1, need[1])))
    return small


def prove(layer: ConvLayer, batch: int, dtype: torch.dtype, device: torch.device, backend: str,
          seed: int = 0) -> Proof:
    layer = proof_layer(layer)
    g = torch.Generator().manual_seed(seed)
    n = min(batch, PROOF_BATCH)
    shapes = layer.shapes(n)
    fan_in = shapes["weight"][1] * shapes["weight"][2] * shapes["weight"][3]
    x, w = (torch.randn(shape, generator=g, dtype=torch.float64) for shape in (shapes["input"], shapes["weight"]))
    w = w / fan_in**0.5
    b = torch.randn(layer.c_out, generator=g, dtype=torch.float64) if layer.bias else None
    x, w, b = (t.to(device=device, dtype=dtype) if t is not None else None for t in (x, w, b))

    # padding="same" with an even dilated kernel: the extra bottom/right zeros first, as F.conv2d does.
    eh, ew = layer.extra_padding
    padded = F.pad(x, (0, ew, 0, eh)) if (eh, ew) != (0, 0) else x
    window = (layer.kernel, layer.dilation, layer.padding, layer.stride)
    cols = cifarconv_unfold(padded, *window, backend=backend)  # (n, C_in*kH*kW, OH*OW)
    reference_cols = F.unfold(padded, *window)

    groups, rows, positions = layer.columns_shape(n)
    per_group = cols.reshape(n, groups, rows, positions // n)  # rows (c, i, j) of one group are adjacent
    y = torch.matmul(w.reshape(groups, layer.c_out // groups, rows), per_group)  # (n, g, C_out/g, OH*OW)
    y = y.reshape(shapes["output"])
    if b is not None:
        y = y + b.view(1, -1, 1, 1)
    with warnings.catch_warnings():  # F.conv2d warns that an even "same" kernel pads a copy: it may
        warnings.filterwarnings("ignore", message="Using padding='same'")
        reference = F.conv2d(x, w, b, layer.stride, "same" if (eh, ew) != (0, 0) else layer.padding,
                             layer.dilation, layer.groups)

    tolerance = TOLERANCE[dtype]
    if dtype == torch.float32 and device.type == "cuda":
        tolerance = CUDA_FLOAT32_TOLERANCE
    return Proof(
        backend=backend, device=str(device), layer=layer.name, input=list(shapes["input"]),
        unfold_max_diff=(cols.double() - reference_cols.double()).abs().max().item(),
        conv_max_diff=(y.double() - reference.double()).abs().max().item(),
        conv_max_abs=reference.double().abs().max().item(),
        tolerance=tolerance,
    )
