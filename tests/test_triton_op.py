"""The triton backend's GPU registration, checked without a GPU.

On a GPU (no ``TRITON_INTERPRET``) the ops are ``torch.library.triton_op``s whose launches
go through ``wrap_triton``; under the interpreter they are opaque ``custom_op``s instead
(see `cifarconv.backends.triton`), so the rest of the suite never sees that registration
on a CPU-only machine.  Tracing needs no GPU, so a fresh interpreter without
``TRITON_INTERPRET`` checks it here: each op's fake output has the shape, strides and
dtype of the shared fake kernel, and tracing each op's Python shows its Triton kernel as a
``triton_kernel_wrapper_mutation`` node -- what lets torch.compile see inside.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from cifarconv.backends import triton as backend
    from cifarconv.ops import OP_NAMES, meta

    assert not backend.INTERPRET
    conv = ([2, 1], [1, 2], [2, 1], 2)  # stride, padding, dilation, groups
    window = (conv[2], conv[1], conv[0])  # dilation, padding, stride
    x = torch.randn(2, 4, 7, 6).to(memory_format=torch.channels_last)
    w = torch.randn(6, 2, 3, 2)
    dy = torch.randn(2, 6, 3, 9).to(memory_format=torch.channels_last)
    args = {
        "conv2d": (x, w, torch.randn(6), *conv),
        "conv2d_grad_input": (dy, w, [7, 6], *conv),
        "conv2d_grad_weight": (dy, x, [3, 2], *conv, True),
        "im2col": (x, [3, 2], *window),
        "col2im": (torch.randn(2, 24, 27), [7, 6], [3, 2], *window),
    }
    with FakeTensorMode() as mode:
        for op in OP_NAMES:
            fake = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in args[op]]
            got, want = getattr(backend.OPS, op)(*fake), meta.FAKE_KERNELS[op](*fake)
            got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
            for g, e in zip(got, want):
                assert (g.shape, g.stride(), g.dtype) == (e.shape, e.stride(), e.dtype), (op, g, e)
    for op in OP_NAMES:
        code = make_fx(getattr(backend, op), tracing_mode="fake")(*args[op]).code
        assert code.count("higher_order.triton_kernel_wrapper_mutation(") == 1, (op, code)
    print("ok")
    """
)


# triton_op infers each op's schema from the annotations in `cifarconv.backends.triton`
# (torch before 2.14 ignores a schema given to it); they must say what `ops/schema.py`
# says, except that an annotation cannot fix a list's length (SymInt[2] becomes SymInt[]).
SCHEMA_SCRIPT = textwrap.dedent(
    """
    import re
    import torch
    from cifarconv.backends import triton as backend
    from cifarconv.ops import OP_NAMES, SCHEMAS, qualname

    assert not backend.INTERPRET
    for op in OP_NAMES:
        name = qualname("triton", op)
        got = getattr(torch.ops.cifarconv, f"triton_{op}").default._schema
        want = torch._C.parse_schema(name + re.sub(r"\\[\\d+\\]", "[]", SCHEMAS[op]))
        assert str(got) == str(want), (op, str(got), str(want))
    print("ok")
    """
)


def run_without_interpreter(script: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_triton_op_registration_traces_without_interpreter():
    run_without_interpreter(SCRIPT)


def test_triton_op_schemas_match_the_op_layer():
    run_without_interpreter(SCHEMA_SCRIPT)
