"""The backends a run compares and each backend's conv passes as zero-argument callables
(conv_bench.py times them; backend_error.py measures their error)."""

from __future__ import annotations

import torch

import cpu_gemm  # the cpp[<path>] labels (a sibling module: conv_bench.py and backend_error.py put benchmarks/ on sys.path)
from cifarconv.perf.layer import ConvLayer
from cifarconv.registry import AUTO, available_backends, check_name, names, resolve, unavailable_reason


def pick_backends(text: str | None, device: torch.device) -> list[str]:
    """The backends to run, torch first (it is the reference); a clear error for a bad or unusable name."""
    if text is None:
        return available_backends(device)
    wanted = [n.strip() for n in text.split(",") if n.strip()]
    for name in wanted:
        try:
            check_name(name)
        except ValueError as e:
            raise ValueError(f"--backends: {e}") from None
        if name == AUTO:
            raise ValueError(f"--backends: name the backends to compare ({', '.join(names()[:-1])}), not {AUTO!r}")
        reason = unavailable_reason(name, device)
        if reason is not None:
            raise ValueError(f"--backends: {name!r} cannot run on {device.type} here: {reason}")
    return ["torch"] + [n for n in dict.fromkeys(wanted) if n != "torch"]


def layer_inputs(layer: ConvLayer, batch: int) -> tuple:
    """(x, w, b or None, dy) for one layer, float32 on the CPU, the same draw on every run and machine:
    weights scaled by 1/sqrt(fan-in), so that every output has about unit size."""
    g = torch.Generator().manual_seed(0)
    shapes = layer.shapes(batch)
    fan_in = (layer.c_in // layer.groups) * layer.kernel[0] * layer.kernel[1]
    x = torch.randn(shapes["input"], generator=g)
    w = torch.randn(shapes["weight"], generator=g) / fan_in**0.5
    b = torch.randn(layer.c_out, generator=g) if layer.bias else None
    dy = torch.randn(shapes["output"], generator=g)
    return x, w, b, dy


def ops_for(backend: str, device: torch.device):
    """The backend's op family (tests replace this to plant a wrong backend); ``cpp[avx512]`` is cpp's."""
    return resolve(cpu_gemm.backend_name(backend), device)


def pass_functions(backend: str, layer: ConvLayer, x, w, b, dy, device) -> dict:
    """One zero-argument callable per pass, each returning a tuple of result tensors.

    The passes call the backend's ops directly, with no autograd graph around them:
    ``conv2d``, ``conv2d_grad_input`` and ``conv2d_grad_weight`` of its op family; for
    torch, ``F.conv2d`` and ``aten.convolution_backward`` with one output selected.
    """
    conv = (layer.stride, layer.padding, layer.dilation, layer.groups)
    wgrad_outputs = 2 if layer.bias else 1  # grad weight, and grad bias if the layer has one
    ops = ops_for(backend, device)
    if backend == "torch":
        def backward(mask):
            return torch.ops.aten.convolution_backward(
                dy, x, w, [layer.c_out] if layer.bias else None, *conv[:3], False, [0, 0], layer.groups, mask)
        return {
            "fwd": lambda: (ops.conv2d(x, w, b, *conv),),
            "dgrad": lambda: (backward([True, False, False])[0],),
            "wgrad": lambda: tuple(backward([False, True, layer.bias])[1:1 + wgrad_outputs]),
        }
    fns = {
        "fwd": lambda: (ops.conv2d(x, w, b, *conv),),
        "dgrad": lambda: (ops.conv2d_grad_input(dy, w, layer.hw, *conv),),
        "wgrad": lambda: tuple(ops.conv2d_grad_weight(dy, x, layer.kernel, *conv, layer.bias)[:wgrad_outputs]),
    }
    return {name: cpu_gemm.on_path(backend, fn) for name, fn in fns.items()}  # cpp[<path>]: on that GEMM path
