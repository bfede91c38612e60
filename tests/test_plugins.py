"""Bring your own backend: register_backend, plugins, entry points and the check battery.

Every test that registers a backend removes it again (the ``registered`` fixture), or
registers it in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cifarconv
from cifarconv import registry
from cifarconv.backends import custom
from cifarconv.testing import check_backend

ROOT = Path(__file__).resolve().parents[1]
WINOGRAD = ROOT / "examples" / "winograd.py"


@pytest.fixture
def registered():
    """Names registered by the test, unregistered after it."""
    names = []
    yield names
    for name in names:
        if name in registry.BACKENDS:
            cifarconv.unregister_backend(name)


def run(*args, env=None, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_a_forward_only_backend_runs_its_own_forward_and_custom_s_backward(registered):
    calls = []

    @cifarconv.register_backend("forwardonly", devices=("cpu",))
    def forward(x, w, bias, stride, padding, dilation, groups):
        calls.append(tuple(x.shape))
        return custom.conv2d(x, w, bias, stride, padding, dilation, groups)

    registered.append("forwardonly")
    assert forward.__name__ == "forward"  # the decorator gives the function back
    assert "forwardonly" in cifarconv.names() and "forwardonly" in cifarconv.available_backends("cpu")
    description = cifarconv.describe_backend("forwardonly")
    assert "own kernels: conv2d" in description
    assert "custom backend's code for: conv2d_grad_input, conv2d_grad_weight, im2col, col2im" in description
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    y = cifarconv.conv2d(x, w, padding=1, backend="forwardonly")
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1))
    assert calls == [(2, 3, 6, 5)]
    assert torch.autograd.gradgradcheck(lambda a, b: cifarconv.conv2d(a, b, backend="forwardonly"), (x, w))
    assert torch.ops.cifarconv.forwardonly_conv2d.default._schema.name == "cifarconv::forwardonly_conv2d"
    cifarconv.unregister_backend("forwardonly")
    assert "forwardonly" not in cifarconv.names()
    with pytest.raises(ValueError, match="unknown conv backend 'forwardonly'"):
        cifarconv.conv2d(x, w, backend="forwardonly")
    # the name can be registered again (its ops are redefined)
    cifarconv.register_backend("forwardonly", custom.conv2d, im2col=custom.im2col)
    assert "own kernels: conv2d, im2col" in cifarconv.describe_backend("forwardonly")


def test_the_built_in_backends_are_registered_through_the_public_api():
    for name in ("torch", "custom", "cpp", "cuda", "triton"):
        assert registry.BACKENDS[name].builtin
    assert registry.BACKENDS["cpp"].ops is registry.BACKENDS["cuda"].ops  # one family, two names
    assert registry.BACKENDS["cpp"].devices == ("cpu",) and registry.BACKENDS["cuda"].devices == ("cuda",)
    assert isinstance(registry.resolve("torch", torch.device("cpu")), cifarconv.ops.OpFamily)


@pytest.mark.parametrize("call, message", [
    (lambda: cifarconv.register_backend("custom", custom.conv2d), "'custom' is a built-in backend"),
    (lambda: cifarconv.register_backend("auto", custom.conv2d), "'auto' is a built-in backend"),
    (lambda: cifarconv.register_backend("torch", custom.conv2d), "'torch' is a built-in backend"),
    (lambda: cifarconv.register_backend("Fast-Conv", custom.conv2d), "lower-case letters, digits and '_'"),
    (lambda: cifarconv.register_backend("ok", custom.conv2d, devices=("gpu",)), "'gpu' is not a device type"),
    (lambda: cifarconv.register_backend("ok", custom.conv2d, devices=("cuda:0",)), "device types like 'cuda'"),
    (lambda: cifarconv.register_backend("ok", custom.conv2d, ops=custom.OPS), "either ops= or kernels"),
    (lambda: cifarconv.unregister_backend("cpp"), "'cpp' is a built-in backend and cannot be unregistered"),
    (lambda: cifarconv.unregister_backend("nothing"), "unknown conv backend 'nothing'"),
], ids=["builtin", "auto", "torch", "bad-name", "unknown-device", "device-index", "ops-and-kernels",
        "unregister-builtin", "unregister-unknown"])
def test_bad_registrations_are_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    assert "ok" not in registry.BACKENDS


def test_a_name_whose_ops_another_family_defined_is_refused():
    """The name is the ops' prefix: ops cifarconv::<name>_* defined by someone else (as the
    extension's cifarconv::ext_* are) are never redefined."""
    lib = torch.library.Library("cifarconv", "FRAGMENT")
    lib.define("taken_conv2d(Tensor x) -> Tensor")
    with pytest.raises(ValueError, match="would redefine the ops cifarconv::taken_"):
        cifarconv.register_backend("taken", custom.conv2d)
    assert "taken" not in registry.BACKENDS


