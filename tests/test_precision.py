"""The float32 precision policy (`cifarconv.precision`), checked without a GPU.

Fake CUDA tensors carry a device and a dtype but no data, which is all the policy reads.
On a GPU, tests/test_conv2d.py checks the numbers in both modes (cifarconv/testing/fp32.py).
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from cifarconv.testing import fp32
from cifarconv.precision import conv_allows_tf32, conv_matmul_precision, uses_tf32


@pytest.fixture
def fake_cuda():
    with FakeTensorMode():
        yield lambda dtype=torch.float32: torch.empty(2, 3, device="cuda", dtype=dtype)


@pytest.mark.parametrize("mode", ["ieee", "tf32"])
def test_the_conv_switch_decides(mode, fake_cuda):
    with fp32.fp32_mode(mode):  # cuBLAS's matmul setting is the other mode
        assert conv_allows_tf32() == (mode == "tf32")
        assert uses_tf32(fake_cuda()) == (mode == "tf32")
        for dtype in (torch.float64, torch.bfloat16, torch.float16):
            assert not uses_tf32(fake_cuda(dtype))
        assert not uses_tf32(torch.empty(2, 3))  # CPU: float32 is float32


def test_the_legacy_switch_is_followed_too():
    with torch.backends.cudnn.flags(allow_tf32=False):
        assert not conv_allows_tf32()
    with torch.backends.cudnn.flags(allow_tf32=True):
        assert conv_allows_tf32()


@pytest.mark.parametrize("mode", ["ieee", "tf32"])
@pytest.mark.parametrize("matmul", ["none", "ieee", "tf32"])
def test_cublas_follows_the_conv_switch_inside_an_op_then_is_restored(mode, matmul, fake_cuda):
    cuda_matmul = torch.backends.cuda.matmul
    with fp32.fp32_mode(mode):
        cuda_matmul.fp32_precision = matmul
        with conv_matmul_precision(fake_cuda()):
            assert cuda_matmul.fp32_precision == mode
        assert cuda_matmul.fp32_precision == matmul
        for other in (fake_cuda(torch.bfloat16), fake_cuda(torch.float64), torch.empty(2)):
            with conv_matmul_precision(other):
                assert cuda_matmul.fp32_precision == matmul


def test_restored_after_an_error(fake_cuda):
    cuda_matmul = torch.backends.cuda.matmul
    with fp32.fp32_mode("tf32"):
        cuda_matmul.fp32_precision = "ieee"
        with pytest.raises(ZeroDivisionError):
            with conv_matmul_precision(fake_cuda()):
                1 / 0
        assert cuda_matmul.fp32_precision == "ieee"


@pytest.mark.parametrize("mode", ["ieee", "tf32"])
def test_triton_kernels_get_the_conv_precision(mode, fake_cuda):
    pytest.importorskip("triton")
    from cifarconv.triton_kernels.common import dot_args

    with fp32.fp32_mode(mode):
        assert dot_args(fake_cuda())["PRECISION"] == mode
        assert dot_args(fake_cuda(torch.bfloat16))["PRECISION"] == "ieee"  # unused by 16-bit dots
        assert dot_args(torch.empty(2))["PRECISION"] == "ieee"


def test_torch_compile_does_not_watch_the_conv_switch():
    """Why docs/precision.md says a compiled model keeps the precision it was compiled with:
    the triton backend's kernels take the switch as a compile-time constant, and
    torch.compile's guards cover cuBLAS's matmul setting but not the conv switch, so a
    change of the conv switch alone does not recompile.  Should a torch release start
    guarding it, this fails, and the docs' advice to reset and recompile can go."""
    from pathlib import Path

    from torch._dynamo.testing import CompileCounter

    conv = torch.backends.cudnn.conv
    saved = conv.fp32_precision
    counter = CompileCounter()
    f = torch.compile(lambda t: t + 1, backend=counter, fullgraph=True)
    try:
        conv.fp32_precision = "tf32"
        f(torch.zeros(2))
        conv.fp32_precision = "ieee"
        f(torch.zeros(2))
    finally:
        conv.fp32_precision = saved
        torch.compiler.reset()
    assert counter.frame_count == 1
    docs = (Path(__file__).resolve().parents[1] / "docs" / "precision.md").read_text()
    assert "keeps the precision it was compiled with" in docs and "torch.compiler.reset()" in docs
