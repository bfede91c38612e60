"""benchmarks/: cpp's CPU GEMM paths as rows, the machine's FMA peak, the seed layers, the goal table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from cifarconv.backends import extension

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import conv_bench  # noqa: E402
import cpu_gemm  # noqa: E402
import cpu_goal  # noqa: E402
import layers  # noqa: E402

pytestmark = pytest.mark.skipif(extension._C is None, reason="the extension is not built")


def test_cpp_gets_one_row_per_gemm_path():
    args = conv_bench.parse_args(["--device", "cpu", "--backends", "torch,cpp"])
    widest = cpu_gemm.resolve("auto")
    assert args.backends == ["torch", "cpp[aten]"] + ([f"cpp[{widest}]"] if widest != "aten" else [])
    args = conv_bench.parse_args(["--device", "cpu", "--backends", "torch,cpp", "--cpu-gemm", "generic,aten"])
    assert args.backends == ["torch", "cpp[generic]", "cpp[aten]"]
    assert conv_bench.parse_args(["--device", "cpu", "--backends", "torch,custom"]).backends == ["torch", "custom"]


@pytest.mark.parametrize("argv, message", [
    (["--backends", "torch,cpp", "--cpu-gemm", "sse9"], "--cpu-gemm: 'sse9' is not a path this CPU runs"),
    (["--backends", "torch,custom", "--cpu-gemm", "aten"], "--cpu-gemm: only for cpp on cpu"),
])
def test_bad_cpu_gemm_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        conv_bench.parse_args(["--device", "cpu", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_rows_run_on_their_path():
    """A cpp[<path>] row switches the path for each call and restores the switch after."""
    seen = []
    for path in extension.cpu_gemm_paths():
        cpu_gemm.on_path(f"cpp[{path}]", lambda: seen.append(extension.cpu_gemm()))()
    assert seen == extension.cpu_gemm_paths()
    assert extension.set_cpu_gemm(None) is None  # nothing left switched
    assert cpu_gemm.backend_name("cpp[avx2]") == "cpp" and cpu_gemm.path_of("cpp") is None


def test_quick_run_reports_paths_peak_and_fractions(tmp_path):
    out = tmp_path / "r.json"
    status = conv_bench.main(["--device", "cpu", "--backends", "torch,cpp", "--cpu-gemm", "aten,generic",
                              "--shape", "2,8,8,8,16,3", "--quick", "--no-model", "--out", str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    m = result["machine"]
    assert m["cpu_model"] is not None and m["torch_threads"] == torch.get_num_threads()
    assert m["cpu_gemm_paths"] == extension.cpu_gemm_paths()
    peak = m["fma_peak_gflops"]
    assert peak["at_run_threads"] > 0 and set(peak["per_path"]) == set(extension.cpu_gemm_paths()) - {"aten"}
    rows = [r for r in result["results"] if r["pass"] in ("fwd", "dgrad", "wgrad", "sum")]
    assert {r["backend"] for r in rows} == {"torch", "cpp[aten]", "cpp[generic]"}
    for r in rows:
        assert r["error"] is None
        assert r["gflops"] == pytest.approx(r["tflops"] * 1e3)
        assert r["fma_peak_fraction"] == pytest.approx(r["gflops"] / peak["at_run_threads"])


def test_seed_layers():
    found = layers.layer_set("seeds")
    names = [(model, layer.name) for model, layer, _ in found]
    assert names[:3] == [("cnn3", "3->8 k5 s1 bias 32x32"), ("cnn3", "8->16 k5 s1 bias 16x16"),
                         ("cnn3", "16->32 k5 s1 bias 8x8")]
    assert [layer.c_out for model, layer, _ in found if model == "cnn5-padded"] == [8, 32, 64, 128, 256]
    assert [layer.padding for model, layer, _ in found if model == "cnn5-unpadded"] == [(0, 0)]
    assert "seeds" in conv_bench.parse_args(["--device", "cpu", "--layers", "seeds"]).layers


def test_goal_table_sums_and_spread(tmp_path, capsys):
    """cpu_goal.py: two tiny runs, then its weighted totals and spread, checked by hand."""
    out = tmp_path / "goal.json"
    argv = ["--batch-size", "2", "--runs", "2", "--warmup", "0", "--reps", "1", "--layers", "seeds",
            "--layouts", "nchw", "--cpu-gemm", "aten", "--out", str(out)]
    assert cpu_goal.main(argv) == 0
    data = json.loads(out.read_text())
    (summary,) = data["summaries"]
    runs = data["runs"]["seeds nchw b2"]
    assert len(runs) == 2
    for pass_name in ("fwd", "sum"):
        want = []
        for run in runs:
            cpp = {(r["model"], r["layer"]): r["ms"] * r["count"] for r in run["results"]
                   if r["backend"] == "cpp[aten]" and r["pass"] == pass_name}
            ref = {(r["model"], r["layer"]): r["ms"] * r["count"] for r in run["results"]
                   if r["backend"] == "torch" and r["pass"] == pass_name}
            want.append(sum(cpp.values()) / sum(ref.values()))
        got = summary["totals"]["cpp[aten]"][pass_name]
        assert got["runs"] == pytest.approx(want) and got["min"] == min(want) and got["max"] == max(want)
    assert "cpp / torch, weighted sums over the layers" in capsys.readouterr().out
