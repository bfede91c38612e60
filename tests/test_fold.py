"""cifarconv.unfold / fold (im2col / col2im) against F.unfold / F.fold."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cifarconv

WINDOWS = [
    pytest.param(dict(kernel_size=3), id="3x3"),
    pytest.param(dict(kernel_size=(2, 3), dilation=(2, 1), padding=(1, 0), stride=(1, 2)), id="asymmetric"),
    pytest.param(dict(kernel_size=1, stride=2), id="1x1-stride2"),
    pytest.param(dict(kernel_size=2, stride=3, padding=2), id="stride-gt-kernel"),
    pytest.param(dict(kernel_size=(7, 6)), id="kernel-equals-input"),
]
HW = (7, 6)


def blocks(kw):
    k = F.unfold(torch.zeros(1, 1, *HW), **kw)
    return k.shape[-1]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "noncontiguous", "unbatched"])
@pytest.mark.parametrize("kw", WINDOWS)
def test_unfold_matches_torch(kw, layout, backend, device):
    x = torch.randn(2, 3, *HW, dtype=torch.float64, device=device)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "noncontiguous":
        x = x.transpose(2, 3).contiguous().transpose(2, 3)
    elif layout == "unbatched":
        x = x[1]
    torch.testing.assert_close(cifarconv.unfold(x, backend=backend, **kw), F.unfold(x, **kw), rtol=0, atol=0)


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("kw", WINDOWS)
def test_fold_matches_torch(kw, unbatched, backend, device):
    k = kw["kernel_size"]
    window = k * k if isinstance(k, int) else k[0] * k[1]
    cols = torch.randn(2, 3 * window, blocks(kw), dtype=torch.float64, device=device)
    cols = cols[0] if unbatched else cols
    got = cifarconv.fold(cols, HW, backend=backend, **kw)
    torch.testing.assert_close(got, F.fold(cols, HW, **kw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", WINDOWS)
def test_unfold_fold_gradcheck_and_gradgradcheck(kw, backend, device, interpreted):
    x = torch.randn(1, 2, *HW, dtype=torch.float64, device=device, requires_grad=True)
    k = kw["kernel_size"]
    window = k * k if isinstance(k, int) else k[0] * k[1]
    cols = torch.randn(1, 2 * window, blocks(kw), dtype=torch.float64, device=device, requires_grad=True)
    unfold = lambda t: cifarconv.unfold(t, backend=backend, **kw)  # noqa: E731
    fold = lambda t: cifarconv.fold(t, HW, backend=backend, **kw)  # noqa: E731
    fast = dict(fast_mode=interpreted)  # interpreted kernels: a random projection, as in test_conv2d
    assert torch.autograd.gradcheck(unfold, (x,), **fast) and torch.autograd.gradgradcheck(unfold, (x,), **fast)
    assert torch.autograd.gradcheck(fold, (cols,), **fast) and torch.autograd.gradgradcheck(fold, (cols,), **fast)


def test_fold_is_adjoint_of_unfold(backend, device):
    x = torch.randn(2, 3, *HW, dtype=torch.float64, device=device)
    kw = dict(kernel_size=3, dilation=2, padding=1, stride=2)
    cols = torch.randn_like(cifarconv.unfold(x, backend=backend, **kw))
    lhs = (cifarconv.unfold(x, backend=backend, **kw) * cols).sum()
    rhs = (x * cifarconv.fold(cols, HW, backend=backend, **kw)).sum()
    torch.testing.assert_close(lhs, rhs)
