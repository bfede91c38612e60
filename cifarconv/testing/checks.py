"""What a backend must do to be a cifarconv backend: each check compares it with torch.

Every check is a function ``(target, param) -> None`` that raises (an ``AssertionError``,
or the backend's own error) when the backend fails it, and comes with the list of params
it runs over (`cifarconv.testing.cases`), smallest first.  cifarconv's own test suite
parametrizes these very functions over these very params for its built-in backends, and
`cifarconv.testing.check_backend` runs them all for any registered backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

import cifarconv

from ..ops import OP_NAMES
from ..registry import resolve
from . import fp32
from .cases import (
    BAD_INPUTS,
    CASES,
    FOLD_HW,
    GRID,
    HALF_PRECISION_CASES,
    LAYOUTS,
    OP_CONFIGS,
    WINDOWS,
    blocks,
    op_args,
    relayout,
    taps,
)


@dataclass(frozen=True)
class Target:
    """The backend and device under check.  ``fast_gradcheck``: gradcheck and gradgradcheck
    compare a random projection of the Jacobians (torch's ``fast_mode``) instead of every
    element, for kernels run in an interpreter, where the full check takes minutes a case."""

    backend: str
    device: str
    fast_gradcheck: bool = False


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


# -- conv2d ------------------------------------------------------------------------------


def grid_float64(t: Target, param) -> None:
    """Forward and every gradient equal F.conv2d's in float64, for one (case, layout)."""
    case, layout = param
    x, w, b = case.tensors(torch.float64, t.device)
    x, w = relayout(x, w, layout)
    y, grads = forward_backward(ours(t.backend), x, w, b, case.kwargs)
    y_ref, grads_ref = forward_backward(F.conv2d, x, w, b, case.kwargs)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def float32(t: Target, case) -> None:
    """float32 against the float64 result of the same values, in each precision mode (fp32.py)."""
    x, w, b = case.tensors(torch.float32, t.device)
    doubles = (v.double() if v is not None else None for v in (x, w, b))
    y_ref, grads_ref = forward_backward(F.conv2d, *doubles, case.kwargs)
    for mode in fp32.modes(t.device):
        with fp32.fp32_mode(mode):
            y, grads = forward_backward(ours(t.backend), x, w, b, case.kwargs)
        for name, got, want in zip(("y", "dx", "dw", "db"), (y, *grads), (y_ref, *grads_ref)):
            assert got.dtype == torch.float32
            fp32.assert_close_to_float64(got, want, mode, name)


def half_precision(t: Target, param) -> None:
    """float16 / bfloat16 against the same (rounded) values convolved in float32."""
    case, dtype = param
    x, w, b = case.tensors(dtype, t.device)
    y, grads = forward_backward(ours(t.backend), x, w, b, case.kwargs)
    y_ref, grads_ref = forward_backward(F.conv2d, x.float(), w.float(), b.float(), case.kwargs)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    # Error relative to the output's scale: bf16 keeps 8 mantissa bits, fp16 11.
    rel = 1.6e-2 if dtype == torch.bfloat16 else 2e-3
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert (got.float() - want).abs().max() <= rel * want.abs().max()


def gradcheck(t: Target, case) -> None:
    """gradcheck and gradgradcheck in float64."""
    x, w, b = case.tensors(torch.float64, t.device)
    inputs = tuple(v.requires_grad_() for v in (x, w, b) if v is not None)

    def fn(*tensors):
        return cifarconv.conv2d(*tensors, backend=t.backend, **case.kwargs)

    assert torch.autograd.gradcheck(fn, inputs, fast_mode=t.fast_gradcheck)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=t.fast_gradcheck)


def output_layout(t: Target, _=None) -> None:
    """channels_last in, channels_last out (and its input gradient); contiguous in, contiguous out."""
    x = torch.randn(2, 3, 8, 8, device=t.device).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 3, device=t.device, requires_grad=True)
    y = cifarconv.conv2d(x, w, padding=1, backend=t.backend)
    assert y.is_contiguous(memory_format=torch.channels_last)
    (gx,) = torch.autograd.grad(y, x, torch.randn_like(y))
    assert gx.is_contiguous(memory_format=torch.channels_last)
    y = cifarconv.conv2d(x.contiguous(), w, padding=1, backend=t.backend)
    assert y.is_contiguous()


