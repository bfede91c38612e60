"""Bad input gets a clear exception that names the problem."""

from __future__ import annotations

import pytest
import torch

import cifarconv
from cifarconv.testing import CHECKS, Target
from conftest import check_params

x = torch.randn(2, 4, 8, 8)
w = torch.randn(6, 4, 3, 3)


@check_params("bad_input")
@pytest.mark.parametrize("backend_name", ["custom", "torch"])
def test_bad_input_raises_named_error(param, backend_name):
    CHECKS["bad_input"].run(Target(backend_name, "cpu"), param)


def test_unknown_backend_is_value_error_listing_names():
    with pytest.raises(ValueError, match="unknown conv backend 'cudnn'; valid names: torch, custom, cpp, cuda, triton"):
        cifarconv.conv2d(x, w, backend="cudnn")


def test_wrong_device_backend_is_runtime_error_with_advice():
    with pytest.raises(RuntimeError, match="'cuda' cannot run on cpu tensors here: it runs on cuda tensors.*available"):
        cifarconv.conv2d(x, w, backend="cuda")
