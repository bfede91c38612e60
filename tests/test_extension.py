"""The C++/CUDA extension (backends cpp and cuda): what the shared suite does not reach.

The shared tests (test_conv2d, test_fold, test_module, test_ops, ...) already run for
``cpp`` and ``cuda``; this file checks the extension's own machinery: its C++ schemas,
the chunked im2col + GEMM loop, determinism, the C++ argument checks, and what happens
when the extension is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cifarconv
from cifarconv.testing.cases import Case
from cifarconv.ops import OP_NAMES, SCHEMAS

pytestmark = pytest.mark.backends("cpp", "cuda")


def ext_op(op):
    return getattr(torch.ops.cifarconv, f"ext_{op}").default


def test_cpp_schemas_match_the_op_layer(backend, device):
    for op in OP_NAMES:
        assert ext_op(op)._schema == torch._C.parse_schema(f"cifarconv::ext_{op}{SCHEMAS[op]}"), op


def check_against_torch(case, layout, backend, device):
    """The backend's float64 conv and its gradients equal torch's; returns the leaves (x, w, b)."""
    x, w, b = case.tensors(torch.float64, device)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    y = cifarconv.conv2d(x, w, b, backend=backend, **case.kwargs)
    y_ref = F.conv2d(x, w, b, **case.kwargs)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(y)
    for got, want in zip(torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(y_ref, (x, w, b), g)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    return x, w, b


CHUNK_CASES = [
    Case("3x3-pad1", n=5, kwargs=dict(padding=1)),
    Case("strided-dilated-groups", n=5, c_in=6, hw=(9, 8), kwargs=dict(stride=(2, 1), padding=(2, 1), dilation=2, groups=3)),
    Case("1x1-groups", n=3, kernel=(1, 1), kwargs=dict(groups=2)),
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", CHUNK_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("workspace_mb", ["0", "0.03"], ids=["one-image-chunks", "two-image-chunks"])
def test_chunked_gemm_matches_torch(workspace_mb, case, layout, backend, device, monkeypatch):
    """Batches split over several chunks (the last one partial) give torch's values and gradients.

    0.03 MB holds two images of the first two cases (their columns take about 14 kB each).
    """
    monkeypatch.setenv("CIFARCONV_WORKSPACE_MB", workspace_mb)
    x, w, b = check_against_torch(case, layout, backend, device)
    if layout == "contiguous":  # double backward also runs chunked (its ops are the same three)
        fn = lambda *t: cifarconv.conv2d(*t, backend=backend, **case.kwargs)  # noqa: E731
        assert torch.autograd.gradgradcheck(fn, (x, w, b))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("workspace_mb", ["0", "0.2"], ids=["one-image-chunks", "two-image-chunks"])
def test_chunks_in_parallel_match_torch(workspace_mb, layout, backend, device, monkeypatch):
    """On CPU, enough work over enough chunks runs the chunks on parallel threads, each
    with its own workspace slot and grad-weight partial sum (two threads forced here)."""
    monkeypatch.setenv("CIFARCONV_WORKSPACE_MB", workspace_mb)
    case = Case("parallel", n=7, c_in=8, hw=(16, 20), c_out=8, kwargs=dict(padding=1, stride=(1, 2)))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check_against_torch(case, layout, backend, device)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_default_chunks_of_small_images_match_torch(layout, backend, device, monkeypatch):
    """The default workspace: 1 MB holds the float64 columns of 14 of these 4x4 images; on
    CPU a forward / grad-input chunk still takes at least 256 output pixels (16 images; on
    several threads, balanced between them), grad weight 14.  Torch's results either way."""
    monkeypatch.delenv("CIFARCONV_WORKSPACE_MB", raising=False)
    check_against_torch(Case("small-images", n=40, c_in=64, hw=(4, 4), c_out=8, kwargs=dict(padding=1)),
                        layout, backend, device)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_half_precision_grad_weight_accumulates_over_chunks(layout, backend, device, monkeypatch):
    """Chunked grad-weight sums stay at fp32 accuracy for bfloat16 (fp32 accumulation), for
    channel-major (NCHW) and pixel-major (NHWC) columns alike."""
    monkeypatch.setenv("CIFARCONV_WORKSPACE_MB", "0")
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(16, 8, 6, 6, device=device, dtype=torch.bfloat16).contiguous(memory_format=fmt)
    dy = torch.randn(16, 4, 6, 6, device=device, dtype=torch.bfloat16).contiguous(memory_format=fmt)
    dw, _ = ext_op("conv2d_grad_weight")(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, False)
    ref = torch.ops.aten.convolution_backward(
        dy.double(), x.double(), torch.zeros(4, 8, 3, 3, dtype=torch.float64, device=device),
        None, (1, 1), (1, 1), (1, 1), False, (0, 0), 1, (False, True, False),
    )[1]
    assert dw.is_contiguous() and dw.shape == (4, 8, 3, 3)
    assert (dw.double() - ref).abs().max() <= 1e-2 * ref.abs().max()


