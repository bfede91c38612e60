"""``--summary``: the model's layers as ``002_8418f40bdbec346f.txt``'s torchsummary prints them
(each layer's output shape and parameters), plus each conv's FLOPs from ``cifarconv.perf``.

The model runs once on one 3x32x32 image in eval mode (with autograd on, so that torch's
transformer layers run their modules one by one, not their fused fast path), with a forward
hook on every module.  A row is a module that ran and has no children, or that holds
parameters of its own or of descendants that never ran as modules (e.g. the output projection
an ``nn.MultiheadAttention`` calls as a function); every parameter is counted in exactly one
row.  A conv's FLOPs are one forward pass on one image, 2 * C_out * OH * OW * C_in/g * kH * kW
(`ConvLayer.flops`); grad input and grad weight each cost as much again.
"""

from __future__ import annotations

import torch
from torch import nn

from ..perf.extract import layer_of
from .models import build_network


def _own(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def layer_rows(model: nn.Module, input_shape=(1, 3, 32, 32)) -> list[dict]:
    """One dict per row: name, type, output shape (without the batch), parameters, conv FLOPs (or None)."""
    ran: list[tuple[str, nn.Module, object, tuple]] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module, inputs, output):
        ran.append((names[module], module, output, tuple(inputs[0].shape) if inputs else ()))

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    training = model.training
    try:
        model.eval()
        model(torch.zeros(input_shape))
    finally:
        model.train(training)
        for h in hooks:
            h.remove()

    did_run = {id(m) for _, m, _, _ in ran}

    def not_run(module: nn.Module) -> int:
        """Parameters of the descendants reached from ``module`` through modules that never ran."""
        return sum(_own(c) + not_run(c) for c in module.children() if id(c) not in did_run)

    rows = []
    for name, module, output, input_shape_seen in ran:
        params = _own(module) + not_run(module)
        if next(module.children(), None) is not None and not params:
            continue  # a container: its layers have their own rows
        shown = output[0] if isinstance(output, tuple) else output
        flops = None
        if isinstance(module, nn.Conv2d):
            flops = layer_of(module, input_shape_seen[-2:]).flops(batch=1)
        rows.append(dict(name=name or "(model)", type=type(module).__name__, shape=tuple(shown.shape[1:]),
                         params=params, flops=flops))
    return rows


def summary(model_name: str, net: dict) -> str:
    model = build_network(model_name, net)
    rows = layer_rows(model)
    total = sum(p.numel() for p in model.parameters())
    counted = sum(r["params"] for r in rows)
    conv_flops = sum(r["flops"] for r in rows if r["flops"] is not None)
    width = max(len(r["name"]) for r in rows)
    lines = [f"{model_name}: {total:,} parameters; conv FLOPs per image, forward: {conv_flops:,}",
             f"{'layer':{width}s} {'type':22s} {'output shape':>16s} {'params':>11s} {'conv FLOPs':>14s}"]
    for r in rows:
        flops = f"{r['flops']:,}" if r["flops"] is not None else ""
        shape = str(list(r["shape"]))
        lines.append(f"{r['name']:{width}s} {r['type']:22s} {shape:>16s} {r['params']:>11,} {flops:>14s}")
    lines.append(f"total: {counted:,} parameters ({sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
                 f"trainable); conv FLOPs {conv_flops:,} per image forward, about 3x that per training step")
    return "\n".join(lines)
