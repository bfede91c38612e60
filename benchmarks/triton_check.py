#!/usr/bin/env python3
"""Compile every Triton kernel of the backend for a GPU, without one: `make triton-check`.

    python benchmarks/triton_check.py                  # every variant, sm_90 and sm_80
    python benchmarks/triton_check.py --quick          # one geometry, one config per dtype (CI)
    python benchmarks/triton_check.py --arch 90 --json out.json

A variant is one kernel as the backend really launches it: the backend's own host code runs
on fake CUDA tensors (no GPU, no memory) for a few real geometries (ResNet-18's CIFAR
layers) in every dtype it serves -- float32 with TF32 and in full precision ("ieee"),
bfloat16, float16, float64 -- and each launch it makes is recorded (`common.launch`)
instead of run.  Each recorded launch is then compiled for every config its kernel may
choose (`TunedKernel.configs_for`), with Triton's own argument specialization, for each
GPU architecture asked for.  One row per distinct compiled kernel gives:

* the compile seconds (with an empty Triton cache, so nothing is reused),
* the shared memory it asks for, in bytes,
* registers, spill stores and spill loads per thread, from ``ptxas -v`` on its PTX,
* whether the PTX uses ``wgmma`` (Hopper's warpgroup tensor-core instructions).

Any variant that fails to compile fails the check (exit status 1).  Spills are reported,
not failed: float64 exists for gradcheck, where speed does not matter.
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
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.jit import create_function_from_signature  # noqa: E402

from cifarconv.triton_kernels import common, conv_dgrad, conv_fwd, conv_wgrad, fold  # noqa: E402
from cifarconv.args import conv2d_output_hw  # noqa: E402

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
    """Record (kernel, args, kwargs) at `common.launch` instead of launching."""
    launches = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.kernel, args, kwargs))

    saved = common.wrap_triton
    common.wrap_triton = Recorder
    try:
        yield launches
    finally:
        common.wrap_triton = saved


def host_calls(geometry, dtype):
    """Run the backend's host code for one conv of ``geometry`` on fake CUDA tensors."""
    _, c_in, c_out, hw, k, s, p = geometry
    conv = ((s, s), (p, p), (1, 1), 1)
    oh, ow = conv2d_output_hw((hw, hw), (k, k), *conv[:3])
    cl = torch.channels_last
    x = torch.empty(BATCH, c_in, hw, hw, device="cuda", dtype=dtype).to(memory_format=cl)
    w = torch.empty(c_out, c_in, k, k, device="cuda", dtype=dtype)
    dy = torch.empty(BATCH, c_out, oh, ow, device="cuda", dtype=dtype).to(memory_format=cl)
    return [
        ("conv2d_fwd", lambda: conv_fwd.conv2d(x, w, torch.empty(c_out, device="cuda", dtype=dtype), *conv)),
        ("conv2d_dgrad", lambda: conv_dgrad.conv2d_grad_input(dy, w, (hw, hw), *conv)),
        ("conv2d_wgrad", lambda: conv_wgrad.conv2d_grad_weight(dy, x, (k, k), *conv, True)),
        ("im2col", lambda: fold.im2col(x, (k, k), (1, 1), (p, p), (s, s))),
        ("col2im", lambda: fold.col2im(torch.empty(BATCH, c_in * k * k, oh * ow, device="cuda", dtype=dtype),
                                       (hw, hw), (k, k), (1, 1), (p, p), (s, s))),
    ]


def configs_of(kernel, dtype):
    """(jit function, [config or None]) for a recorded kernel: an autotuner's choices, or none."""
    if isinstance(kernel, triton.runtime.Autotuner):
        tuned = next(t for t in (conv_fwd.TUNED, conv_dgrad.TUNED, conv_wgrad.TUNED) if t.kernel is kernel.fn)
        return kernel.fn, tuned.configs_for(dtype)
    return kernel, [None]


def config_name(config) -> str:
    if config is None:
        return "-"
    k = config.kwargs
    return f"{k['BLOCK_M']}x{k['BLOCK_N']}x{k['BLOCK_K']} w{config.num_warps}s{config.num_stages}"


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


