#!/usr/bin/env python3
"""Compile every Triton kernel of the backend for a GPU, without one: `make triton-check`.

    python tools/triton_check.py                       # every variant, sm_90 and sm_80
    python tools/triton_check.py --quick               # one geometry, the chosen tile per dtype (CI)
    python tools/triton_check.py --arch 90 --json out.json
    python tools/triton_check.py --first-use 64,128,32,3,2,1 --dtype bf16   # one new geometry's cost

A variant is one kernel as the backend really launches it: the backend's own host code runs
on meta tensors (shapes and strides, no memory, no GPU) standing in for CUDA tensors, for a
few real geometries (ResNet-18's CIFAR layers) in every dtype it serves -- float32 with
TF32 and in full precision ("ieee"), bfloat16, float16, float64 -- and each launch it makes
is recorded (`common.launch`) instead of run.  Each recorded launch is then compiled with
the tile the backend chose and every other tile it may choose (`common.tiles_for`), with
Triton's own argument specialization, for each GPU architecture asked for.  One row per
distinct compiled kernel (``*``: the tile the backend picks for that launch; the other
rows: every other tile it may pick for the dtype) gives:

* the compile seconds (with an empty Triton cache, so nothing is reused),
* the shared memory it asks for, in bytes, and as a number of pipeline stages (tiles of A
  and B held at once: a pipelined loop with num_stages S holds S - 1 or S of them),
* registers, spill stores and spill loads per thread, from ``ptxas -v`` on its PTX,
* whether the PTX uses ``wgmma`` (Hopper's warpgroup tensor-core instructions).

Any variant that fails to compile fails the check (exit status 1).  The bf16, fp16 and TF32
conv kernels for sm_90 that lack wgmma, spill, or hold fewer stages than asked are listed
at the end (a performance report, not a failure: float64 and sm_80 have neither wgmma
nor a need for it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

# Compiled kernels, not the interpreter; a fresh cache, so compile times are real.
os.environ.pop("TRITON_INTERPRET", None)
os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="cifarconv-triton-check-")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.jit import create_function_from_signature  # noqa: E402

from cifarconv.triton_kernels import common, conv_dgrad, conv_fwd, conv_wgrad, im2col_col2im  # noqa: E402
from cifarconv.args import conv2d_output_hw  # noqa: E402
from cifarconv.precision import conv_allows_tf32  # noqa: E402

# (name, C_in, C_out, H=W, kernel, stride, padding): the distinct kinds of ResNet-18's CIFAR
# convs -- the 3-channel stem, a 3x3, a strided 3x3 and the strided 1x1 shortcut.
GEOMETRIES = [
    ("stem 3->64 k3 32x32", 3, 64, 32, 3, 1, 1),
    ("64->64 k3 32x32", 64, 64, 32, 3, 1, 1),
    ("64->128 k3 s2 32x32", 64, 128, 32, 3, 2, 1),
    ("64->128 k1 s2 32x32", 64, 128, 32, 1, 2, 0),
]
BATCH = 512
# (label, dtype, float32 precision of torch's conv)
DTYPES = [
    ("fp32-tf32", torch.float32, "tf32"),
    ("fp32-ieee", torch.float32, "ieee"),
    ("bf16", torch.bfloat16, None),
    ("fp16", torch.float16, None),
    ("fp64", torch.float64, None),
]
ARCHS = (90, 80)


@dataclass
class Row:
    kernel: str
    geometry: str
    dtype: str
    config: str
    arch: int
    chosen: bool  # the tile the backend picks for this launch (else: another tile it may pick)
    stage_bytes: int | None = None  # bytes of one A tile and one B tile: what each pipeline stage holds
    num_stages: int | None = None
    key: str = ""
    seconds: float | None = None
    shared_bytes: int | None = None
    registers: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    wgmma: bool | None = None
    same_as: int | None = None  # index of an identical variant compiled earlier
    error: str | None = None


@contextlib.contextmanager
def conv_precision(mode):
    conv = torch.backends.cudnn.conv
    saved = conv.fp32_precision
    conv.fp32_precision = mode or saved
    try:
        yield
    finally:
        conv.fp32_precision = saved


@contextlib.contextmanager
def recorded_launches():
    """Record (kernel, args, kwargs) at `common.launch` instead of launching; meta tensors count
    as CUDA tensors for the precision rule."""
    launches = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.kernel, args, kwargs))

    saved = common.launcher, common.uses_tf32
    common.launcher = Recorder
    common.uses_tf32 = lambda t: t.dtype == torch.float32 and conv_allows_tf32()
    try:
        yield launches
    finally:
        common.launcher, common.uses_tf32 = saved


def host_calls(geometry, dtype):
    """Run the backend's host code for one conv of ``geometry`` on meta tensors."""
    _, c_in, c_out, hw, k, s, p = geometry
    conv = ((s, s), (p, p), (1, 1), 1)
    oh, ow = conv2d_output_hw((hw, hw), (k, k), *conv[:3])
    cl = torch.channels_last
    x = torch.empty(BATCH, c_in, hw, hw, device="meta", dtype=dtype).to(memory_format=cl)
    w = torch.empty(c_out, c_in, k, k, device="meta", dtype=dtype)
    dy = torch.empty(BATCH, c_out, oh, ow, device="meta", dtype=dtype).to(memory_format=cl)
    return [
        ("conv2d_fwd", lambda: conv_fwd.conv2d(x, w, torch.empty(c_out, device="meta", dtype=dtype), *conv)),
        ("conv2d_dgrad", lambda: conv_dgrad.conv2d_grad_input(dy, w, (hw, hw), *conv)),
        ("conv2d_wgrad", lambda: conv_wgrad.conv2d_grad_weight(dy, x, (k, k), *conv, True)),
        ("im2col", lambda: im2col_col2im.im2col(x, (k, k), (1, 1), (p, p), (s, s))),
        ("col2im", lambda: im2col_col2im.col2im(torch.empty(BATCH, c_in * k * k, oh * ow, device="meta", dtype=dtype),
                                       (hw, hw), (k, k), (1, 1), (p, p), (s, s))),
    ]