def test_registering_a_name_twice_is_an_error(registered):
    cifarconv.register_backend("twice", custom.conv2d)
    registered.append("twice")
    with pytest.raises(ValueError, match="'twice' is already registered"):
        cifarconv.register_backend("twice", custom.conv2d)


def test_the_battery_reports_a_wrong_backend_naming_the_case(registered):
    """A forward with its filters mirrored left to right: right only where that changes
    nothing, so the battery must name a failing case and the error."""

    @cifarconv.register_backend("mirrored", devices=("cpu",))
    def conv2d(x, w, bias, stride, padding, dilation, groups):
        return custom.conv2d(x, w.flip(-1), bias, stride, padding, dilation, groups)

    registered.append("mirrored")
    report = check_backend("mirrored", checks=["grid", "layout", "bad_input"])
    by_name = {r.name: r for r in report.results}
    assert not report.ok and not by_name["grid"].ok and by_name["layout"].ok and by_name["bad_input"].ok
    assert by_name["grid"].first_failure.split("-")[0] in {c.id.split("-")[0] for c in cifarconv.testing.CASES}
    assert "Tensor-likes are not close" in by_name["grid"].error
    assert by_name["grid"].passed > 0  # the 1-wide kernels and the empty cases pass
    assert "FAILED: grid" in str(report)
    with pytest.raises(cifarconv.testing.BackendCheckFailed, match="FAILED: grid"):
        check_backend("mirrored", checks=["grid"], strict=True)


def test_the_winograd_example_passes_every_check(registered):
    """The documented example (examples/winograd.py) passes the whole battery on the CPU."""
    assert cifarconv.load_plugin(str(WINOGRAD)) in (["winograd"], [])
    registered.append("winograd")
    report = check_backend("winograd")
    assert report.ok, str(report)
    assert {r.name for r in report.results} == set(cifarconv.testing.CHECKS)


def test_check_command_prints_the_report():
    done = run("-m", "cifarconv.check", "--plugin", str(WINOGRAD), "winograd", "--only", "grid,layout,bad_input")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "own kernels: conv2d" in done.stdout and "all checks passed" in done.stdout
    assert "grid" in done.stdout and "bad_input" in done.stdout


