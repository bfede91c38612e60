"""Backend names, availability and the 'auto' choice."""

from __future__ import annotations

import pytest
import torch

import cifarconv
from cifarconv import registry


def test_every_name_is_known():
    assert cifarconv.names() == ("torch", "custom", "cpp", "cuda", "triton", "auto")
    for name in cifarconv.names():
        assert registry.check_name(name) == name


def test_available_backends_on_cpu():
    names = cifarconv.available_backends("cpu")
    assert names[:2] == ["torch", "custom"] and "cuda" not in names
    for name in names:
        assert registry.unavailable_reason(name, "cpu") is None


def test_unavailable_backends_say_why():
    for name in cifarconv.BACKENDS:
        if name not in cifarconv.available_backends("cpu"):
            assert registry.unavailable_reason(name, "cpu")
            with pytest.raises(RuntimeError, match=f"conv backend '{name}' cannot run on cpu tensors here: .+"):
                cifarconv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 1, 1), backend=name)


def test_auto_picks_the_first_available_in_order(device):
    family = registry.resolve("auto", torch.device(device))
    expected = next(n for n in registry.AUTO_ORDER[device] if registry.unavailable_reason(n, device) is None)
    assert family is registry.resolve(expected, torch.device(device))
    assert family.prefix != "torch"  # auto never silently falls back to torch's own conv


def test_wrong_device_names_the_backend_to_use():
    assert "use backend 'cuda' for cuda tensors" in registry.unavailable_reason("cpp", "cuda")
    assert "use backend 'cpp' for cpu tensors" in registry.unavailable_reason("cuda", "cpu")
    with pytest.raises(RuntimeError, match="conv backend 'cuda' cannot run on cpu tensors here: .*use backend 'cpp'"):
        cifarconv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 1, 1), backend="cuda")


def test_without_triton_the_backend_says_how_to_get_it():
    """triton is an extra on a CPU torch: cifarconv imports without it, and the triton
    backend names the extra to install."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['triton'] = None\n"  # makes `import triton` fail as if not installed
        "import cifarconv\n"
        "from cifarconv.registry import unavailable_reason\n"
        "print(unavailable_reason('triton', 'cpu'))\n"
        "print(cifarconv.available_backends('cpu'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    reason, available = done.stdout.splitlines()
    assert 'triton is not installed: pip install "cifarconv[triton]"' in reason
    assert "triton" not in available and "custom" in available
