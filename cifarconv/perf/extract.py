"""The conv layers a model runs, found by running it once with a forward hook on every ``nn.Conv2d``."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from ..args import same_padding
from .layer import ConvLayer


def layer_of(module: nn.Conv2d, hw: tuple[int, int]) -> ConvLayer:
    """The `ConvLayer` of ``module`` on an input of height, width ``hw``.

    ``padding="valid"`` is 0; ``padding="same"`` is symmetric padding plus one more
    zero row / column at the bottom / right where the dilated kernel is even.  A
    ``padding_mode`` other than zeros pads with other values but moves the same bytes.
    """
    kernel, dilation = tuple(module.kernel_size), tuple(module.dilation)
    extra = (0, 0)
    if module.padding == "valid":
        padding = (0, 0)
    elif module.padding == "same":
        padding, extra = same_padding(kernel, dilation)
    else:
        padding = tuple(module.padding)
    return ConvLayer(module.in_channels, module.out_channels, kernel, tuple(module.stride), padding, dilation,
                     module.groups, module.bias is not None, tuple(hw), extra)


def layers_of(model: nn.Module, input: torch.Tensor) -> list[ConvLayer]:
    """Every ``nn.Conv2d`` call of one ``model(input)``, in the order they run (a layer used twice: twice).

    The model runs in eval mode without gradients, so batch-norm statistics stay as
    they were; its training flag is restored afterwards.
    """
    seen: list[ConvLayer] = []

    def record(module, inputs, output):
        seen.append(layer_of(module, tuple(inputs[0].shape[-2:])))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(input)
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return seen


def distinct(layers: list[ConvLayer]) -> list[tuple[ConvLayer, int]]:
    """Each distinct layer once, with how many times it occurs, in order of first use."""
    counts = Counter(layers)
    return [(layer, counts[layer]) for layer in dict.fromkeys(layers)]