def test_bad_workspace_setting_is_an_error(backend, device, monkeypatch):
    monkeypatch.setenv("CIFARCONV_WORKSPACE_MB", "lots")
    x, w = torch.randn(2, 3, 5, 5, device=device), torch.randn(4, 3, 3, 3, device=device)
    with pytest.raises(RuntimeError, match="CIFARCONV_WORKSPACE_MB must be a non-negative number of megabytes"):
        cifarconv.conv2d(x, w, backend=backend)


def test_col2im_and_grad_input_are_deterministic(backend, device):
    """Gather-form col2im: bitwise the same result on every run and, on CPU, for any thread
    count, with channel-major (fold, NCHW) and pixel-major (NHWC) columns."""
    cols = torch.randn(3, 4 * 9, 81, device=device)
    dy = torch.randn(3, 8, 5, 5, device=device)
    dy_nhwc = dy.contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 4, 3, 3, device=device)

    def run():
        return (
            cifarconv.fold(cols, (9, 9), 3, padding=1, stride=(1, 1), dilation=1, backend=backend),
            ext_op("conv2d_grad_input")(dy, w, (9, 9), (2, 2), (1, 1), (1, 1), 1),
            ext_op("conv2d_grad_input")(dy_nhwc, w, (9, 9), (2, 2), (1, 1), (1, 1), 1),
        )

    first = run()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run()
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, run(), single):
        assert torch.equal(a, b) and torch.equal(a, c)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


