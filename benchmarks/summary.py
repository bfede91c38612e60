#!/usr/bin/env python3
"""A conv_bench.py JSON as a Markdown table: each layer's time per backend, and the totals.

    python benchmarks/summary.py benchmarks/results/cpu-epyc-2core.json

One row per distinct layer: its count in the model and, per backend, the sum of its three
passes (forward, grad input, grad weight) in ms with its time ÷ torch's.  Then the model's
convs weighted by their counts, per pass and summed, and the training step when the run
timed it.  benchmarks/results/README.md holds this table for each committed run, and
tests/test_bench.py checks that it still matches its file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PASSES = ("fwd", "dgrad", "wgrad")
PASS_NAMES = {"fwd": "forward", "dgrad": "grad input", "wgrad": "grad weight", "sum": "the three passes"}


def _cell(ms: float | None, torch_ms: float | None) -> str:
    if ms is None:
        return "error"
    return f"{ms:.2f}" if not torch_ms or ms == torch_ms else f"{ms:.2f} ({ms / torch_ms:.2f})"


def summary(run: dict) -> str:
    """The Markdown table of one conv_bench.py result (the dict its --out wrote)."""
    records = run["results"]
    backends = list(dict.fromkeys(r["backend"] for r in records))
    ms = {(r["backend"], r["layer"], r["pass"]): r["ms"] for r in records}
    layers = list(dict.fromkeys((r["layer"], r["count"]) for r in records if r["pass"] in PASSES))
    lines = ["| layer | count | " + " | ".join(f"{b} ms" + ("" if b == "torch" else " (time ÷ torch)")
                                                for b in backends) + " |",
             "| --- | --- | " + " | ".join("---" for _ in backends) + " |"]
    for layer, count in layers:
        lines.append(f"| {layer} | {count} | "
                     + " | ".join(_cell(ms.get((b, layer, "sum")), ms.get(("torch", layer, "sum"))) for b in backends)
                     + " |")
    convs = sum(count for _, count in layers)
    for name in (*PASSES, "sum"):
        def total(backend):
            values = [ms.get((backend, layer, name)) for layer, _ in layers]
            return None if None in values else sum(v * count for v, (_, count) in zip(values, layers))
        label = f"all {convs} convs, {PASS_NAMES[name]}"
        lines.append(f"| **{label}** | | " + " | ".join(_cell(total(b), total("torch")) for b in backends) + " |")
    steps = {r["backend"]: r["ms"] for r in records if r["pass"] == "train_step"}
    if steps:
        lines.append(f"| **{records[-1]['layer']} training step** | | "
                     + " | ".join(_cell(steps.get(b), steps.get("torch")) for b in backends) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/summary.py", description=__doc__.splitlines()[0])
    p.add_argument("json", type=Path, help="a file written by conv_bench.py --out")
    args = p.parse_args(argv)
    try:
        run = json.loads(args.json.read_text())
        print(summary(run))
    except (OSError, ValueError, KeyError) as e:
        p.error(f"{args.json}: not a conv_bench.py result ({e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
