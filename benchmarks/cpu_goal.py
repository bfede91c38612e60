#!/usr/bin/env python3
"""cpp's own CPU GEMM against oneDNN, as issue 27's goal table asks: several runs, and their spread.

    python benchmarks/cpu_goal.py --batch-size 16 --out benchmarks/results/cpu-<machine>-goal-b16.json
    python benchmarks/cpu_goal.py --batch-size 128 --runs 3 --reps 5 --out ...-b128.json
    python benchmarks/cpu_goal.py --summary benchmarks/results/cpu-<machine>-goal-b*.json

Each run is one ``conv_bench.py`` run (float32, backends torch and cpp on the paths
``--cpu-gemm``, no training step), for every layer set and memory format asked, one after
the other; ``--runs`` repeats the whole list, so the runs of one setting are minutes apart.
The JSON holds every run's full result and a summary per setting, which ``--summary``
prints (and ``docs/cpu-gemm.md`` quotes):

- cpp ÷ torch (oneDNN), per pass and for fwd + dgrad + wgrad, summed over the layer set
  weighted by each layer's count in its model, per run: min, median and max over the runs;
- per layer and pass: cpp's median ratio to torch and its fraction of the FMA peak.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402

PASSES = ("fwd", "dgrad", "wgrad", "sum")
CONV_BENCH = Path(__file__).resolve().with_name("conv_bench.py")
LAYOUTS = {"nchw": [], "channels_last": ["--channels-last"]}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/cpu_goal.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:5]))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layers", default="resnet18,seeds", help="comma-separated layer sets (resnet18,seeds)")
    p.add_argument("--layouts", default="nchw,channels_last", help="comma-separated: nchw, channels_last")
    p.add_argument("--cpu-gemm", default="aten,auto", help="cpp's paths, as conv_bench.py --cpu-gemm")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--out", type=Path)
    p.add_argument("--summary", nargs="+", type=Path, metavar="JSON", help="print the summaries of these files")
    args = p.parse_args(argv)
    if args.summary is None and args.out is None:
        p.error("--out is required to run (or --summary to print)")
    return args


def ms_by(result: dict, backend: str) -> dict:
    """{(model, layer, pass): (ms, count)} of one backend in one conv_bench result."""
    return {(r["model"], r["layer"], r["pass"]): (r["ms"], r["count"]) for r in result["results"]
            if r["backend"] == backend and r["pass"] in PASSES}


def total_ratio(result: dict, backend: str, pass_name: str) -> float | None:
    """Σ count · ms(backend) / Σ count · ms(torch) over the layers, for one pass."""
    mine, ref = ms_by(result, backend), ms_by(result, "torch")
    keys = [k for k in ref if k[2] == pass_name]
    if any(mine.get(k, (None,))[0] is None for k in keys):
        return None
    return sum(mine[k][0] * mine[k][1] for k in keys) / sum(ref[k][0] * ref[k][1] for k in keys)


def spread(values: list[float | None]) -> dict | None:
    if not values or any(v is None for v in values):
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "runs": values}


def summarize(setting: dict, runs: list[dict]) -> dict:
    backends = [b for b in runs[0]["settings"]["backends"] if b != "torch"]
    totals = {b: {p: spread([total_ratio(r, b, p) for r in runs]) for p in PASSES} for b in backends}
    layers = {}
    for b in backends:
        for rec in runs[0]["results"]:
            if rec["backend"] != b or rec["pass"] not in PASSES:
                continue
            key = f"{rec['model']} {rec['layer']}"
            same = [next(x for x in r["results"] if x["backend"] == b and x["model"] == rec["model"]
                         and x["layer"] == rec["layer"] and x["pass"] == rec["pass"]) for r in runs]
            ratios = [x["ratio_to_torch"] for x in same]
            fractions = [x["fma_peak_fraction"] for x in same]
            layers.setdefault(b, {}).setdefault(key, {})[rec["pass"]] = {
                "count": rec["count"],
                "ratio_to_torch": spread(ratios),
                "fma_peak_fraction": spread(fractions),
            }
    return {**setting, "totals": totals, "per_layer": layers}


def run(args) -> dict:
    settings = [{"layers": layer_set, "layout": layout, "batch_size": args.batch_size}
                for layer_set in args.layers.split(",") for layout in args.layouts.split(",")]
    for s in settings:
        if s["layout"] not in LAYOUTS:
            raise SystemExit(f"--layouts: {s['layout']!r} is not one of {', '.join(LAYOUTS)}")
    results = {i: [] for i in range(len(settings))}
    tmp = args.out.with_suffix(".run.json")
    for r in range(args.runs):
        for i, s in enumerate(settings):
            print(f"\n=== run {r + 1}/{args.runs}: {s['layers']} {s['layout']} batch {s['batch_size']}", flush=True)
            argv = ["--device", "cpu", "--backends", "torch,cpp", "--cpu-gemm", args.cpu_gemm, "--layers", s["layers"],
                    "--batch-size", str(s["batch_size"]), "--warmup", str(args.warmup), "--reps", str(args.reps),
                    "--no-model", "--no-compile-time", "--out", str(tmp), *LAYOUTS[s["layout"]]]
            if subprocess.run([sys.executable, str(CONV_BENCH), *argv]).returncode != 0:
                raise SystemExit(f"conv_bench.py {' '.join(argv)} failed")
            results[i].append(json.loads(tmp.read_text()))
    tmp.unlink(missing_ok=True)
    first = results[0][0]
    return {
        "what": "cpp (own GEMM and at::mm paths) / torch (oneDNN) per pass, float32, benchmarks/cpu_goal.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": first["device"], "machine": first["machine"], "versions": first["versions"],
        "command": "python benchmarks/cpu_goal.py " + " ".join(sys.argv[1:]),
        "summaries": [summarize(s, results[i]) for i, s in enumerate(settings)],
        "runs": {f"{s['layers']} {s['layout']} b{s['batch_size']}": results[i] for i, s in enumerate(settings)},
    }


def fmt(sp: dict | None, percent: bool = False) -> str:
    if sp is None:
        return "-"
    scale, unit = (100.0, " %") if percent else (1.0, "x")
    return f"{sp['median'] * scale:.2f}{unit} ({sp['min'] * scale:.2f}–{sp['max'] * scale:.2f})"


def print_summary(path: Path) -> None:
    data = json.loads(path.read_text())
    m = data["machine"]
    print(f"\n{path}: {data['device']} | {' '.join(m['isa_flags'])} | FMA peak "
          f"{m['fma_peak_gflops']['at_run_threads']:.0f} GFLOP/s at {m['torch_threads']} threads ({m['fma_peak_gflops']['path']})")
    for s in data["summaries"]:
        runs = len(next(iter(next(iter(s["totals"].values())).values()))["runs"])
        print(f"\n{s['layers']} {s['layout']} batch {s['batch_size']}: cpp / torch, weighted sums over the layers, "
              f"median (min–max) of {runs} runs")
        print(f"  {'backend':12s} " + " ".join(f"{p:>24s}" for p in PASSES))
        for b, t in s["totals"].items():
            print(f"  {b:12s} " + " ".join(f"{fmt(t[p]):>24s}" for p in PASSES))
        for b, layers in s["per_layer"].items():
            print(f"  {b}: per layer, x torch and % of FMA peak (medians)")
            for key, passes in layers.items():
                cells = [f"{p} {passes[p]['ratio_to_torch']['median']:.2f}x "
                         f"{passes[p]['fma_peak_fraction']['median'] * 100:3.0f}%" for p in PASSES[:3]
                         if passes[p]["ratio_to_torch"] and passes[p]["fma_peak_fraction"]]
                print(f"    {key:38s} n={passes['fwd']['count']:<2d} " + " | ".join(cells))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.summary is not None:
        for path in args.summary:
            print_summary(path)
        return 0
    result = run(args)
    report.write_json(args.out, result)
    print(f"\nwrote {args.out}")
    print_summary(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
