"""benchmarks/: the --quick CPU pass CI runs, the plot, the layer sets, and a wrong kernel caught."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
import conv_bench  # noqa: E402
import layers  # noqa: E402
import passes  # noqa: E402
from settings import TOLERANCE, Settings  # noqa: E402

from cifarconv.perf import roofline  # noqa: E402

PASSES = ("fwd", "dgrad", "wgrad", "sum")
FIELDS = ("backend", "model", "layer", "count", "pass", "ms", "tflops", "ratio_to_torch", "peak_memory_bytes",
          "floor_ms", "batch_size", "max_rel_error", "error")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")  # one thread: a smoke run, steady on a shared 2-core machine
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """What CI runs: the README's --quick CPU command with JSON and PNG output."""
    tmp = tmp_path_factory.mktemp("bench")
    proc = run_script("benchmarks/conv_bench.py", "--device", "cpu", "--backends", "torch,custom", "--quick",
                      "--out", "tmp.json", "--plot", "tmp.png", cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp, proc, json.loads((tmp / "tmp.json").read_text())


def test_quick_run_json(quick_run):
    _, _, result = quick_run
    assert result["device"] and result["date"].startswith("20")
    assert result["versions"]["torch"] == torch.__version__ and result["versions"]["cifarconv"]
    s = result["settings"]
    assert (s["device_type"], s["dtype"], s["batch_size"], s["quick"]) == ("cpu", "float32", 2, True)
    assert s["backends"] == ["torch", "custom"] and s["reps"] == 3
    assert result["roofline"]["peak_tflops"] > 0 and result["roofline"]["bandwidth_gbs"] > 0

    records = result["results"]
    assert all(set(FIELDS) <= set(r) for r in records)
    assert all(r["error"] is None and r["ms"] > 0 for r in records)
    conv = [r for r in records if r["pass"] != "train_step"]
    layer_names = list(dict.fromkeys(r["layer"] for r in conv))
    assert layer_names == [layer.name for _, layer, _ in layers.layer_set("resnet18")[:conv_bench.QUICK_LAYERS]]
    assert len(conv) == len(layer_names) * 2 * len(PASSES)
    for r in conv:
        assert r["tflops"] > 0 and r["floor_ms"] > 0 and r["peak_memory_bytes"] is None  # CPU: not measured
        if r["backend"] == "torch":
            assert r["ratio_to_torch"] == 1.0
        else:
            assert r["max_rel_error"] <= TOLERANCE[torch.float32]
    for backend in ("torch", "custom"):
        for name in layer_names:
            ms = {r["pass"]: r["ms"] for r in conv if r["backend"] == backend and r["layer"] == name}
            assert ms["sum"] == pytest.approx(ms["fwd"] + ms["dgrad"] + ms["wgrad"])
    steps = [r for r in records if r["pass"] == "train_step"]
    assert [(r["backend"], r["layer"]) for r in steps] == [("torch", "resnet18"), ("custom", "resnet18")]
    assert steps[0]["ratio_to_torch"] == 1.0 and steps[1]["ratio_to_torch"] > 0


def test_quick_run_table_and_png(quick_run):
    tmp, proc, _ = quick_run
    assert "TFLOP/s" in proc.stdout and "time ÷ torch" in proc.stdout and "train_step" in proc.stdout
    assert "3->64 k3 s1 32x32" in proc.stdout
    assert (tmp / "tmp.png").read_bytes()[:8] == PNG_MAGIC


def test_time_over_torch_is_above_one_for_a_slower_backend():
    """ratio_to_torch, printed as "time ÷ torch", is the backend's time ÷ torch's: 3 ms against 1 ms is 3."""
    from report import COLUMNS, add_ratios, record, table_rows

    base = {"model": "m", "layer": "l", "count": 1, "batch_size": 2}
    records = [record(base, backend, "fwd", ms, 1e9, None, None, None, 0.0, None)
               for backend, ms in (("torch", 1.0), ("slow", 3.0), ("fast", 0.5))]
    add_ratios(records)
    assert [r["ratio_to_torch"] for r in records] == [1.0, 3.0, 0.5]
    column = COLUMNS.index("time ÷ torch")
    cells = [row[column:column + len("time ÷ torch")].strip() for row in table_rows(records)]
    assert cells == ["1.00", "3.00", "0.50"]


def test_plot_script(quick_run):
    tmp, _, _ = quick_run
    proc = run_script("benchmarks/plot.py", "tmp.json", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert (tmp / "tmp.png").read_bytes()[:8] == PNG_MAGIC  # the JSON's path with .png


def test_layer_sets_follow_the_models():
    sets = {name: layers.layer_set(name) for name in ("resnet18", "resnet9", "fastnet", "cnn3", "cnn5-padded",
                                                      "cnn5-unpadded", "vit")}
    # ResNet-18: stem + 16 block convs + 3 shortcuts; ResNet-9: 8 convs; the fast net: whitening + 6; the seed
    # projects' CNNs: 3 and 5; the ViT: its stem's two 3x3 convs and one 1x1.
    assert {name: sum(c for _, _, c in s) for name, s in sets.items()} == {
        "resnet18": 20, "resnet9": 8, "fastnet": 7, "cnn3": 3, "cnn5-padded": 5, "cnn5-unpadded": 5, "vit": 3}
    assert len(sets["resnet18"]) == 11 and len(set(layer for _, layer, _ in sets["resnet18"])) == 11
    names = [layer.name for _, layer, _ in sets["resnet18"]]
    assert names[:3] == ["3->64 k3 s1 32x32", "64->64 k3 s1 32x32", "64->128 k3 s2 32x32"]
    assert "64->128 k1 s2 32x32" in names  # padding shown only when not (k-1)//2
    assert sets["fastnet"][0][1].name == "3->24 k2 s1 bias 32x32"
    assert len(layers.layer_set("all")) == sum(len(s) for s in sets.values())


def test_flops_bytes_and_floor():
    batch, layer = layers.parse_shape("2,64,32,32,128,3,2")
    assert layer.out_hw() == (16, 16)
    assert layer.flops(batch) == 2 * 2 * 128 * 16 * 16 * 64 * 9
    assert layer.bytes(batch, 4)["implicit"]["fwd"] == 4 * (2 * 64 * 32 * 32 + 128 * 64 * 9 + 2 * 128 * 16 * 16)
    roof = roofline.Roofline(peak_tflops=1.0, bandwidth_gbs=1.0, matmul_n=1, copy_bytes=1)
    assert roof.floor_ms(10**12, 1) == pytest.approx(1e3)  # compute-bound
    assert roof.floor_ms(1, 10**9) == pytest.approx(1e3)  # memory-bound


@pytest.mark.parametrize("text, message", [
    ("8,64,32", "6 to 8 integers"),
    ("8,64,32,32,128,x", "integers"),
    ("8,64,32,32,128,3,0", ">= 1"),
    ("2,8,4,4,8,7,1,0", "does not fit"),
])
def test_shape_errors_are_clear(text, message):
    with pytest.raises(ValueError, match=message):
        layers.parse_shape(text)


def test_no_benchmark_module_imports_conv_bench():
    """conv_bench.py is an entry point: no module beside it imports it (they import what they use
    from where it lives: settings.py, passes.py, report.py ...)."""
    importers = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            importers += [path.name for name in names if name == "conv_bench"]
    assert importers == []


@pytest.mark.parametrize("argv, message", [
    (["--shape", "8,64,32"], "--shape wants N,C_in,H,W,C_out,k"),
    (["--shape", "8,64,32,32,64,3", "--batch-size", "4"], "sets the batch size to 8"),
    (["--backends", "torch,nope"], "unknown conv backend 'nope'"),
    (["--backends", "cuda"], "'cuda' cannot run on cpu"),
    (["--backends", "auto"], "not 'auto'"),
])
def test_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        conv_bench.parse_args(["--device", "cpu", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def wrong_custom(monkeypatch):
    """Make ``custom``'s forward return zeros; its other ops stay right."""
    real = passes.ops_for

    def ops_for(backend, device):
        ops = real(backend, device)
        if backend != "custom":
            return ops
        return SimpleNamespace(conv2d=lambda x, w, b, *conv: torch.zeros_like(ops.conv2d(x, w, b, *conv)),
                               conv2d_grad_input=ops.conv2d_grad_input, conv2d_grad_weight=ops.conv2d_grad_weight)
    monkeypatch.setattr(passes, "ops_for", ops_for)  # where pass_functions looks it up


def test_wrong_kernel_gets_no_time(wrong_custom):
    batch, layer = layers.parse_shape("2,8,8,8,8,3")
    s = Settings(torch.device("cpu"), torch.float32, False, batch, warmup=0, reps=1, quick=True)
    roof = roofline.Roofline(peak_tflops=1.0, bandwidth_gbs=1.0, matmul_n=1, copy_bytes=1)
    records = {(r["backend"], r["pass"]): r for r in conv_bench.bench_layer("shape", layer, 1, ["torch", "custom"],
                                                                            s, roof)}
    wrong = records["custom", "fwd"]
    assert wrong["ms"] is None and wrong["tflops"] is None and "differs from torch" in wrong["error"]
    assert records["custom", "sum"]["ms"] is None and "fwd failed" in records["custom", "sum"]["error"]
    assert records["custom", "dgrad"]["error"] is None and records["custom", "dgrad"]["ms"] > 0
    assert all(records["torch", p]["error"] is None for p in PASSES)


def test_wrong_kernel_fails_the_run(wrong_custom, capsys):
    status = conv_bench.main(["--device", "cpu", "--backends", "torch,custom", "--shape", "2,8,8,8,8,3",
                              "--quick", "--no-model"])
    assert status == 1
    captured = capsys.readouterr()
    assert "ERROR: differs from torch" in captured.out
    assert "custom shape 8->8 k3 s1 8x8 fwd" in captured.err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_DEBUG and /proc are Linux's")
def test_bad_calls_report_on_cpu(tmp_path):
    """`make gpu-check`'s first check (tools/bad_calls.py), run on the CPU build for one
    call: it raises cleanly, and the report names where the extension's std::ostream
    integer formatting (what the crashing messages had in common) was bound."""
    from cifarconv.registry import unavailable_reason
    from conftest import REQUIRED

    reason = unavailable_reason("cpp", "cpu")
    if reason is not None:
        (pytest.fail if "cpp" in REQUIRED else pytest.skip)(f"the extension is not built: {reason}")
    out = tmp_path / "bad-calls.json"
    proc = run_script("tools/bad_calls.py", "--device", "cpu", "--only", "channels", "--out", str(out), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert [c["id"].split("::")[-1] for c in report["calls"]] == ["test_ops_reject_bad_arguments[cpp-cpu-channels]"]
    assert report["calls"][0]["rc"] == 0 and report["crashes"] == []
    bound = {name: v["library"] for name, v in report["bindings"]["extension"].items()}
    insert_long = [lib for name, lib in bound.items() if "_M_insert<long>" in name or "_M_insertIlE" in name]
    assert insert_long and "libstdc++" in insert_long[0]
    assert report["abi"]["torch"] == torch.__version__ and report["abi"]["libstdcxx"]
