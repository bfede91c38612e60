"""Test parametrization: every cifarconv backend on every device it runs on here.

A test that takes the ``backend`` and ``device`` arguments runs once per
(backend, device) pair; ``@pytest.mark.backends("cpp", "cuda")`` limits it to those
backends.  A pair that cannot run on this machine is skipped with the
reason -- unless the backend is listed in ``CIFARCONV_REQUIRE_BACKENDS``
(comma-separated; CI sets it), where it fails instead, so a missing build can
never hide behind a skip.
"""

from __future__ import annotations

import os

import pytest
import torch

# The triton backend runs CPU tensors only in Triton's interpreter, which must be switched
# on before its kernels are imported.  Without a GPU, turn it on for the whole run.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from cifarconv.registry import BACKENDS, unavailable_reason

OWN_BACKENDS = [name for name in BACKENDS if name != "torch"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
REQUIRED = {name for name in os.environ.get("CIFARCONV_REQUIRE_BACKENDS", "").split(",") if name}


# (backend, device) pairs whose kernels run in an interpreter (Triton's, on CPU): each
# launch is numpy in Python, so a test that launches thousands of kernels asks the
# `interpreted` fixture and uses an equivalent cheaper check there (see its users).
INTERPRETED = {("triton", "cpu")}


def check_params(name: str):
    """Parametrize a test over the params of `cifarconv.testing.CHECKS[name]`, with their ids."""
    from cifarconv.testing import CHECKS

    params = CHECKS[name].params
    return pytest.mark.parametrize("param", [p for _, p in params], ids=[i for i, _ in params])


@pytest.fixture
def interpreted(backend, device) -> bool:
    return (backend, device) in INTERPRETED


@pytest.fixture
def triton_device(device):
    """``device``, for a test of the triton kernels themselves: as for the (backend, device)
    pairs, CPU tensors are not triton's in a GPU run (it runs compiled, on cuda only), and an
    unavailable triton fails where it is required."""
    if ("triton", device) in INTERPRETED and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("a GPU run: triton runs its kernels compiled, on cuda only")
    reason = unavailable_reason("triton", device)
    if reason is not None:
        (pytest.fail if "triton" in REQUIRED else pytest.skip)(f"triton on {device}: {reason}")
    return device


def backend_device_pairs(names=None):
    pairs = []
    for name in OWN_BACKENDS if names is None else [n for n in OWN_BACKENDS if n in names]:
        for device in DEVICES:
            runs_on = BACKENDS[name].devices
            if (name, device) in INTERPRETED and os.environ.get("TRITON_INTERPRET") != "1":
                continue  # a GPU run: triton runs its kernels compiled, on cuda only
            if runs_on is None or device in runs_on:
                pairs.append(pytest.param(name, device, id=f"{name}-{device}"))
    return pairs


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames and "device" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize(("backend", "device"), backend_device_pairs(marker.args if marker else None))
    elif "device" in metafunc.fixturenames:
        metafunc.parametrize("device", DEVICES)


@pytest.fixture(autouse=True)
def _skip_unavailable(request):
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or "backend" not in callspec.params:
        return
    name, device = callspec.params["backend"], callspec.params["device"]
    reason = unavailable_reason(name, device)
    if reason is not None:
        if name in REQUIRED:
            pytest.fail(f"backend {name!r} is required (CIFARCONV_REQUIRE_BACKENDS) but unavailable: {reason}")
        pytest.skip(f"backend {name!r} on {device}: {reason}")


def pytest_collection_modifyitems(config, items):
    missing = REQUIRED - set(OWN_BACKENDS)
    if missing:
        raise pytest.UsageError(f"CIFARCONV_REQUIRE_BACKENDS names no backend of cifarconv's own: {sorted(missing)}")


@pytest.fixture
def killed_after_first_checkpoint(monkeypatch):
    """The trainer dies (KeyboardInterrupt) right after it saves epoch 1's checkpoint, as a killed
    run would; call the returned function to let it save normally again."""
    from cifarconv.train import loop

    save = loop.save_checkpoint

    def save_then_die(*args):
        save(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    return lambda: monkeypatch.setattr(loop, "save_checkpoint", save)
