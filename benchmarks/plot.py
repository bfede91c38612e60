#!/usr/bin/env python3
"""Draw a conv_bench.py JSON as a PNG: per pass a panel of bars per layer, one colour per backend.

    python benchmarks/plot.py r.json              # writes r.png
    python benchmarks/plot.py r.json -o out.png

Bars are median ms (log scale); a black tick on each layer marks its roofline floor;
a missing bar is a backend that failed its correctness check.  The last panel is the
ResNet-18 training step, if the run measured it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PASS_TITLES = {"fwd": "forward", "dgrad": "grad input", "wgrad": "grad weight", "sum": "sum of the three",
               "train_step": "ResNet-18 training step"}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = result["results"]
    backends = list(dict.fromkeys(r["backend"] for r in records))
    passes = [p for p in PASS_TITLES if any(r["pass"] == p for r in records)]
    groups = list(dict.fromkeys((r["model"], r["layer"]) for r in records if r["pass"] != "train_step"))
    width = 0.8 / max(len(backends), 1)
    colours = {b: f"C{i}" for i, b in enumerate(backends)}

    fig, axes = plt.subplots(len(passes), 1, figsize=(max(6.0, 1.0 + 0.9 * len(groups)), 3.2 * len(passes)),
                             squeeze=False)
    for ax, pass_name in zip(axes[:, 0], passes):
        keys = [("resnet18", "resnet18")] if pass_name == "train_step" else groups
        by_key = {(r["model"], r["layer"], r["backend"]): r for r in records if r["pass"] == pass_name}
        for i, backend in enumerate(backends):
            xs, ys = [], []
            for j, key in enumerate(keys):
                r = by_key.get((*key, backend))
                if r is not None and r["ms"] is not None:
                    xs.append(j + (i - (len(backends) - 1) / 2) * width)
                    ys.append(r["ms"])
            ax.bar(xs, ys, width, color=colours[backend], label=backend)
        floors = [(j, by_key.get((*key, "torch"), {}).get("floor_ms")) for j, key in enumerate(keys)]
        floors = [(j, f) for j, f in floors if f]
        if floors:
            ax.scatter([j for j, _ in floors], [f for _, f in floors], marker="_", s=400, color="black",
                       label="roofline floor", zorder=3)
        values = [r["ms"] for r in by_key.values() if r["ms"]] + [f for _, f in floors]
        if pass_name != "train_step" and values:  # layers differ by orders of magnitude; one model step does not
            ax.set_yscale("log")
            ax.set_ylim(min(values) / 3, max(values) * 2)
        ax.set_ylabel("ms (median)")
        ax.set_title(PASS_TITLES[pass_name])
        ax.set_xticks(range(len(keys)))
        multi_model = len({m for m, _ in keys}) > 1
        ax.set_xticklabels([f"{m} {layer}" if multi_model else layer for m, layer in keys],
                           rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncol=len(backends) + 1)
    s = result["settings"]
    fig.suptitle(f"{result['device']} | {s['dtype']}{' channels_last' if s['channels_last'] else ''} | "
                 f"batch {s['batch_size']} | torch {result['versions']['torch']} | {result['date'][:10]}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/plot.py", description=__doc__.splitlines()[0])
    p.add_argument("json", type=Path, help="a file written by conv_bench.py --out")
    p.add_argument("-o", "--out", type=Path, help="the PNG (default: the JSON's path with .png)")
    args = p.parse_args(argv)
    try:
        result = json.loads(args.json.read_text())
    except (OSError, ValueError) as e:
        p.error(f"cannot read {args.json}: {e}")
    out = args.out or args.json.with_suffix(".png")
    plot(result, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
