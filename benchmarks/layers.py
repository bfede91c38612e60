"""The conv layers to benchmark: those of the real models, or one shape from the command line.

Each model's layers are found by running it once on a (1, 3, 32, 32) input with a
forward hook on every ``nn.Conv2d``, so the sets follow ``cifarconv.train.models`` whenever
the models change.  Identical layers are listed once with their count in the model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from cifarconv.train.models import MODELS

DEFAULT_SET = "resnet18"
LAYER_SETS = (*MODELS, "all")  # resnet9, resnet18, fastnet, all
SHAPE_FORMAT = "N,C_in,H,W,C_out,k[,stride[,padding]]"


@dataclass(frozen=True)
class ConvLayer:
    """One conv layer as the benchmark sees it (no batch size: that is a run setting)."""

    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool
    hw: tuple[int, int]  # input height, width

    @property
    def name(self) -> str:
        """Readable, e.g. ``64->128 k3 s2 32x32`` (padding, dilation, groups, bias only when unusual)."""
        def one(pair):
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"
        parts = [f"{self.c_in}->{self.c_out}", f"k{one(self.kernel)}", f"s{one(self.stride)}"]
        if self.padding != tuple((k - 1) // 2 for k in self.kernel):
            parts.append(f"p{one(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"d{one(self.dilation)}")
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        if self.bias:
            parts.append("bias")
        parts.append(f"{self.hw[0]}x{self.hw[1]}")
        return " ".join(parts)

    def out_hw(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (self.hw[i] + 2 * self.padding[i] - self.dilation[i] * (self.kernel[i] - 1) - 1) // self.stride[i] + 1
            for i in range(2)
        )

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the input, weight and output tensors at this batch size."""
        return {
            "input": (batch, self.c_in, *self.hw),
            "weight": (self.c_out, self.c_in // self.groups, *self.kernel),
            "output": (batch, self.c_out, *self.out_hw()),
        }

    def flops(self, batch: int) -> int:
        """Multiply-adds x 2 of one pass; forward, grad input and grad weight each do this many."""
        ho, wo = self.out_hw()
        return 2 * batch * self.c_out * ho * wo * (self.c_in // self.groups) * self.kernel[0] * self.kernel[1]

    def bytes(self, batch: int, element_size: int) -> int:
        """Bytes one pass must move at least: it reads two of (input, weight, output) and writes the third
        (forward: x, w -> y; grad input: dy, w -> dx; grad weight: dy, x -> dw), plus the bias if any."""
        elements = sum(torch.Size(s).numel() for s in self.shapes(batch).values()) + (self.c_out if self.bias else 0)
        return elements * element_size


def model_layers(model_name: str) -> list[tuple[ConvLayer, int]]:
    """The distinct conv layers of ``cifarconv.train.models.MODELS[model_name]`` with their counts, in order of use."""
    model = MODELS[model_name]().eval()
    seen: list[ConvLayer] = []

    def record(module: nn.Conv2d, inputs, output):
        if isinstance(module.padding, str):
            raise ValueError(f"{model_name}: string padding {module.padding!r} is not supported by the benchmark")
        seen.append(ConvLayer(
            module.in_channels, module.out_channels, tuple(module.kernel_size), tuple(module.stride),
            tuple(module.padding), tuple(module.dilation), module.groups, module.bias is not None,
            tuple(inputs[0].shape[-2:]),
        ))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    counts = Counter(seen)
    return [(layer, counts[layer]) for layer in dict.fromkeys(seen)]


def layer_set(name: str) -> list[tuple[str, ConvLayer, int]]:
    """(model, layer, count) for one model's layers, or every model's with ``all``."""
    if name not in LAYER_SETS:
        raise ValueError(f"unknown layer set {name!r}; choose one of {', '.join(LAYER_SETS)}")
    models = list(MODELS) if name == "all" else [name]
    return [(m, layer, count) for m in models for layer, count in model_layers(m)]


def parse_shape(text: str) -> tuple[int, ConvLayer]:
    """``N,C_in,H,W,C_out,k[,stride[,padding]]`` -> (batch, layer); padding defaults to (k-1)//2."""
    items = [s.strip() for s in text.split(",")]
    if not 6 <= len(items) <= 8:
        raise ValueError(f"--shape wants {SHAPE_FORMAT} (6 to 8 integers), got {text!r}")
    try:
        values = [int(s) for s in items]
    except ValueError:
        raise ValueError(f"--shape wants integers in the form {SHAPE_FORMAT}, got {text!r}") from None
    n, c_in, h, w, c_out, k = values[:6]
    stride = values[6] if len(values) > 6 else 1
    padding = values[7] if len(values) > 7 else (k - 1) // 2
    if min(n, c_in, h, w, c_out, k, stride) < 1 or padding < 0:
        raise ValueError(f"--shape {text!r}: sizes, kernel and stride must be >= 1 and padding >= 0")
    layer = ConvLayer(c_in, c_out, (k, k), (stride, stride), (padding, padding), (1, 1), 1, False, (h, w))
    if min(layer.out_hw()) < 1:
        raise ValueError(f"--shape {text!r}: a {k}x{k} kernel does not fit the {h}x{w} input padded by {padding}")
    return n, layer