TILED = {"conv2d_fwd_kernel", "conv2d_dgrad_kernel", "conv2d_wgrad_kernel"}  # kernels launched with a Tile


def tiles_of(fn, kwargs, dtype, quick):
    """[(tile or None, chosen?)]: the tile the backend chose for this launch, then (unless
    ``quick``) every other tile it may launch this kernel with for ``dtype``."""
    if fn.__name__ not in TILED:
        return [(None, True)]
    chosen = common.Tile(kwargs["BLOCK_M"], kwargs["BLOCK_N"], kwargs["BLOCK_K"], kwargs["num_warps"],
                         kwargs["num_stages"])
    others = [] if quick else [t for t in common.tiles_for(dtype) if t != chosen]
    return [(chosen, True)] + [(t, False) for t in others]


def ptxas(arch: int) -> str:
    """The ptxas Triton itself assembles sm_<arch> PTX with."""
    from triton.backends.nvidia.compiler import get_ptxas

    return get_ptxas(arch).path


def ptxas_usage(ptx: str, arch: int) -> tuple[int, int, int]:
    """(registers, spill store bytes, spill load bytes) per thread, from ``ptxas -v``."""
    gpu = re.search(r"^\.target\s+(sm_\w+)", ptx, re.M).group(1)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d, "k.ptx")
        src.write_text(ptx)
        done = subprocess.run([ptxas(arch), "-v", f"--gpu-name={gpu}", str(src), "-o", str(Path(d, "k.cubin"))],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed: {done.stderr.strip()[-300:]}")
    out = done.stderr
    regs = int(re.search(r"Used (\d+) registers", out).group(1))
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
    return regs, int(spills.group(1)), int(spills.group(2))


def compile_variant(fn, args, kwargs, tile, arch):
    """Compile ``fn`` as a launch with (args, kwargs), with ``tile`` if given, would for sm_<arch>."""
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    kwargs = dict(kwargs)
    if tile is not None:
        kwargs.update(tile.kwargs())
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # meta tensors: data_ptr() is 0, aligned like a real allocation
        bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    key = (fn.__name__, arch, str(signature), str(sorted(constexprs.items(), key=str)), str(attrs), str(options))
    start = time.perf_counter()
    compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    return key, time.perf_counter() - start, compiled


def variants(quick: bool, geometries=None, dtypes=None):
    """(kernel name, geometry name, dtype label, dtype, jit fn, args, kwargs) per recorded launch."""
    geometries = geometries or (GEOMETRIES[1:2] if quick else GEOMETRIES)
    for geometry in geometries:
        for label, dtype, mode in [d for d in DTYPES if dtypes is None or d[0] in dtypes]:
            with conv_precision(mode), recorded_launches() as launches:
                for name, call in host_calls(geometry, dtype):
                    start = len(launches)
                    call()
                    for fn, args, kwargs in launches[start:]:
                        yield name, geometry[0], label, dtype, fn, args, kwargs


def compile_rows(quick: bool, archs, shard=(0, 1), geometries=None, dtypes=None):
    """Compile every variant (this shard's share of them) and yield its Row."""
    index = -1
    for name, geometry, label, dtype, fn, call_args, kwargs in variants(quick, geometries, dtypes):
        for tile, chosen in tiles_of(fn, kwargs, dtype, quick):
            for arch in archs:
                index += 1
                if index % shard[1] != shard[0]:
                    continue
                row = Row(name, geometry, label, tile.name if tile else "-", arch, chosen)
                if tile is not None:
                    size = torch.empty((), dtype=dtype).element_size()
                    row.stage_bytes = (tile.block_m + tile.block_n) * tile.block_k * size
                    row.num_stages = tile.num_stages
                try:
                    key, seconds, compiled = compile_variant(fn, call_args, kwargs, tile, arch)
                    ptx = compiled.asm["ptx"]
                    row.key = str(hash(key))
                    row.seconds = round(seconds, 3)
                    row.shared_bytes = compiled.metadata.shared
                    row.registers, row.spill_stores, row.spill_loads = ptxas_usage(ptx, arch)
                    row.wgmma = "wgmma" in ptx
                except Exception as e:  # noqa: BLE001 -- every failure is reported, then fails the check
                    text = str(e).strip()
                    row.error = f"{type(e).__name__}: {text.splitlines()[-1][:200] if text else ''}"
                yield index, row


def tensor_core_problems(rows) -> list[str]:
    """For bf16, fp16 and TF32 on sm_90: a conv kernel without wgmma, with spills, or holding
    fewer than num_stages - 1 tiles in shared memory (its loads are not pipelined)."""
    problems = []
    for r in rows:
        if r.arch != 90 or r.stage_bytes is None or r.dtype not in ("bf16", "fp16", "fp32-tf32") or r.error:
            continue
        what = [w for w, bad in (("no wgmma", not r.wgmma), ("spills", r.spill_stores or r.spill_loads),
                                 ("shared memory below num_stages - 1 stages",
                                  r.shared_bytes < (r.num_stages - 1) * r.stage_bytes)) if bad]
        if what:
            problems.append(f"{r.kernel} {r.geometry} {r.dtype} {r.config}: {', '.join(what)}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one geometry, only the tile each launch picks")
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10 (default: 90 and 80)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile in this many processes")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--first-use", metavar="C_IN,C_OUT,HW,K,STRIDE,PADDING",
                        help="only time what the first use of this conv costs: its three conv kernels, as "
                             "the backend picks them, for sm_90, in --dtype; prints JSON")
    parser.add_argument("--dtype", default="bf16", choices=[d[0] for d in DTYPES], help="with --first-use")
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # r/n: a worker's share (with --json)
    args = parser.parse_args(argv)
    archs = args.arch or list(ARCHS)

    if args.first_use:
        return first_use(args.first_use, args.dtype)

    if args.shard:
        r, n = map(int, args.shard.split("/"))
        rows = dict(compile_rows(args.quick, archs, (r, n)))
        args.json.write_text(json.dumps({str(i): asdict(row) for i, row in rows.items()}))
        return 0

    print(f"triton {triton.__version__} | torch {torch.__version__} | archs {archs} | {args.jobs} processes")
    start = time.perf_counter()
    rows = run_shards(args, archs)
    header = f"{'#':>4} {'kernel':<13} {'geometry':<21} {'dtype':<9} {'tile':<18} {'arch':>4} " \
             f"{'compile s':>9} {'smem B':>7} {'stages':>6} {'regs':>4} {'spill st/ld':>11} {'wgmma':>5}"
    print(header)
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.key and row.key in first:
            row.same_as, row.seconds = first[row.key], None
        elif row.key:
            first[row.key] = i
        print(format_row(i, row))

    failed = [r for r in rows if r.error]
    compiled = [r for r in rows if r.seconds is not None]
    spilled = [r for r in compiled if r.spill_stores or r.spill_loads]
    seconds = sum(r.seconds for r in compiled)
    print(f"\n{len(rows)} variants, {len(compiled)} distinct kernels compiled in {seconds:.1f} s of compile time "
          f"({time.perf_counter() - start:.0f} s wall), {len(spilled)} with spills, {len(failed)} failed")
    problems = tensor_core_problems(compiled)
    print(f"bf16 / fp16 / TF32 conv kernels on sm_90 without wgmma, with spills or unpipelined: {len(problems)}")
    for p in problems:
        print(f"  {p}")
    if args.json:
        meta = {"triton": triton.__version__, "torch": torch.__version__, "archs": archs, "quick": args.quick}
        args.json.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    return 1 if failed else 0


