"""Bad input gets a clear exception that names the problem."""

from __future__ import annotations

import pytest
import torch

import cifarconv

x = torch.randn(2, 4, 8, 8)
w = torch.randn(6, 4, 3, 3)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda b: cifarconv.conv2d(torch.randn(2, 3, 8, 8), w, backend=b), ValueError, "input has 3 channels"),
        (lambda b: cifarconv.conv2d(x, torch.randn(6, 2, 3, 3), groups=3, backend=b), ValueError, "does not divide"),
        (lambda b: cifarconv.conv2d(x, torch.randn(6, 1, 3, 3), groups=4, backend=b), ValueError, "does not divide"),
        (lambda b: cifarconv.conv2d(x, w, groups=0, backend=b), ValueError, "groups must be a positive int"),
        (lambda b: cifarconv.conv2d(x, torch.randn(6, 4, 9, 3), backend=b), ValueError, "larger than the padded"),
        (lambda b: cifarconv.conv2d(x, w, dilation=4, backend=b), ValueError, "larger than the padded"),
        (lambda b: cifarconv.conv2d(x, w, stride=0, backend=b), ValueError, "stride must be >= 1"),
        (lambda b: cifarconv.conv2d(x, w, stride=(1, -1), backend=b), ValueError, "stride must be >= 1"),
        (lambda b: cifarconv.conv2d(x, w, dilation=0, backend=b), ValueError, "dilation must be >= 1"),
        (lambda b: cifarconv.conv2d(x, w, padding=-1, backend=b), ValueError, "padding must be >= 0"),
        (lambda b: cifarconv.conv2d(x, w, padding="full", backend=b), ValueError, "'same' or 'valid'"),
        (lambda b: cifarconv.conv2d(x, w, stride=2, padding="same", backend=b), ValueError, "'same' needs stride 1"),
        (lambda b: cifarconv.conv2d(x, w, stride=(1, 2, 3), backend=b), TypeError, "stride must be an int or a pair"),
        (lambda b: cifarconv.conv2d(x, w, padding=1.5, backend=b), TypeError, "padding must be an int or a pair"),
        (lambda b: cifarconv.conv2d(x[0, 0], w, backend=b), ValueError, "3-D .* or 4-D"),
        (lambda b: cifarconv.conv2d(x[None], w, backend=b), ValueError, "got 5-D"),
        (lambda b: cifarconv.conv2d(x, w[0], backend=b), ValueError, "4-D weight"),
        (lambda b: cifarconv.conv2d(x, w[:0], backend=b), ValueError, "no output channels"),
        (lambda b: cifarconv.conv2d(x, w, torch.randn(5), backend=b), ValueError, "bias must be a 1-D tensor of 6"),
        (lambda b: cifarconv.conv2d(x, w.double(), backend=b), TypeError, "dtype torch.float32 and weight dtype"),
        (lambda b: cifarconv.conv2d(x, w, torch.randn(6).double(), backend=b), TypeError, "bias dtype"),
        (lambda b: cifarconv.conv2d(x.long(), w.long(), backend=b), TypeError, "floating-point"),
        (lambda b: cifarconv.conv2d(x, w.to("meta"), backend=b), ValueError, "input is on cpu but weight is on meta"),
        (lambda b: cifarconv.conv2d(x.numpy(), w, backend=b), TypeError, "input must be a tensor, got ndarray"),
        (lambda b: cifarconv.conv2d(x, [1.0], backend=b), TypeError, "weight must be a tensor, got list"),
        (lambda b: cifarconv.unfold(x, 9, backend=b), ValueError, "does not fit"),
        (lambda b: cifarconv.unfold([x], 3, backend=b), TypeError, "input must be a tensor, got list"),
        (lambda b: cifarconv.unfold(x[0, 0], 3, backend=b), ValueError, "3-D or 4-D"),
        (lambda b: cifarconv.unfold(x, 3, stride=0, backend=b), ValueError, "stride must be >= 1"),
        (lambda b: cifarconv.fold(torch.randn(1, 12, 7), (5, 6), 2, backend=b), ValueError, "gives 4 x 5 = 20"),
        (lambda b: cifarconv.fold(torch.randn(1, 10, 20), (5, 6), 2, backend=b), ValueError, "divisible by"),
        (lambda b: cifarconv.fold(torch.randn(1, 12, 20), (5, 6), 2, padding=-1, backend=b), ValueError, "padding"),
        (lambda b: cifarconv.fold(torch.randn(12), (5, 6), 2, backend=b), ValueError, "2-D or 3-D"),
    ],
)
@pytest.mark.parametrize("backend_name", ["custom", "torch"])
def test_bad_input_raises_named_error(call, error, message, backend_name):
    with pytest.raises(error, match=message):
        call(backend_name)


def test_unknown_backend_is_value_error_listing_names():
    with pytest.raises(ValueError, match="unknown conv backend 'cudnn'; valid names: torch, custom, cpp, cuda, triton"):
        cifarconv.conv2d(x, w, backend="cudnn")


def test_wrong_device_backend_is_runtime_error_with_advice():
    with pytest.raises(RuntimeError, match="'cuda' cannot run on cpu tensors here: it runs on cuda tensors.*available"):
        cifarconv.conv2d(x, w, backend="cuda")