# -- unfold / fold -------------------------------------------------------------------------


def unfold(t: Target, param) -> None:
    """cifarconv.unfold equals F.unfold exactly, in each layout."""
    window, layout = param
    x = torch.randn(2, 3, *FOLD_HW, dtype=torch.float64, device=t.device)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "noncontiguous":
        x = x.transpose(2, 3).contiguous().transpose(2, 3)
    elif layout == "unbatched":
        x = x[1]
    torch.testing.assert_close(cifarconv.unfold(x, backend=t.backend, **window), F.unfold(x, **window), rtol=0, atol=0)


def fold(t: Target, param) -> None:
    """cifarconv.fold equals F.fold, batched and unbatched."""
    window, unbatched = param
    cols = torch.randn(2, 3 * taps(window), blocks(window), dtype=torch.float64, device=t.device)
    cols = cols[0] if unbatched else cols
    got = cifarconv.fold(cols, FOLD_HW, backend=t.backend, **window)
    torch.testing.assert_close(got, F.fold(cols, FOLD_HW, **window), rtol=1e-12, atol=1e-12)


def unfold_fold_gradcheck(t: Target, window) -> None:
    """gradcheck and gradgradcheck of unfold and fold in float64."""
    x = torch.randn(1, 2, *FOLD_HW, dtype=torch.float64, device=t.device, requires_grad=True)
    cols = torch.randn(1, 2 * taps(window), blocks(window), dtype=torch.float64, device=t.device, requires_grad=True)
    unfold_ = lambda v: cifarconv.unfold(v, backend=t.backend, **window)  # noqa: E731
    fold_ = lambda v: cifarconv.fold(v, FOLD_HW, backend=t.backend, **window)  # noqa: E731
    fast = dict(fast_mode=t.fast_gradcheck)
    assert torch.autograd.gradcheck(unfold_, (x,), **fast) and torch.autograd.gradgradcheck(unfold_, (x,), **fast)
    assert torch.autograd.gradcheck(fold_, (cols,), **fast) and torch.autograd.gradgradcheck(fold_, (cols,), **fast)


def fold_adjoint(t: Target, _=None) -> None:
    """fold is the adjoint of unfold: <unfold(x), c> = <x, fold(c)>."""
    x = torch.randn(2, 3, *FOLD_HW, dtype=torch.float64, device=t.device)
    kw = dict(kernel_size=3, dilation=2, padding=1, stride=2)
    cols = torch.randn_like(cifarconv.unfold(x, backend=t.backend, **kw))
    lhs = (cifarconv.unfold(x, backend=t.backend, **kw) * cols).sum()
    rhs = (x * cifarconv.fold(cols, FOLD_HW, backend=t.backend, **kw)).sum()
    torch.testing.assert_close(lhs, rhs)


# -- the registered ops -----------------------------------------------------------------


def opcheck(t: Target, param) -> None:
    """torch.library.opcheck on one op: schema, fake kernel, autograd registration, and more."""
    op, conv, channels_last, bias = param
    family = resolve(t.backend, torch.device(t.device))
    args = op_args(t.device, conv, channels_last, bias, resolve("custom", torch.device(t.device)))[op]
    torch.library.opcheck(getattr(family, op), args)


class CompileNet(nn.Module):
    def __init__(self, backend):
        super().__init__()
        self.a = cifarconv.Conv2d(3, 8, 3, padding=1, backend=backend)
        self.b = cifarconv.Conv2d(8, 8, 3, stride=2, padding="valid", groups=2, bias=False, backend=backend)
        self.c = cifarconv.Conv2d(8, 4, 2, padding="same", padding_mode="reflect", backend=backend)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def compile_model(t: Target, _=None) -> None:
    """torch.compile(fullgraph=True) of a small model: its output and input gradient."""
    torch.manual_seed(0)
    net = CompileNet(t.backend).to(t.device)
    compiled = torch.compile(net, fullgraph=True)
    x = torch.randn(2, 3, 10, 10, device=t.device, requires_grad=True)
    y = compiled(x)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    y_ref = net(x)
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-4)