@pytest.mark.parametrize("plugin, message", [
    ("broken", "plugin '{path}' failed to import: ZeroDivisionError: division by zero"),
    ("missing.py", "plugin '{path}': no such file"),
    ("no_such_module_xyz", "plugin 'no_such_module_xyz': no such file or importable module"),
])
def test_a_plugin_that_does_not_load_is_one_clear_error(plugin, message, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import cifarconv\n1 / 0\n")
    spec = str(path) if plugin == "broken" else str(tmp_path / plugin) if plugin.endswith(".py") else plugin
    with pytest.raises(cifarconv.PluginError, match="^" + message.format(path=spec).replace("(", r"\(")
                       .replace(")", r"\)")):
        cifarconv.load_plugin(spec)
    done = run("-m", "cifarconv.check", "--plugin", spec, "winograd")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message.format(path=spec) in done.stderr


ENTRY_POINT_PLUGIN = '''
import cifarconv
from cifarconv.backends import custom

cifarconv.register_backend("fromentrypoint", custom.conv2d, devices=("cpu",))
'''


def test_installed_packages_register_through_the_entry_point_group(tmp_path):
    """A package installed with a ``cifarconv.backends`` entry point: its backend is there
    without any import, the way pytest finds its plugins (in a subprocess)."""
    (tmp_path / "myconv.py").write_text(ENTRY_POINT_PLUGIN)
    info = tmp_path / "myconv-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myconv\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cifarconv.backends]\nfromentrypoint = myconv\n")
    code = textwrap.dedent("""
        import torch, cifarconv
        x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
        y = cifarconv.conv2d(x, w, backend="fromentrypoint")
        print(cifarconv.describe_backend("fromentrypoint").splitlines()[2])
    """)
    done = run("-c", code, env={"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])})
    assert done.returncode == 0, done.stderr
    assert "registered by: entry point fromentrypoint (myconv)" in done.stdout


# --- --plugin on the trainer and the benchmark --------------------------------------------------

OTHER_PLUGIN = '''
import cifarconv
from cifarconv.backends import custom

cifarconv.register_backend("other", custom.conv2d)
'''


def test_the_trainer_runs_a_plugin_backend_and_its_run_imports_the_plugin_again(tmp_path):
    """--plugin adds --conv names; config.json records the plugin; --eval and --resume import it
    again, and stop with one line when it is gone or no longer registers the backend."""
    sys.path.insert(0, str(ROOT / "tests"))
    from synthetic_cifar import write_cifar

    data = write_cifar(tmp_path / "data", train_per_class=4, test_per_class=2)
    plugin, out = tmp_path / "wino.py", tmp_path / "run"
    plugin.write_text(WINOGRAD.read_text())
    common = ["--device", "cpu", "--data-dir", str(data)]
    train = ["-m", "cifarconv.train", "--model", "cnn5-padded", "--epochs", "1", "--batch-size", "8", *common]

    done = run(*train, "--conv", "torch,winograd")
    assert done.returncode == 2 and "unknown conv backend winograd" in done.stderr  # not without the plugin
    done = run(*train, "--plugin", str(plugin), "--conv", "torch,winograd", "--out", str(out))
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["conv"] == ["torch", "winograd"]
    assert config["plugins"] == [{"plugin": str(plugin), "path": str(plugin.resolve()), "backends": ["winograd"]}]
    records = json.loads((out / "results.json").read_text())
    assert [r["conv"] for r in records] == ["torch", "winograd"]

    evaluate = ["-m", "cifarconv.train", "--eval", str(out), *common]
    done = run(*evaluate, "--conv", "winograd,torch")  # no --plugin: the run's own
    assert done.returncode == 0, done.stderr
    assert "winograd" in done.stdout

    plugin.write_text(OTHER_PLUGIN)
    done = run(*evaluate, "--conv", "torch")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (f"the run in {out} used backend 'winograd' from plugin '{plugin}', which no longer registers it "
            "(it registers: other)") in done.stderr

    plugin.unlink()
    done = run("-m", "cifarconv.train", "--resume", str(out))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"the run in {out} used plugin '{plugin}', which cannot be imported now" in done.stderr
    moved = tmp_path / "moved.py"
    moved.write_text(WINOGRAD.read_text())
    done = run(*evaluate, "--conv", "winograd", "--plugin", str(moved))  # its new place
    assert done.returncode == 0, done.stderr


def test_a_broken_plugin_is_one_line_for_the_trainer_and_the_benchmark(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import cifarconv\nraise ImportError('needs numba')\n")
    message = f"plugin '{broken}' failed to import: ImportError: needs numba"
    for done in (run("-m", "cifarconv.train", "--plugin", str(broken), "--summary"),
                 run(str(ROOT / "benchmarks" / "conv_bench.py"), "--plugin", str(broken), "--quick")):
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert message in done.stderr


def test_the_benchmark_times_a_plugin_backend_and_records_the_plugin(tmp_path):
    out = tmp_path / "bench.json"
    done = run(str(ROOT / "benchmarks" / "conv_bench.py"), "--device", "cpu", "--plugin", str(WINOGRAD), "--backends",
               "torch,winograd", "--shape", "2,8,8,8,8,3", "--quick", "--no-model", "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["settings"]["plugins"] == {str(WINOGRAD): ["winograd"]}
    rows = [r for r in result["results"] if r["backend"] == "winograd"]
    assert {r["pass"] for r in rows} >= {"fwd", "dgrad", "wgrad"} and all(r["ms"] > 0 for r in rows)


TRANSPOSED_PLUGIN = '''
import cifarconv
from cifarconv.backends import custom


@cifarconv.register_backend("transposed")
def conv2d(x, w, bias, stride, padding, dilation, groups):
    return custom.conv2d(x, w.transpose(-1, -2), bias, stride, padding, dilation, groups)
'''


def test_the_error_benchmark_measures_each_backend_against_float64(tmp_path):
    """benchmarks/backend_error.py: Winograd's float32 error is torch's order; a wrong backend's is not."""
    plugin, out = tmp_path / "transposed.py", tmp_path / "err.json"
    plugin.write_text(TRANSPOSED_PLUGIN)
    done = run(str(ROOT / "benchmarks" / "backend_error.py"), "--plugin", str(WINOGRAD), "--plugin", str(plugin),
               "--backends", "torch,winograd,transposed", "--shape", "2,8,8,8,8,3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    errors = {r["backend"]: r for r in result["results"]}
    assert set(errors) == {"torch", "winograd", "transposed"}
    assert result["plugins"] == {str(WINOGRAD): ["winograd"], str(plugin): ["transposed"]}
    for backend in ("torch", "winograd"):
        assert all(0 < errors[backend][p] < 1e-5 for p in ("fwd", "dgrad", "wgrad")), errors[backend]
    assert errors["transposed"]["fwd"] > 0.1  # its forward is wrong; its backward is custom's, right
    assert errors["transposed"]["dgrad"] < 1e-5
