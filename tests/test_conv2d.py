"""cifarconv.conv2d against torch.nn.functional.conv2d: values and every gradient.

The checks and their cases are `cifarconv.testing`'s, which `check_backend` runs on any
backend; here they run, one test per case, on every built-in backend.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cifarconv
from cifarconv.testing import CHECKS, Target
from conftest import check_params
from cifarconv.testing.cases import CASES


@check_params("grid")
def test_forward_and_grads_match_torch_float64(param, backend, device):
    CHECKS["grid"].run(Target(backend, device), param)


@check_params("float32")
def test_forward_and_grads_match_float64_in_float32(param, backend, device):
    CHECKS["float32"].run(Target(backend, device), param)


@check_params("half")
def test_half_precision_close_to_float32(param, backend, device):
    CHECKS["half"].run(Target(backend, device), param)


@check_params("gradcheck")
def test_gradcheck_and_gradgradcheck(param, backend, device, interpreted):
    # Interpreted kernels: gradcheck's fast_mode, which compares a random projection
    # v^T J u of the same Jacobians (first and second order) with its finite-difference
    # estimate.  The full check perturbs every input element and takes > 10 min a case there.
    CHECKS["gradcheck"].run(Target(backend, device, fast_gradcheck=interpreted), param)


def test_output_layout_follows_input(backend, device):
    CHECKS["layout"].run(Target(backend, device), None)


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
