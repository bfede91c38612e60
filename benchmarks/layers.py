"""The conv layers to benchmark: those of the real models, or one shape from the command line.

Each model's layers are found by running it once on a (1, 3, 32, 32) input with a
forward hook on every ``nn.Conv2d`` (`cifarconv.perf.extract.layers_of`), so the sets
follow ``cifarconv.train.models`` whenever the models change.  Identical layers are listed once
with their count in the model.  A layer's shapes, FLOPs and bytes are
`cifarconv.perf.layer.ConvLayer`'s.
"""

from __future__ import annotations

import torch

from cifarconv.train.models import MODELS
from cifarconv.perf.extract import distinct, layers_of
from cifarconv.perf.layer import ConvLayer

DEFAULT_SET = "resnet18"
SHAPE_FORMAT = "N,C_in,H,W,C_out,k[,stride[,padding]]"


# The seed projects' small CNNs (cifarconv/train/cnn.py): cnn3's 5x5 convs and cnn5's 3x3 convs,
# with cnn5-unpadded's one layer that differs from cnn5-padded's.
SEED_MODELS = ("cnn3", "cnn5-padded", "cnn5-unpadded")
LAYER_SETS = (*MODELS, "seeds", "all")  # resnet9, resnet18, fastnet, seeds, all


def model_layers(model_name: str) -> list[tuple[ConvLayer, int]]:
    """The distinct conv layers of ``cifarconv.train.models.MODELS[model_name]`` with their counts, in order of use."""
    found = layers_of(MODELS[model_name](), torch.zeros(1, 3, 32, 32))
    for layer in found:
        if layer.extra_padding != (0, 0):  # the passes below take symmetric padding only
            raise ValueError(f"{model_name}: {layer.name}: asymmetric padding='same' is not supported by the benchmark")
    return distinct(found)


def layer_set(name: str) -> list[tuple[str, ConvLayer, int]]:
    """(model, layer, count) for one model's layers, the seed CNNs' with ``seeds``, or every
    model's with ``all``."""
    if name not in LAYER_SETS:
        raise ValueError(f"unknown layer set {name!r}; choose one of {', '.join(LAYER_SETS)}")
    if name == "seeds":
        seen, found = set(), []
        for model in SEED_MODELS:
            found += [(model, layer, count) for layer, count in model_layers(model) if layer not in seen]
            seen.update(layer for _, layer, _ in found)
        return found
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