def first_use(spec: str, dtype: str) -> int:
    """Print, as JSON, the compile seconds of the conv kernels one new geometry needs (sm_90)."""
    c_in, c_out, hw, k, stride, padding = (int(v) for v in spec.split(","))
    geometry = (f"{c_in}->{c_out} k{k} s{stride} {hw}x{hw}", c_in, c_out, hw, k, stride, padding)
    seconds = {row.kernel: row.seconds for _, row in compile_rows(True, [90], geometries=[geometry], dtypes=[dtype])
               if row.kernel.startswith("conv2d_")}
    print(json.dumps({"geometry": geometry[0], "dtype": dtype, "arch": 90, "triton": triton.__version__,
                      "compile_seconds": seconds, "total_seconds": round(sum(seconds.values()), 3)}))
    return 0


def run_shards(args, archs) -> list[Row]:
    """Compile in ``args.jobs`` worker processes (this script with --shard), in variant order."""
    with tempfile.TemporaryDirectory() as d:
        outs = [Path(d, f"{r}.json") for r in range(args.jobs)]
        base = [sys.executable, __file__, *(["--quick"] if args.quick else []), *[f"--arch={a}" for a in archs]]
        workers = [subprocess.Popen([*base, f"--shard={r}/{args.jobs}", f"--json={out}"])
                   for r, out in enumerate(outs)]
        if any(w.wait() != 0 for w in workers):
            raise SystemExit("triton-check: a worker process failed (its error is above)")
        merged = {int(i): row for out in outs for i, row in json.loads(out.read_text()).items()}
    return [Row(**merged[i]) for i in sorted(merged)]


def format_row(i: int, r: Row) -> str:
    tile = r.config + (" *" if r.chosen else "")
    start = f"{i:>4} {r.kernel:<13} {r.geometry:<21} {r.dtype:<9} {tile:<18} {r.arch:>4} "
    if r.error:
        return start + f"FAILED {r.error}"
    if r.same_as is not None:
        return start + f"{'':>9} same kernel as #{r.same_as}"
    stages = f"{r.shared_bytes / r.stage_bytes:.1f}" if r.stage_bytes else "-"
    spills = f"{r.spill_stores}/{r.spill_loads}"
    return start + (f"{r.seconds:>9.2f} {r.shared_bytes:>7} {stages:>6} {r.registers:>4} {spills:>11} "
                    f"{'yes' if r.wgmma else 'no':>5}")


if __name__ == "__main__":
    sys.exit(main())
