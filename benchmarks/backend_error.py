#!/usr/bin/env python3
"""How far each backend's float32 result lies from the exact one, per conv layer and pass.

    python benchmarks/backend_error.py --plugin examples/winograd.py --backends torch,custom,winograd --layers seeds
    python benchmarks/backend_error.py --backends torch,cpp --shape 16,64,32,32,64,3 --out err.json

For each layer, the inputs are drawn once (as ``conv_bench.py`` draws them); each backend's
forward, grad input and grad weight run in float32, and torch's in float64 give the
reference.  The error of a pass is max |result - reference| / max |reference| over its
outputs; ``torch`` in float32 is the yardstick (oneDNN / cuDNN rounding the same sums).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import layers  # noqa: E402
import passes  # noqa: E402
from report import versions  # noqa: E402

from cifarconv.perf.layer import PASSES  # noqa: E402
from cifarconv.registry import PluginError, load_plugin  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/backend_error.py", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backends", default="torch,custom", help="comma-separated; torch is always included")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="a Python file or module that registers conv backends; repeatable")
    p.add_argument("--layers", choices=layers.LAYER_SETS, default=layers.DEFAULT_SET)
    p.add_argument("--shape", help=f"one layer instead: {layers.SHAPE_FORMAT}")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.device = torch.device(args.device)
    try:
        args.plugins = {spec: load_plugin(spec) for spec in args.plugin}
        args.backends = passes.pick_backends(args.backends, args.device)
        if args.shape is not None:
            args.batch_size, layer = layers.parse_shape(args.shape)
            args.layer_list = [("shape", layer, 1)]
        else:
            args.layer_list = layers.layer_set(args.layers)
    except (PluginError, ValueError) as e:
        p.error(str(e))
    return args


def relative_error(got: tuple, want: tuple) -> float:
    diff = max(float((g.double() - r).abs().max()) for g, r in zip(got, want))
    return diff / max(float(r.abs().max()) for r in want)


def layer_errors(layer, batch: int, backends: list[str], device: torch.device) -> dict:
    """{backend: {pass: relative error of its float32 result against torch's float64}}."""
    x, w, b, dy = passes.layer_inputs(layer, batch)

    def on(dtype):
        return [t if t is None else t.to(device, dtype) for t in (x, w, b, dy)]

    with torch.no_grad():
        exact = {name: fn() for name, fn in passes.pass_functions("torch", layer, *on(torch.float64),
                                                                  device).items()}
        return {backend: {name: relative_error(fn(), exact[name])
                          for name, fn in passes.pass_functions(backend, layer, *on(torch.float32), device).items()}
                for backend in backends}


def main(argv=None) -> int:
    args = parse_args(argv)
    records = []
    print(f"float32 error against torch's float64: max |result - exact| / max |exact|, batch {args.batch_size}")
    print(f"{'model':<14}{'layer':<28}{'backend':<12}" + "".join(f"{name:>10}" for name in PASSES))
    for model, layer, _ in args.layer_list:
        errors = layer_errors(layer, args.batch_size, args.backends, args.device)
        for backend, by_pass in errors.items():
            print(f"{model:<14}{layer.name:<28}{backend:<12}" + "".join(f"{by_pass[p]:>10.1e}" for p in PASSES))
            records.append({"model": model, "layer": layer.name, "backend": backend, **by_pass})
    if args.out:
        args.out.write_text(json.dumps({
            "what": __doc__.splitlines()[0], "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "device": str(args.device), "batch_size": args.batch_size,
            "backends": args.backends, "plugins": args.plugins, "results": records}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
