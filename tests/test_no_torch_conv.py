"""A cifarconv backend runs its own code: no torch conv, im2col/col2im or unfold/fold kernel."""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import cifarconv
from cifarconv.registry import resolve

# aten / cuDNN / oneDNN kernels that would mean torch did the convolution for us.
BANNED = re.compile(r"conv|im2col|col2im|unfold|fold|cudnn|mkldnn|onednn", re.IGNORECASE)


def torch_kernels_run(backend, device):
    """Names of the torch ops and kernels run by a forward, backward and double backward.

    Events of cifarconv's own ops and their autograd nodes (named after them) are left out.
    """
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, stride=2, groups=2), nn.Conv2d(8, 4, 1)
    ).to(device)
    cifarconv.convert(net, backend=backend)
    x = torch.randn(2, 3, 9, 9, device=device, requires_grad=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        y = net(x)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        gx.square().sum().backward()
        cols = cifarconv.unfold(x, 3, padding=1, backend=backend)
        cifarconv.fold(cols, (9, 9), 3, padding=1, backend=backend).sum().backward()
    names = {event.name for event in prof.events()}
    prefix = resolve(backend, torch.device(device)).prefix  # the backend's ops are cifarconv::<prefix>_*
    assert any(name.startswith(f"cifarconv::{prefix}_") for name in names) or backend == "torch", names
    return {name for name in names if "cifarconv" not in name}


def test_backend_runs_no_torch_conv_kernel(backend, device):
    banned = sorted(name for name in torch_kernels_run(backend, device) if BANNED.search(name))
    assert banned == []


def test_the_check_catches_torch_conv(device):
    """The same check on the torch backend must see torch's convolution (else it could never fail)."""
    banned = [name for name in torch_kernels_run("torch", device) if BANNED.search(name)]
    assert any("convolution" in name for name in banned)
    assert any("im2col" in name for name in banned) and any("col2im" in name for name in banned)