def compile_variant(fn, args, kwargs, config, arch):
    """Compile ``fn`` as a launch with (args, kwargs, config) would, for sm_<arch>."""
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    kwargs = dict(kwargs)
    if config is not None:
        kwargs.update(config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # data_ptr() of a fake tensor: 0, aligned like a real allocation
        bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    key = (fn.__name__, arch, str(signature), str(sorted(constexprs.items(), key=str)), str(attrs), str(options))
    start = time.perf_counter()
    compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    return key, time.perf_counter() - start, compiled


def variants(quick: bool):
    """(kernel name, geometry name, dtype label, dtype, jit fn, args, kwargs, configs) per recorded launch."""
    geometries = GEOMETRIES[1:2] if quick else GEOMETRIES
    for geometry in geometries:
        for label, dtype, mode in DTYPES:
            with FakeTensorMode(), conv_precision(mode), recorded_launches() as launches:
                for name, call in host_calls(geometry, dtype):
                    start = len(launches)
                    try:
                        call()
                    except RuntimeError as e:
                        # Host-side torch ops after the launches (the split-K sum) cannot run on fake
                        # CUDA tensors in a CPU-only torch; the kernels were recorded by then.
                        if "not linked with support for cuda" not in str(e) or len(launches) == start:
                            raise
                    for kernel, args, kwargs in launches[start:]:
                        fn, configs = configs_of(kernel, dtype)
                        yield name, geometry[0], label, fn, args, kwargs, configs[:1] if quick else configs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one geometry, the first config per dtype")
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10 (default: 90 and 80)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    archs = args.arch or list(ARCHS)

    print(f"triton {triton.__version__} | torch {torch.__version__} | archs {archs}")
    header = f"{'#':>4} {'kernel':<13} {'geometry':<21} {'dtype':<9} {'config':<17} {'arch':>4} " \
             f"{'compile s':>9} {'smem B':>7} {'regs':>4} {'spill st/ld':>11} {'wgmma':>5}"
    print(header)
    rows: list[Row] = []
    seen: dict[tuple, int] = {}
    for name, geometry, label, fn, call_args, kwargs, configs in variants(args.quick):
        for config in configs:
            for arch in archs:
                row = Row(name, geometry, label, config_name(config), arch)
                try:
                    key, seconds, compiled = compile_variant(fn, call_args, kwargs, config, arch)
                    if key in seen:
                        row.same_as = seen[key]
                    else:
                        seen[key] = len(rows)
                        ptx = compiled.asm["ptx"]
                        row.seconds = round(seconds, 3)
                        row.shared_bytes = compiled.metadata.shared
                        row.registers, row.spill_stores, row.spill_loads = ptxas_usage(ptx, arch)
                        row.wgmma = "wgmma" in ptx
                except Exception as e:  # noqa: BLE001 -- every failure is reported, then fails the check
                    row.error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}"
                rows.append(row)
                print(format_row(len(rows) - 1, row), flush=True)

    failed = [r for r in rows if r.error]
    compiled = [r for r in rows if r.seconds is not None]
    print(f"\n{len(rows)} variants, {len(compiled)} distinct kernels compiled in "
          f"{sum(r.seconds for r in compiled):.1f} s, {sum(1 for r in compiled if r.spill_stores)} with spills, "
          f"{len(failed)} failed")
    if args.json:
        meta = {"triton": triton.__version__, "torch": torch.__version__, "archs": archs, "quick": args.quick}
        args.json.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    return 1 if failed else 0


def format_row(i: int, r: Row) -> str:
    start = f"{i:>4} {r.kernel:<13} {r.geometry:<21} {r.dtype:<9} {r.config:<17} {r.arch:>4} "
    if r.error:
        return start + f"FAILED {r.error}"
    if r.same_as is not None:
        return start + f"{'':>9} same kernel as #{r.same_as}"
    spills = f"{r.spill_stores}/{r.spill_loads}"
    return start + f"{r.seconds:>9.2f} {r.shared_bytes:>7} {r.registers:>4} {spills:>11} {'yes' if r.wgmma else 'no':>5}"


if __name__ == "__main__":
    sys.exit(main())
