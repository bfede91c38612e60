"""cifarconv.conv2d against torch.nn.functional.conv2d: values and every gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cifarconv
import fp32
from cases import CASES, case_params

LAYOUTS = ["contiguous", "channels_last", "noncontiguous", "unbatched"]


def relayout(x: torch.Tensor, w: torch.Tensor, layout: str):
    """The same values as (x, w) in another memory layout (or x without its batch dim)."""
    if layout == "channels_last":
        return x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    if layout == "noncontiguous":
        wide = torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
        xs = wide[..., ::2]
        xs.copy_(x)
        ws = w.transpose(2, 3).contiguous().transpose(2, 3)
        assert x.numel() == 0 or not xs.is_contiguous()
        assert w.numel() == 0 or w.shape[2] == 1 or w.shape[3] == 1 or not ws.is_contiguous()
        return xs, ws
    if layout == "unbatched":
        return x[0], w
    return x, w


def forward_backward(fn, x, w, b, kwargs, grad_seed=1):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = b.detach().requires_grad_() if b is not None else None
    y = fn(x, w, b, **kwargs)
    # Drawn in float64 then cast, so every dtype sees the same (rounded) grad_output.
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=torch.float64)
    g = g.to(device=y.device, dtype=y.dtype)
    inputs = [t for t in (x, w, b) if t is not None]
    grads = torch.autograd.grad(y, inputs, g) if y.numel() else [torch.zeros_like(t) for t in inputs]
    return y, grads


def ours(backend):
    return lambda x, w, b, **kw: cifarconv.conv2d(x, w, b, backend=backend, **kw)


@pytest.mark.parametrize(
    "case, layout",
    [
        pytest.param(case, layout, id=f"{case.id}-{layout}")
        for case in CASES
        for layout in LAYOUTS
        if not (layout == "unbatched" and case.n == 0)  # an unbatched input has no batch to empty
    ],
)
def test_forward_and_grads_match_torch_float64(case, layout, backend, device):
    x, w, b = case.tensors(torch.float64, device)
    x, w = relayout(x, w, layout)
    y, grads = forward_backward(ours(backend), x, w, b, case.kwargs)
    y_ref, grads_ref = forward_backward(F.conv2d, x, w, b, case.kwargs)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", case_params())
def test_forward_and_grads_match_float64_in_float32(case, backend, device):
    """float32 against the float64 result of the same values, in each precision mode (fp32.py)."""
    x, w, b = case.tensors(torch.float32, device)
    doubles = (t.double() if t is not None else None for t in (x, w, b))
    y_ref, grads_ref = forward_backward(F.conv2d, *doubles, case.kwargs)
    for mode in fp32.modes(device):
        with fp32.fp32_mode(mode):
            y, grads = forward_backward(ours(backend), x, w, b, case.kwargs)
        for name, got, want in zip(("y", "dx", "dw", "db"), (y, *grads), (y_ref, *grads_ref)):
            assert got.dtype == torch.float32
            fp32.assert_close_to_float64(got, want, mode, name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", [c for c in case_params() if c.values[0].id in ("3x3-pad1", "asym-stride-pad-dil-groups")])
def test_half_precision_close_to_float32(case, dtype, backend, device):
    x, w, b = case.tensors(dtype, device)
    y, grads = forward_backward(ours(backend), x, w, b, case.kwargs)
    # Reference: the same (rounded) values convolved in float32.
    y_ref, grads_ref = forward_backward(F.conv2d, x.float(), w.float(), b.float(), case.kwargs)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    # Error relative to the output's scale: bf16 keeps 8 mantissa bits, fp16 11.
    rel = 1.6e-2 if dtype == torch.bfloat16 else 2e-3
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert (got.float() - want).abs().max() <= rel * want.abs().max()


@pytest.mark.parametrize("case", case_params())
def test_gradcheck_and_gradgradcheck(case, backend, device, interpreted):
    x, w, b = case.tensors(torch.float64, device)
    inputs = tuple(t.requires_grad_() for t in (x, w, b) if t is not None)

    def fn(*tensors):
        return cifarconv.conv2d(*tensors, backend=backend, **case.kwargs)

    # Interpreted kernels: gradcheck's fast_mode, which compares a random projection
    # v^T J u of the same Jacobians (first and second order) with its finite-difference
    # estimate.  The full check perturbs every input element and takes > 10 min a case there.
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=interpreted)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=interpreted)


def test_output_layout_follows_input(backend, device):
    x = torch.randn(2, 3, 8, 8, device=device).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 3, device=device, requires_grad=True)
    y = cifarconv.conv2d(x, w, padding=1, backend=backend)
    assert y.is_contiguous(memory_format=torch.channels_last)
    (gx,) = torch.autograd.grad(y, x, torch.randn_like(y))
    assert gx.is_contiguous(memory_format=torch.channels_last)
    y = cifarconv.conv2d(x.contiguous(), w, padding=1, backend=backend)
    assert y.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_casts_like_torch(dtype, backend, device):
    x, w, b = CASES[0].tensors(torch.float32, device)
    with torch.autocast(device, dtype=dtype):
        y = cifarconv.conv2d(x, w, b, padding=1, backend=backend)
        y_ref = F.conv2d(x, w, b, padding=1)
    assert y.dtype == y_ref.dtype == dtype
    torch.testing.assert_close(y, y_ref, rtol=2e-2, atol=5e-2)


def test_int_and_pair_arguments_agree(backend, device):
    x, w, b = CASES[0].tensors(torch.float64, device)
    a = cifarconv.conv2d(x, w, b, 2, 1, 1, 1, backend=backend)
    p = cifarconv.conv2d(x, w, b, stride=(2, 2), padding=[1, 1], dilation=(1,), groups=1, backend=backend)
    torch.testing.assert_close(a, p, rtol=0, atol=0)


def test_auto_backend_matches_torch(device):
    x, w, b = CASES[3].tensors(torch.float64, device)
    torch.testing.assert_close(cifarconv.conv2d(x, w, b, **CASES[3].kwargs), F.conv2d(x, w, b, **CASES[3].kwargs))
