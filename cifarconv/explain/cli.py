"""The command line: which layers to explain, checked before anything runs.

One layer takes ``nn.Conv2d``'s arguments as flags plus ``--input N,C,H,W``; ``--model``
takes every conv of a model the trainer knows, found by the benchmark's forward hooks
(`cifarconv.perf.extract`).  An impossible layer is one argparse-style line naming the
flag and the rule, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..args import same_padding
from ..perf import roofline
from ..perf.extract import distinct, layers_of
from ..perf.layer import ConvLayer
from ..registry import check_name, names, resolve
from ..train.models import MODELS  # the trainer's models: the only import of them in the explainer
from . import figures, proof, text

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The default layer when no flag says otherwise: nn.Conv2d(3, 8, 3, padding=1) on a 2x3x8x8 input.
DEFAULTS = {"in_channels": 3, "out_channels": 8, "kernel_size": "3", "stride": "1", "padding": "1", "dilation": "1",
            "groups": 1, "bias": True, "input": None}
DEFAULT_INPUT = (2, None, 8, 8)  # N, C (= --in-channels), H, W
MODEL_BATCH = 512  # --batch-size for --model: the trainer's batch
MODEL_INPUT = (1, 3, 32, 32)  # what the models run on to find their layers (CIFAR-10 images)
ROOFLINE_REPS = 5
USAGE_HINT = ("usage: python -m cifarconv.explain [--in-channels C --out-channels C --kernel-size K --stride S "
              "--padding P --dilation D --groups G --input N,C,H,W | --model NAME --batch-size N] [--dtype T] "
              "[--backend NAME] [--device DEV] [--json] [--plot FILE.png]; --help says more")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cifarconv.explain",
                                description="How one convolution becomes three GEMMs: shapes, FLOPs, bytes, "
                                            "a proof against torch, and a picture.")
    one = p.add_argument_group("one layer (nn.Conv2d's arguments; default: nn.Conv2d(3, 8, 3, padding=1) on "
                               "2x3x8x8)")
    one.add_argument("--in-channels", type=int, metavar="C", help="default: C of --input, else 3")
    one.add_argument("--out-channels", type=int, metavar="C", help="default 8")
    one.add_argument("--kernel-size", metavar="K", help="k or kH,kW (default 3)")
    one.add_argument("--stride", metavar="S", help="s or sH,sW (default 1)")
    one.add_argument("--padding", metavar="P", help="p, pH,pW, same or valid (default 1)")
    one.add_argument("--dilation", metavar="D", help="d or dH,dW (default 1)")
    one.add_argument("--groups", type=int, metavar="G", help="default 1")
    one.add_argument("--bias", action=argparse.BooleanOptionalAction, help="a bias (default: yes, as nn.Conv2d)")
    one.add_argument("--input", metavar="N,C,H,W", help="N,C,H,W (default 2,C,8,8)")
    many = p.add_argument_group("every conv of a model")
    many.add_argument("--model", choices=MODELS, help="the trainer's model; its layers as the benchmark finds them")
    many.add_argument("--batch-size", type=int, metavar="N", help=f"with --model (default {MODEL_BATCH})")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="element type: bytes, and the proof")
    p.add_argument("--backend", default="custom", metavar="NAME",
                   help=f"whose unfold the proof runs: {', '.join(names())} (default custom)")
    p.add_argument("--device", metavar="DEV", help="run the proof here and measure its roofline (cpu, cuda, cuda:1)")
    p.add_argument("--peak-tflops", type=float, metavar="T",
                   help="a known peak instead of measuring (with --bandwidth-gbs)")
    p.add_argument("--bandwidth-gbs", type=float, metavar="B",
                   help="a known bandwidth instead of measuring (with --peak-tflops)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON, one record per layer")
    p.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="draw the layer (a tiny instance of it) or, with --model, bars per layer")
    return p


# ---------------------------------------------------------------- checking the layer

def ints(text: str, flag: str, form: str, count: tuple[int, ...], p: argparse.ArgumentParser) -> tuple[int, ...]:
    items = text.split(",")
    try:
        values = tuple(int(s) for s in items)
    except ValueError:
        values = ()
    if len(values) not in count:
        p.error(f"{flag} wants {form}, got {text!r}")
    return values


def pair(text: str, flag: str, minimum: int, p: argparse.ArgumentParser) -> tuple[int, int]:
    values = ints(text, flag, "an integer or two (H,W)", (1, 2), p)
    if min(values) < minimum:
        p.error(f"{flag} must be >= {minimum} in each dimension, got {text!r}")
    return (values[0], values[-1])


def one_layer(args, p: argparse.ArgumentParser) -> tuple[ConvLayer, int]:
    """The layer and batch size the flags describe; ``p.error`` (exit 2) for an impossible one."""
    a = {k: (DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)) for k in DEFAULTS}
    if a["input"] is None:
        n, _, h, w = DEFAULT_INPUT
        c = a["in_channels"]
    else:
        n, c, h, w = ints(a["input"], "--input", "N,C,H,W (four integers, e.g. 2,3,8,8)", (4,), p)
        if min(n, c, h, w) < 1:
            p.error(f"--input N,C,H,W must all be >= 1, got {a['input']!r}")
        if args.in_channels is not None and args.in_channels != c:
            p.error(f"--in-channels {args.in_channels} differs from C = {c} of --input {a['input']}")
    for flag, value in (("--in-channels", c), ("--out-channels", a["out_channels"]), ("--groups", a["groups"])):
        if value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    kernel = pair(a["kernel_size"], "--kernel-size", 1, p)
    stride = pair(a["stride"], "--stride", 1, p)
    dilation = pair(a["dilation"], "--dilation", 1, p)
    groups, c_out = a["groups"], a["out_channels"]
    if c % groups or c_out % groups:
        p.error(f"--groups {groups} must divide both the input channels ({c}) and --out-channels ({c_out})")
    extra = (0, 0)
    if a["padding"] == "valid":
        padding = (0, 0)
    elif a["padding"] == "same":
        if stride != (1, 1):
            p.error(f"--padding same needs --stride 1 (the output keeps the input's size), got {a['stride']!r}")
        padding, extra = same_padding(kernel, dilation)
    else:
        padding = pair(a["padding"], "--padding", 0, p)
    layer = ConvLayer(c, c_out, kernel, stride, padding, dilation, groups, a["bias"], (h, w), extra)
    extent = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in range(2))
    padded = layer.padded_hw()
    if extent[0] > padded[0] or extent[1] > padded[1]:
        p.error(f"--kernel-size {a['kernel_size']} (with --dilation {a['dilation']}) spans {extent[0]}x{extent[1]}, "
                f"larger than the {h}x{w} input padded by --padding {a['padding']} ({padded[0]}x{padded[1]}); "
                "the kernel must fit the padded input")
    return layer, n


@dataclass(frozen=True)
class Job:
    layers: list[tuple[ConvLayer, int]]  # (layer, count)
    batch: int
    model: str | None
    dtype: torch.dtype
    device: torch.device
    backend: str


def check(args, p: argparse.ArgumentParser) -> Job:
    if args.model is not None:
        given = [f"--{k.replace('_', '-')}" for k in DEFAULTS if getattr(args, k) is not None]
        if given:
            p.error(f"{given[0]} describes one layer; --model explains the model's own layers")
        batch = MODEL_BATCH if args.batch_size is None else args.batch_size
        if batch < 1:
            p.error(f"--batch-size must be >= 1, got {batch}")
        layers = distinct(layers_of(MODELS[args.model](), torch.zeros(MODEL_INPUT)))
    else:
        if args.batch_size is not None:
            p.error("--batch-size goes with --model; one layer takes its batch size from --input N,C,H,W")
        layer, batch = one_layer(args, p)
        layers = [(layer, 1)]

    try:
        device = torch.device(args.device or "cpu")
    except RuntimeError as e:
        p.error(f"--device: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device is available here")
    try:
        check_name(args.backend)
        resolve(args.backend, device)
    except (ValueError, RuntimeError) as e:  # the library's own message: unknown, or why it cannot run here
        p.error(f"--backend: {e}")
    if (args.peak_tflops is None) != (args.bandwidth_gbs is None):
        p.error("--peak-tflops and --bandwidth-gbs go together (a known roofline needs both)")
    for flag, value in (("--peak-tflops", args.peak_tflops), ("--bandwidth-gbs", args.bandwidth_gbs)):
        if value is not None and not value > 0:
            p.error(f"{flag} must be > 0, got {value}")
    if args.plot is not None:
        if args.plot.suffix.lower() != ".png":
            p.error(f"--plot wants a file name ending in .png, got {str(args.plot)!r}")
        if not args.plot.parent.is_dir():
            p.error(f"--plot {args.plot}: the folder {str(args.plot.parent)!r} does not exist")
        if importlib.util.find_spec("matplotlib") is None:
            p.error("--plot draws with matplotlib, which is not installed: pip install matplotlib")
    return Job(layers, batch, args.model, DTYPES[args.dtype], device, args.backend)


# ---------------------------------------------------------------- main

def get_roofline(args, job: Job) -> tuple[roofline.Roofline | None, str]:
    if args.peak_tflops is not None:
        return roofline.Roofline(args.peak_tflops, args.bandwidth_gbs), "given"
    if args.device is None:
        return None, ""
    measured = roofline.measure(job.device, job.dtype, warmup=1, reps=ROOFLINE_REPS)
    return measured, f"measured on {job.device}, {figures.dtype_name(job.dtype)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = build_parser()
    args = p.parse_args(argv)
    job = check(args, p)
    roof, source = get_roofline(args, job)

    records = []
    for layer, count in job.layers:
        rec = figures.record(layer, count, job.batch, job.dtype, roof, job.model)
        rec["proof"] = proof.prove(layer, job.batch, job.dtype, job.device, job.backend).to_json()
        records.append(rec)
    totals = figures.totals(records) if job.model else None
    roof_json = None if roof is None else {**roof.to_json(), "source": source}

    if args.json:
        print(json.dumps({"roofline": roof_json, "layers": records, "totals": totals}, indent=1))
    else:
        roof_text = text.roofline_line(roof_json, source)
        print(text.model_text(records, totals, roof_text) if job.model else text.layer_text(records[0], roof_text))
    if args.plot is not None:
        from . import plot  # matplotlib only when asked for

        width, height = plot.write(args.plot, records, job.layers, totals)
        print(f"wrote {args.plot} ({width} x {height} px)", file=sys.stderr if args.json else sys.stdout)
    if not argv:
        print(f"\n{USAGE_HINT}")
    failed = [r["layer"] for r in records if not r["proof"]["ok"]]
    if failed:
        print(f"the proof failed for {', '.join(failed)}: backend {job.backend!r} differs from torch",
              file=sys.stderr)
        return 1
    return 0
