#!/usr/bin/env python3
"""Every cifarconv backend against torch's own convolution, per conv layer and pass.

    python benchmarks/conv_bench.py                     # all backends usable here, ResNet-18 layers
    python benchmarks/conv_bench.py --device cuda --dtype bfloat16 --channels-last --batch-size 512
    python benchmarks/conv_bench.py --device cpu --backends torch,custom,cpp --batch-size 16 --quick --out r.json
    python benchmarks/conv_bench.py --device cpu --backends torch,cpp --cpu-gemm aten,avx512 --layers seeds
    python benchmarks/plot.py r.json                    # or --plot: a PNG of the same table

For each layer, backend and pass (forward, grad input, grad weight, and their sum) it
checks the backend's result against torch's, then times it (median after warm-up) and
reports TFLOP/s, the ratio of its time to torch's, the roofline floor, the explicit-im2col
floor (columns written and read once plus the pass's GEMM, timed in the same run) and the
ratio to it, and, on CUDA, the peak memory.  On CPU, ``cpp`` gets one row per GEMM path
(``cpp[aten]``: im2col + at::mm; ``cpp[avx512]`` ...: the extension's own packed GEMM), and
every row its GFLOP/s and its fraction of the machine's FMA peak (measured here, by the
extension's register-only FMA loop).  Then one ResNet-18 training step per backend.  A
backend whose result differs from torch's gets an error instead of a time, and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, when imported from elsewhere
import cpu_gemm  # noqa: E402
import floor  # noqa: E402
import layers  # noqa: E402
import report  # noqa: E402
from checked_timing import check_and_time, safe_call  # noqa: E402
from passes import layer_inputs, pass_functions, pick_backends  # noqa: E402
from report import add_ratios, record, table_rows  # noqa: E402
from settings import Settings  # noqa: E402

import cifarconv  # noqa: E402
from cifarconv.perf import roofline  # noqa: E402
from cifarconv.perf.layer import PASSES  # noqa: E402  (fwd, dgrad, wgrad; "sum" adds the three)
from cifarconv.train.models import MODELS  # noqa: E402
from cifarconv.registry import PluginError, load_plugin  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODEL_TOLERANCE_FACTOR = 10  # the training step's logits pass through 20 convs, so rounding compounds
QUICK_LAYERS = 3


# ---------------------------------------------------------------- command line

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/conv_bench.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:6]))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda[:i] (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--channels-last", action="store_true", help="inputs, weights and grads in channels_last")
    p.add_argument("--batch-size", type=int, help="default: 16 on CPU, 512 on CUDA; 2 with --quick")
    p.add_argument("--backends", help="comma-separated (default: all usable on the device); torch is always included")
    p.add_argument("--cpu-gemm", help="CPU: the GEMM paths to time cpp on, one row each, e.g. aten,avx512 "
                                      "(default: aten and auto, the widest own path this CPU runs)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="a Python file or module that registers conv backends (cifarconv.register_backend); repeatable")
    p.add_argument("--layers", choices=layers.LAYER_SETS, default=layers.DEFAULT_SET,
                   help="whose conv layers (default: resnet18)")
    p.add_argument("--shape", help=f"one layer instead: {layers.SHAPE_FORMAT}; padding defaults to (k-1)//2, "
                                   "N is the batch size")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: the first {QUICK_LAYERS} layers, batch 2, warm-up 1, 3 reps, small roofline")
    p.add_argument("--warmup", type=int, help="warm-up calls (default 2; 1 with --quick)")
    p.add_argument("--reps", type=int, help="timed calls, median taken (default 10; 3 with --quick)")
    p.add_argument("--no-model", action="store_true", help="skip the ResNet-18 training step")
    p.add_argument("--no-compile-time", action="store_true",
                   help="skip compiling the triton kernels of one new geometry for sm_90 (off with --quick)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--plot", nargs="?", const=True, metavar="PNG",
                   help="draw the results as a PNG (default path: --out with .png, else conv_bench.png)")
    args = p.parse_args(argv)

    try:
        args.device = torch.device(args.device)
    except RuntimeError as e:
        p.error(f"--device: {e}")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available here")
    args.dtype = DTYPES[args.dtype]
    if args.device.type == "cpu" and args.dtype != torch.float32:
        warnings.warn(f"{args.dtype} on CPU: supported, but slow and not what the CPU kernels are tuned for")
    if args.shape is not None:
        try:
            shape_batch, args.shape = layers.parse_shape(args.shape)
        except ValueError as e:
            p.error(str(e))
        if args.batch_size not in (None, shape_batch):
            p.error(f"--shape sets the batch size to {shape_batch}, but --batch-size says {args.batch_size}")
        args.batch_size = shape_batch
    if args.batch_size is None:
        args.batch_size = 2 if args.quick else (512 if args.device.type == "cuda" else 16)
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.reps is None:
        args.reps = 3 if args.quick else 10
    for name in ("batch_size", "reps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    try:
        args.plugins = {spec: load_plugin(spec) for spec in args.plugin}
    except PluginError as e:
        p.error(str(e))
    try:
        args.backends = pick_backends(args.backends, args.device)
        args.backends = cpu_gemm_rows(args.backends, args.cpu_gemm, args.device)
    except ValueError as e:
        p.error(str(e))
    if args.plot is True:
        args.plot = args.out.with_suffix(".png") if args.out else Path("conv_bench.png")
    return args


def cpu_gemm_rows(backends: list[str], text: str | None, device: torch.device) -> list[str]:
    """On CPU, ``cpp`` becomes one row per GEMM path, ``cpp[<path>]``; a path this CPU cannot
    run is an error that says which it can."""
    if device.type != "cpu" or "cpp" not in backends:
        if text is not None:
            raise ValueError("--cpu-gemm: only for cpp on cpu")
        return backends
    paths = cpu_gemm.paths()
    wanted = ["aten", "auto"] if text is None else [t.strip() for t in text.split(",") if t.strip()]
    rows = []
    for path in wanted:
        if path not in (*paths, "auto"):
            raise ValueError(f"--cpu-gemm: {path!r} is not a path this CPU runs ({', '.join(paths)}, auto)")
        path = cpu_gemm.resolve(path)
        if f"cpp[{path}]" not in rows:
            rows.append(f"cpp[{path}]")
    i = backends.index("cpp")
    return backends[:i] + rows + backends[i + 1:]


# ---------------------------------------------------------------- one layer

# The key, beside (backend, pass), under which a pass's im2col-floor GEMM is timed.
FLOOR_GEMM = "im2col floor GEMM"


def bench_layer(model: str, layer: layers.ConvLayer, count: int, backends: list[str], s: Settings,
                roof: roofline.Roofline, peak_gflops: float | None = None) -> list[dict]:
    """Check every (backend, pass) against torch, time the correct ones and the im2col floor's GEMMs
    (all interleaved), make the records."""
    x, w, b, dy = (None if t is None else s.prepare(t) for t in layer_inputs(layer, s.batch_size))

    fns = {(backend, name): fn for backend in backends
           for name, fn in pass_functions(backend, layer, x, w, b, dy, s.device).items()}

    def floor_gemms():
        gemms = floor.gemm_functions(layer, s.batch_size, s.dtype, s.device, s.channels_last)
        return {(FLOOR_GEMM, name): fn for name, fn in gemms.items()}
    with torch.no_grad():
        checked = check_and_time(fns, lambda key: ("torch", key[1]), s.tolerance, s, make_extras=floor_gemms)

    flops = layer.flops(s.batch_size)
    nbytes = layer.bytes(s.batch_size, x.element_size())["implicit"]  # the conv's own tensors only
    floors = {name: roof.floor_ms(flops, nbytes[name]) for name in PASSES}
    column_bytes = floor.column_bytes(layer, s.batch_size, x.element_size())
    im2col_floor = {name: floor.im2col_floor_ms(column_bytes, roof.bandwidth_gbs, checked.ms[FLOOR_GEMM, name])
                    for name in PASSES}
    base = {"model": model, "layer": layer.name, "count": count, "batch_size": s.batch_size}
    records = []
    for backend in backends:
        for name in PASSES:
            key = (backend, name)
            records.append(record(base, backend, name, checked.ms.get(key), flops, floors[name], im2col_floor[name],
                                  checked.peak_memory_bytes.get(key), checked.max_rel_error.get(key),
                                  checked.error.get(key)))
            records[-1]["first_call_ms"] = checked.first_call_ms[key]
        passes = records[-len(PASSES):]
        failed = [r["pass"] for r in passes if r["ms"] is None]

        def over_passes(field, combine):
            values = [r[field] for r in passes]
            return None if failed or None in values else combine(values)
        records.append(record(
            base, backend, "sum", over_passes("ms", sum), len(PASSES) * flops, sum(floors.values()),
            sum(im2col_floor.values()), over_passes("peak_memory_bytes", max), over_passes("max_rel_error", max),
            f"no time: {', '.join(failed)} failed" if failed else None))
    add_ratios(records)
    report.add_peak_fractions(records, peak_gflops)
    return records


# ---------------------------------------------------------------- whole model

def bench_train_step(backends: list[str], s: Settings) -> list[dict]:
    """One ResNet-18 training step (forward, backward, SGD) per backend: same weights, same batch."""
    torch.manual_seed(0)
    base_model = MODELS["resnet18"]()
    g = torch.Generator().manual_seed(0)
    images = s.prepare(torch.randn(s.batch_size, 3, 32, 32, generator=g))
    labels = torch.randint(0, 10, (s.batch_size,), generator=g).to(s.device)

    def make_step(backend):
        model = cifarconv.convert(copy.deepcopy(base_model), cpu_gemm.backend_name(backend)).to(s.device, s.dtype)
        if s.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step():
            optimizer.zero_grad(set_to_none=True)
            logits = model(images)
            F.cross_entropy(logits.float(), labels).backward()
            optimizer.step()
            return (logits.detach(),)
        return cpu_gemm.on_path(backend, step)

    steps, unbuilt = {}, {}
    for backend in backends:
        step, error = safe_call(partial(make_step, backend))
        if error is None:
            steps[backend] = step
        else:
            unbuilt[backend] = error
    # The first steps, compared, start from the same weights everywhere.
    checked = check_and_time(steps, lambda key: "torch", MODEL_TOLERANCE_FACTOR * s.tolerance, s, "logits ")
    errors = {**unbuilt, **checked.error}
    base = {"model": "resnet18", "layer": "resnet18", "count": 1, "batch_size": s.batch_size}
    records = [record(base, b, "train_step", checked.ms.get(b), None, None, None, checked.peak_memory_bytes.get(b),
                      checked.max_rel_error.get(b), errors.get(b)) for b in backends]
    add_ratios(records)
    return records


# ---------------------------------------------------------------- triton's first use

TRITON_CHECK_DTYPE = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32-tf32"}


def triton_first_use(layer: layers.ConvLayer, dtype: torch.dtype) -> dict | None:
    """What the first use of a new conv geometry costs the triton backend: compiling its forward,
    grad-input and grad-weight kernels for sm_90, as the backend picks them (tools/triton_check.py,
    in its own process, on this machine's CPU, with an empty Triton cache).  On a GPU the records'
    ``first_call_ms`` give the same cost measured in place."""
    if importlib.util.find_spec("triton") is None or layer.kernel[0] != layer.kernel[1]:
        return None
    spec = f"{layer.c_in},{layer.c_out},{layer.hw[0]},{layer.kernel[0]},{layer.stride[0]},{layer.padding[0]}"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    check = Path(__file__).resolve().parents[1] / "tools" / "triton_check.py"
    done = subprocess.run([sys.executable, str(check), "--first-use", spec,
                           "--dtype", TRITON_CHECK_DTYPE.get(dtype, "bf16")], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"triton first use of {layer.name}: compile check failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {"error": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    per_kernel = ", ".join(f"{k.removeprefix('conv2d_')} {v:.2f} s" for k, v in result["compile_seconds"].items())
    print(f"\ntriton, first use of {result['geometry']} ({result['dtype']}): {result['total_seconds']:.2f} s of "
          f"compiling for sm_90 on this machine's CPU, Triton {result['triton']} ({per_kernel})")
    return result


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    args = parse_args(argv)
    s = Settings(args.device, args.dtype, args.channels_last, args.batch_size, args.warmup, args.reps, args.quick)
    if s.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.shape is not None:
        work, layer_source = [("shape", args.shape, 1)], f"shape {args.shape.name}"
    else:
        work, layer_source = layers.layer_set(args.layers), args.layers
        if args.quick:
            work, layer_source = work[:QUICK_LAYERS], f"{args.layers} (first {QUICK_LAYERS} layers, --quick)"

    name = report.device_name(s.device)
    print(report.run_heading(name, s, args.backends, layer_source))
    machine = cpu_gemm.machine(s.device, s.quick)
    if machine is not None:
        print(cpu_gemm.describe(machine))
    peak = machine["fma_peak_gflops"]["at_run_threads"] if machine else None
    roof = roofline.measure(s.device, s.dtype, s.warmup, s.reps, s.quick)
    print(report.table_heading(roof))
    records = []
    for model, layer, count in work:
        layer_records = bench_layer(model, layer, count, args.backends, s, roof, peak)
        print("\n".join(table_rows(layer_records)), flush=True)
        records += layer_records
    if not args.no_model:
        model_records = bench_train_step(args.backends, s)
        print("\n".join(table_rows(model_records)), flush=True)
        records += model_records

    first_use = None if args.quick or args.no_compile_time else triton_first_use(work[0][1], s.dtype)

    failures = [r for r in records if r["error"] and r["pass"] != "sum"]
    settings = {**report.settings_json(args.backends, s, layer_source), "plugins": args.plugins}  # spec: its backends
    result = report.run_json(name, settings, roof, records, first_use, machine)
    if args.out:
        report.write_json(args.out, result)
        print(f"\nwrote {args.out}")
    if args.plot:
        import plot
        plot.plot(result, args.plot)
        print(f"wrote {args.plot}")
    if failures:
        report.print_failures(failures)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
