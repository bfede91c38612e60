"""Argument normalisation and validation shared by every backend.

torch's functional `conv2d` accepts ints or pairs, ``padding="same"|"valid"`` and unbatched input.
The op layer below (``cifarconv.ops``) takes only explicit, checked pairs of ints,
so every backend's kernels see one simple, symmetric convention.  This module turns
user arguments into that convention and raises a clear exception for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

IntOrPair = Union[int, Sequence[int]]


def pair(value: IntOrPair, name: str) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints; reject anything else by name."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, (int, torch.SymInt)):
        return (value, value)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or not all(
        isinstance(v, (int, torch.SymInt)) and not isinstance(v, bool) for v in items
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return items  # type: ignore[return-value]


def check_at_least(values: tuple[int, int], minimum: int, name: str) -> None:
    if values[0] < minimum or values[1] < minimum:
        raise ValueError(f"{name} must be >= {minimum} in both dimensions, got {tuple(values)}")


def check_floating(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


@dataclass(frozen=True)
class Conv2dArgs:
    """A conv2d call in the op layer's convention (4-D input, symmetric int pairs).

    ``extra_padding`` is the one asymmetric case: ``padding="same"`` with an even
    dilated kernel needs one more zero row/column at the bottom/right than at the
    top/left.  Like PyTorch, the functional layer pads those with ``F.pad`` first.
    """

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    extra_padding: tuple[int, int]  # (bottom, right)
    unbatched: bool


def conv2d_args(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrPair,
    padding: IntOrPair | str,
    dilation: IntOrPair,
    groups: int,
) -> Conv2dArgs:
    """Validate a conv2d call exactly as torch's functional `conv2d` would accept it."""
    check_floating(input, "conv2d: input")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"conv2d: weight must be a tensor, got {type(weight).__name__}")
    if input.dim() not in (3, 4):
        raise ValueError(
            f"conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got {input.dim()}-D "
            f"input of shape {tuple(input.shape)}"
        )
    if weight.dim() != 4:
        raise ValueError(
            f"conv2d: expected a 4-D weight (C_out, C_in/groups, kH, kW), got shape {tuple(weight.shape)}"
        )
    if weight.dtype != input.dtype:
        raise TypeError(f"conv2d: input dtype {input.dtype} and weight dtype {weight.dtype} differ")
    if weight.device != input.device:
        raise ValueError(f"conv2d: input is on {input.device} but weight is on {weight.device}")

    if isinstance(groups, bool) or not isinstance(groups, (int, torch.SymInt)) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    stride = pair(stride, "conv2d: stride")
    dilation = pair(dilation, "conv2d: dilation")
    check_at_least(stride, 1, "conv2d: stride")
    check_at_least(dilation, 1, "conv2d: dilation")

    c_out, c_in_per_group, kh, kw = weight.shape
    c_in = input.shape[-3]
    if c_out == 0:  # as torch: a conv with no output channels is an error (one with no input channels is not)
        raise ValueError(f"conv2d: the weight has no output channels (shape {tuple(weight.shape)})")
    if c_in % groups != 0:
        raise ValueError(f"conv2d: groups={groups} does not divide the input's {c_in} channels")
    if c_out % groups != 0:
        raise ValueError(f"conv2d: groups={groups} does not divide out_channels={c_out}")
    if c_in != c_in_per_group * groups:
        raise ValueError(
            f"conv2d: input has {c_in} channels but weight expects "
            f"{c_in_per_group} x groups={groups} = {c_in_per_group * groups}"
        )
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.dim() != 1 or bias.shape[0] != c_out:
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise ValueError(f"conv2d: bias must be a 1-D tensor of {c_out} elements, got {shape}")
        if bias.dtype != input.dtype:
            raise TypeError(f"conv2d: input dtype {input.dtype} and bias dtype {bias.dtype} differ")
        if bias.device != input.device:
            raise ValueError(f"conv2d: input is on {input.device} but bias is on {bias.device}")

    extra = (0, 0)
    if isinstance(padding, str):
        if padding == "valid":
            pad = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride}")
            pad, extra = same_padding((kh, kw), dilation)
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    else:
        pad = pair(padding, "conv2d: padding")
        check_at_least(pad, 0, "conv2d: padding")

    h, w = input.shape[-2], input.shape[-1]
    kernel_extent = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padded = (h + 2 * pad[0] + extra[0], w + 2 * pad[1] + extra[1])
    if kernel_extent[0] > padded[0] or kernel_extent[1] > padded[1]:
        raise ValueError(
            f"conv2d: the dilated kernel ({kernel_extent[0]} x {kernel_extent[1]}) is larger than "
            f"the padded input ({padded[0]} x {padded[1]})"
        )
    return Conv2dArgs(stride, pad, dilation, groups, extra, input.dim() == 3)


def same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``padding="same"`` as (symmetric padding, extra bottom/right padding) per dimension.

    The total padding is d*(k-1) per dimension; when it is odd, the extra one goes
    bottom/right, as in PyTorch.
    """
    total = (dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1))
    pad = (total[0] // 2, total[1] // 2)
    return pad, (total[0] - 2 * pad[0], total[1] - 2 * pad[1])


def conv2d_output_hw(
    hw: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[int, int]:
    """Output height and width: floor((H + 2p - d(k-1) - 1) / s) + 1 per dimension."""
    return tuple(  # type: ignore[return-value]
        (hw[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


@dataclass(frozen=True)
class FoldArgs:
    kernel_size: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]


def fold_args(kernel_size: IntOrPair, dilation: IntOrPair, padding: IntOrPair, stride: IntOrPair, fn: str) -> FoldArgs:
    """Validate the window arguments shared by `unfold` and `fold`."""
    kernel = pair(kernel_size, f"{fn}: kernel_size")
    dil = pair(dilation, f"{fn}: dilation")
    pad = pair(padding, f"{fn}: padding")
    st = pair(stride, f"{fn}: stride")
    check_at_least(kernel, 1, f"{fn}: kernel_size")
    check_at_least(dil, 1, f"{fn}: dilation")
    check_at_least(pad, 0, f"{fn}: padding")
    check_at_least(st, 1, f"{fn}: stride")
    return FoldArgs(kernel, dil, pad, st)


def check_blocks(hw: Sequence[int], a: FoldArgs, fn: str) -> tuple[int, int]:
    """Number of sliding blocks per dimension; an error if the window does not fit."""
    blocks = conv2d_output_hw(hw, a.kernel_size, a.stride, a.padding, a.dilation)
    if blocks[0] < 1 or blocks[1] < 1:
        raise ValueError(
            f"{fn}: kernel_size={a.kernel_size} with dilation={a.dilation} does not fit the "
            f"padded input {hw[0] + 2 * a.padding[0]} x {hw[1] + 2 * a.padding[1]}"
        )
    return blocks