def compile_unfold_fold(t: Target, _=None) -> None:
    """torch.compile(fullgraph=True) of unfold then fold."""

    def f(x):
        cols = cifarconv.unfold(x, 3, padding=1, backend=t.backend)
        return cifarconv.fold(cols * 2, x.shape[-2:], 3, padding=1, backend=t.backend)

    x = torch.randn(2, 3, 6, 5, device=t.device)
    torch.testing.assert_close(torch.compile(f, fullgraph=True)(x), f(x))


# -- bad input --------------------------------------------------------------------------


def bad_input(t: Target, param) -> None:
    """Bad input raises one clear exception that names the problem."""
    _, call, error, message = param
    conv2d = lambda *a, **kw: cifarconv.conv2d(*a, backend=t.backend, **kw)  # noqa: E731
    unfold_ = lambda *a, **kw: cifarconv.unfold(*a, backend=t.backend, **kw)  # noqa: E731
    fold_ = lambda *a, **kw: cifarconv.fold(*a, backend=t.backend, **kw)  # noqa: E731
    try:
        call(conv2d, unfold_, fold_)
    except error as e:
        if not re.search(message, str(e)):
            raise AssertionError(f"raised {type(e).__name__}({str(e)!r}), expected a message matching {message!r}")
        return
    except Exception as e:
        raise AssertionError(f"raised {type(e).__name__}({str(e)!r}), expected {error.__name__} "
                             f"matching {message!r}") from e
    raise AssertionError(f"raised nothing, expected {error.__name__} matching {message!r}")


# -- the list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One kind of check, and the params it runs over (id, param), smallest first."""

    name: str
    run: Callable[[Target, Any], None]
    params: list[tuple[str, Any]]

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


CHECKS = {
    c.name: c
    for c in (
        Check("grid", grid_float64, [(f"{case.id}-{layout}", (case, layout)) for case, layout in
                                     sorted(GRID, key=lambda p: p[0].size)]),
        Check("layout", output_layout, [("channels_last", None)]),
        Check("float32", float32, [(case.id, case) for case in sorted(CASES, key=lambda c: c.size)]),
        Check("half", half_precision, [(f"{case.id}-{str(dtype).removeprefix('torch.')}", (case, dtype))
                                       for case in HALF_PRECISION_CASES for dtype in (torch.float16, torch.bfloat16)]),
        Check("gradcheck", gradcheck, [(case.id, case) for case in sorted(CASES, key=lambda c: c.size)]),
        Check("unfold", unfold, [(f"{wid}-{layout}", (window, layout)) for wid, window in WINDOWS
                                 for layout in LAYOUTS]),
        Check("fold", fold, [(f"{wid}-{'unbatched' if u else 'batched'}", (window, u)) for wid, window in WINDOWS
                             for u in (False, True)]),
        Check("unfold_fold_gradcheck", unfold_fold_gradcheck, list(WINDOWS)),
        Check("fold_adjoint", fold_adjoint, [("dilated-strided", None)]),
        Check("opcheck", opcheck, [(f"{op}-{cid}-{'channels_last' if cl else 'nchw'}-{'bias' if b else 'no-bias'}",
                                    (op, conv, cl, b)) for op in OP_NAMES for cid, conv in OP_CONFIGS
                                   for cl in (False, True) for b in (True, False)]),
        Check("compile", compile_model, [("model", None)]),
        Check("compile_unfold_fold", compile_unfold_fold, [("unfold-fold", None)]),
        Check("bad_input", bad_input, [(p[0], p) for p in BAD_INPUTS]),
    )
}