INDEX_CASES = [
    Case("strided-dilated-groups", n=3, c_in=6, hw=(9, 8), kwargs=dict(stride=(2, 1), padding=(2, 1), dilation=2,
                                                                     groups=3)),
    # 8 channels: whole 16-byte vectors of float16 / bfloat16 per tap on CUDA's pixel-major path
    Case("3x3-pad1-8-channels", n=2, c_in=8, hw=(6, 5), c_out=8, kwargs=dict(padding=1)),
    Case("1x1-stride2", n=2, c_in=4, hw=(7, 7), kernel=(1, 1), kwargs=dict(stride=2)),
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", INDEX_CASES, ids=lambda c: c.id)
def test_64_bit_index_math_gives_the_32_bit_results(case, layout, backend, device, monkeypatch):
    """The kernels do their index math in 32 bits when every offset fits, in 64 bits past
    2^31 (csrc/column_geometry.h: fits_int32).  CIFARCONV_INDEX_BITS=64 forces the 64-bit
    path: every op, in both column layouts, gives bitwise the same results, and torch's."""
    x, w, b = case.tensors(torch.float32, device)
    conv = dict(stride=pair(case.kwargs.get("stride", 1)), padding=pair(case.kwargs.get("padding", 0)),
                dilation=pair(case.kwargs.get("dilation", 1)), groups=case.kwargs.get("groups", 1))
    args = (conv["stride"], conv["padding"], conv["dilation"], conv["groups"])
    y_ref = F.conv2d(x, w, b, **conv)
    dy = torch.randn_like(y_ref)
    if layout == "channels_last":
        x, w, dy = (t.contiguous(memory_format=torch.channels_last) for t in (x, w, dy))
    window = (case.kernel, conv["dilation"], conv["padding"], conv["stride"])

    def run():
        cols = ext_op("im2col")(x, *window)
        return (
            ext_op("conv2d")(x, w, b, *args),
            ext_op("conv2d_grad_input")(dy, w, case.hw, *args),
            *ext_op("conv2d_grad_weight")(dy, x, case.kernel, *args, True),
            cols,
            ext_op("col2im")(cols, case.hw, *window),
        )

    narrow = run()
    monkeypatch.setenv("CIFARCONV_INDEX_BITS", "64")
    wide = run()
    for a, c in zip(narrow, wide):
        assert torch.equal(a, c)
    torch.testing.assert_close(narrow[0], y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(narrow[4], F.unfold(x, case.kernel, conv["dilation"], conv["padding"], conv["stride"]))
    dx_ref, dw_ref, db_ref = torch.ops.aten.convolution_backward(
        dy, x, w, [w.shape[0]], *args[:3], False, (0, 0), args[3], (True, True, True))
    for got, want in zip(narrow[1:4], (dx_ref, dw_ref, db_ref)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_bad_index_bits_setting_is_an_error(backend, device, monkeypatch):
    monkeypatch.setenv("CIFARCONV_INDEX_BITS", "16")
    x, w = torch.randn(2, 3, 5, 5, device=device), torch.randn(4, 3, 3, 3, device=device)
    with pytest.raises(RuntimeError, match="CIFARCONV_INDEX_BITS must be 64"):
        cifarconv.conv2d(x, w, backend=backend)


@pytest.mark.backends("cuda")
@pytest.mark.parametrize("layout", ["channel-major", "pixel-major"])
def test_columns_past_2_31_entries(layout, backend, device):
    """A GPU with room for it: 2^31 column entries (4 GiB of bfloat16), so that offsets pass
    2^31 and the kernels take their 64-bit path.  Channel-major through ext_im2col, pixel-major
    through a channels_last conv."""
    if layout == "channel-major":
        x = torch.randn(1, 1, 2**15 + 1, 2**15, device=device, dtype=torch.bfloat16)
        cols = ext_op("im2col")(x, (2, 1), (1, 1), (0, 0), (1, 1))  # (1, 2, 2^30)
        assert cols.shape == (1, 2, 2**30)
        assert torch.equal(cols[0, 0], x[0, 0, :-1].flatten()) and torch.equal(cols[0, 1], x[0, 0, 1:].flatten())
    else:
        x = torch.randn(1, 16, 2**13, 2**13 + 1, device=device, dtype=torch.bfloat16)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(8, 16, 1, 2, device=device, dtype=torch.bfloat16)
        y = cifarconv.conv2d(x, w, backend=backend)  # columns: 2^26 pixels x 32 entries
        ref = F.conv2d(x, w)
        assert (y.float() - ref.float()).abs().max() <= 2e-2 * ref.float().abs().max()


# One bad call per check of every op (csrc/conv2d.cpp); each message formats sizes or
# dtypes, the two kinds of argument a message can print.
BAD_CALLS = [
    pytest.param("conv2d", lambda d: (torch.randn(1, 3, 5, 5, device=d), torch.randn(4, 2, 3, 3, device=d), None,
                                      (1, 1), (0, 0), (1, 1), 1), "input has 3 channels", id="channels"),
    pytest.param("conv2d", lambda d: (torch.randn(1, 3, 5, 5, device=d),
                                      torch.randn(4, 3, 3, 3, device=d, dtype=torch.float64),
                                      None, (1, 1), (0, 0), (1, 1), 1), "dtypes differ", id="dtypes"),
    pytest.param("conv2d", lambda d: (torch.randn(1, 3, 2, 2, device=d), torch.randn(4, 3, 3, 3, device=d), None,
                                      (1, 1), (0, 0), (1, 1), 1), "does not fit the padded input", id="kernel-too-big"),
    pytest.param("conv2d", lambda d: (torch.randn(1, 3, 5, 5, device=d), torch.randn(4, 3, 3, 3, device=d), None,
                                      (0, 1), (0, 0), (1, 1), 1), "must be positive", id="zero-stride"),
    pytest.param("conv2d", lambda d: (torch.randn(1, 3, 5, 5, device=d), torch.randn(4, 3, 3, 3, device=d),
                                      torch.randn(5, device=d), (1, 1), (0, 0), (1, 1), 1),
                 "bias must be a 1-D tensor of 4 values", id="bias-size"),
    pytest.param("conv2d_grad_input", lambda d: (torch.randn(1, 4, 2, 2, device=d), torch.randn(4, 3, 3, 3, device=d),
                                                 (5, 5), (1, 1), (0, 0), (1, 1), 1), "grad_output has shape",
                 id="grad-output-shape"),
    pytest.param("conv2d_grad_weight", lambda d: (torch.randn(1, 4, 2, 2, device=d), torch.randn(1, 3, 5, 5, device=d),
                                                  (3, 3), (1, 1), (0, 0), (1, 1), 1, True), "grad_output has shape",
                 id="grad-weight-shape"),
    pytest.param("conv2d_grad_weight", lambda d: (torch.randn(1, 4, 3, 3, device=d), torch.randn(1, 3, 5, 5, device=d),
                                                  (3, 3), (1, 1), (0, 0), (1, 1), 2, True), "must divide both",
                 id="grad-weight-groups"),
    pytest.param("im2col", lambda d: (torch.randn(1, 3, 2, 2, device=d), (3, 3), (1, 1), (0, 0), (1, 1)),
                 "does not fit the padded input", id="im2col-kernel-too-big"),
    pytest.param("col2im", lambda d: (torch.randn(1, 10, 9, device=d), (5, 5), (3, 3), (1, 1), (0, 0), (1, 1)),
                 "do not match output_size", id="col2im-shape"),
]


@pytest.mark.parametrize("op, args, message", BAD_CALLS)
def test_ops_reject_bad_arguments(op, args, message, backend, device):
    """Called directly (bypassing cifarconv.conv2d's checks) the C++ ops still refuse bad input."""
    with pytest.raises(RuntimeError, match=message):
        ext_op(op)(*args(device))


@pytest.mark.parametrize("op, args, message", BAD_CALLS)
def test_cuda_kernels_reject_bad_arguments_without_a_gpu(op, args, message):
    """The CUDA registration's error paths, run on CPU tensors.

    Every check happens before a kernel touches device memory, so redispatching to the
    CUDA key with CPU tensors runs the very code a bad call on CUDA tensors runs, on any
    machine with a CUDA build of the extension (a GPU machine, or a CUDA torch without a
    GPU).  A CPU-only build has no CUDA kernels to check.
    """
    from cifarconv import _C

    if not _C.with_cuda:
        pytest.skip("this build of the extension has no CUDA kernels")
    cuda = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match=message):
        ext_op(op).redispatch(cuda, *args("cpu"))


def test_cifarconv_imports_without_the_extension():
    """No built extension: cifarconv works, and cpp says why it cannot run and how to build it."""
    code = (
        "import sys; sys.modules['cifarconv._C'] = None\n"  # makes `from .. import _C` fail
        "import torch, cifarconv\n"
        "assert 'cpp' not in cifarconv.available_backends('cpu')\n"
        "x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)\n"
        "torch.testing.assert_close(cifarconv.conv2d(x, w), torch.nn.functional.conv2d(x, w))\n"
        "try:\n"
        "    cifarconv.conv2d(x, w, backend='cpp')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "conv backend 'cpp' cannot run on cpu tensors here" in out
    assert "pip install --no-build-isolation -e ." in out
