#!/usr/bin/env python3
"""The extension's bad-argument calls, each in its own process: `make gpu-check`'s first check.

    python tools/bad_calls.py --device cuda --out benchmarks/results/<device>-bad-calls.json
    python tools/bad_calls.py --device cpu --only channels     # the same machinery on CPU

On an H100, five of the extension's CUDA calls with bad arguments crashed the process
instead of raising; all five format integers into their message, the one that raised
cleanly formats only dtype names.  Each call of ``tests/test_extension.py``'s BAD_CALLS
runs here as its own pytest process, so a crash is recorded and the rest still run.  Then:

* the bindings: one call that formats integers runs again with ``LD_DEBUG=bindings``, and
  the libraries the extension's C++ standard-library symbols were bound to are recorded,
  with every other library in the process that serves std:: symbols in place of
  libstdc++ (a copy of libstdc++ inside a CUDA library, say);
* for each call that crashed: a backtrace (``cuda-gdb`` or ``gdb``, whichever is
  installed), and a rerun with the process's libstdc++ preloaded, which puts it first in
  symbol lookup: if that run raises cleanly, the crash came from a symbol bound elsewhere;
* the ABI facts: torch's compiler and C++ standard, ``_GLIBCXX_USE_CXX11_ABI``, the
  compiler that built the extension, and the libstdc++ the process loaded.

Everything goes to one JSON file; the exit status is 1 when any call did not raise its
error cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_extension.py"
BACKEND = {"cpu": "cpp", "cuda": "cuda"}
# LD_DEBUG=bindings lines: "binding file A [0] to B [0]: normal symbol `sym' [GLIBCXX_3.4.9]"
BINDING = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: \S+ symbol `([^']+)'(?: \[([^\]]+)\])?")
# Mangled names of std:: functions, objects, vtables and statics: _ZNSo..., _ZNKRSt7__cxx11..., _ZSt...,
# _ZTVNSt..., _ZZNSt...
STD = re.compile(r"^_ZZ?(?:T[VTSI])?N?[KVRO]*S[tadiso]")


def bad_call_ids(device: str, only: str | None) -> list[str]:
    """The pytest ids of BAD_CALLS for ``device``'s backend, e.g. ...[cuda-cuda-channels]."""
    select = f"test_ops_reject_bad_arguments and {BACKEND[device]}-{device}" + (f" and {only}" if only else "")
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", TEST,
                          "-k", select], cwd=ROOT, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.startswith(TEST + "::")]


def run_pytest(test_id: str, env: dict | None = None, prefix: list[str] = (), timeout: int = 300) -> dict:
    """One test in its own process: exit code (negative: the signal that killed it), time, output's end."""
    start = time.monotonic()
    cmd = [*prefix, sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-p", "no:cacheprovider", test_id]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
        rc, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        rc, output = "timeout", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    result = {"id": test_id, "rc": rc, "seconds": round(time.monotonic() - start, 2),
              "output_tail": output.strip().splitlines()[-25:]}
    if isinstance(rc, int) and rc < 0:
        result["signal"] = signal.Signals(-rc).name
    return result


def demangle(names: list[str]) -> dict[str, str]:
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def bindings(test_id: str) -> dict:
    """Where the extension's std:: symbols bind, and which libraries serve std:: symbols
    other than libstdc++, in one run of ``test_id`` under LD_DEBUG=bindings."""
    with tempfile.TemporaryDirectory() as tmp:
        run = run_pytest(test_id, env={"LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": f"{tmp}/ld"})
        ours, others = {}, {}
        for path in Path(tmp).iterdir():
            for line in path.read_text(errors="replace").splitlines():
                m = BINDING.search(line)
                if m is None or not STD.match(m[3]):
                    continue
                source, target, symbol, version = m[1], m[2], m[3], m[4]
                if "cifarconv/_C" in source:
                    ours[symbol] = {"library": target, "version": version}
                elif "libstdc++" not in target and target != source and "cifarconv/_C" not in target:
                    key = f"{Path(source).name} -> {Path(target).name}"
                    others[key] = others.get(key, 0) + 1
    names = demangle(sorted(ours))
    return {
        "run": {k: run[k] for k in ("id", "rc", "seconds")},
        "extension": {names[s]: v for s, v in sorted(ours.items())},
        "std_symbols_served_elsewhere": dict(sorted(others.items(), key=lambda kv: -kv[1])),
    }


def libstdcxx_path() -> str | None:
    """The libstdc++ this Python process (with torch imported) loaded."""
    import torch  # noqa: F401  (loads the C++ runtime torch links)

    for line in Path("/proc/self/maps").read_text().splitlines():
        if "libstdc++.so" in line:
            return line.split()[-1]
    return None


def abi_facts() -> dict:
    import torch

    config = torch.__config__.show()
    lib = libstdcxx_path()
    versions = sorted(set(re.findall(rb"GLIBCXX_3\.4\.(\d+)", Path(lib).read_bytes())), key=int) if lib else []
    compiler = os.environ.get("CXX", "c++")
    cxx = subprocess.run([compiler, "--version"], capture_output=True, text=True) if shutil.which(compiler) else None
    return {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_compiler": next(iter(re.findall(r"GCC [\d.]+|clang [\d.]+", config)), None),
        "torch_cxx_standard": next(iter(re.findall(r"C\+\+ Version: (\d+)", config)), None),
        "torch_cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "extension_compiler": cxx.stdout.splitlines()[0] if cxx and cxx.stdout else None,
        "libstdcxx": lib,
        "libstdcxx_newest_glibcxx": f"GLIBCXX_3.4.{versions[-1].decode()}" if versions else None,
    }


def backtrace(test_id: str) -> list[str] | str:
    debugger = shutil.which("cuda-gdb") or shutil.which("gdb")
    if debugger is None:
        return "no cuda-gdb or gdb on this machine"
    run = run_pytest(test_id, prefix=[debugger, "-batch", "-ex", "run", "-ex", "bt 40", "--args"], timeout=600)
    return [line for line in run["output_tail"] if line.startswith("#")] or run["output_tail"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=sorted(BACKEND), default="cuda")
    parser.add_argument("--only", help="a -k expression narrowing the calls, e.g. 'channels'")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()

    ids = bad_call_ids(args.device, args.only)
    if not ids:
        print(f"bad_calls: no bad-argument calls collected for {args.device} ({TEST})")
        return 1
    with ThreadPoolExecutor(max_workers=min(len(ids), os.cpu_count() or 1)) as pool:
        calls = list(pool.map(run_pytest, ids))
    failed = [c for c in calls if c["rc"] != 0]
    # A call whose message formats integers: where `_M_insert<long>` & co. bind.
    probe = next((i for i in ids if "channels" in i), ids[0])
    report = {
        "device": args.device,
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "abi": abi_facts(),
        "calls": calls,
        "bindings": bindings(probe),
        "crashes": [],
    }
    lib = report["abi"]["libstdcxx"]
    for call in failed:
        crash = {"id": call["id"], "backtrace": backtrace(call["id"])}
        if lib:
            rerun = run_pytest(call["id"], env={"LD_PRELOAD": lib})
            crash["with_libstdcxx_preloaded"] = {k: rerun.get(k) for k in ("rc", "signal", "output_tail")}
        report["crashes"].append(crash)

    for call in calls:
        status = "raised cleanly" if call["rc"] == 0 else f"FAILED rc={call['rc']} {call.get('signal', '')}"
        print(f"{call['id'].split('::')[-1]:<60} {status}")
    print(f"\nlibstdc++: {lib} (newest {report['abi']['libstdcxx_newest_glibcxx']}); torch {report['abi']['torch']} "
          f"built by {report['abi']['torch_compiler']} C++{report['abi']['torch_cxx_standard']}; extension built by "
          f"{report['abi']['extension_compiler']}")
    print("the extension's std:: symbols bound to:")
    for library in sorted({v["library"] for v in report["bindings"]["extension"].values()}):
        print(f"  {library}")
    for key, count in list(report["bindings"]["std_symbols_served_elsewhere"].items())[:10]:
        print(f"  elsewhere: {key}: {count} std:: symbols")
    for crash in report["crashes"]:
        print(f"\n{crash['id']}:\n  " + "\n  ".join(crash["backtrace"] if isinstance(crash["backtrace"], list)
                                               else [crash["backtrace"]]))
        if "with_libstdcxx_preloaded" in crash:
            print(f"  with libstdc++ preloaded: rc={crash['with_libstdcxx_preloaded']['rc']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.out}")
    print(f"\nbad calls: {len(calls) - len(failed)} of {len(calls)} raised cleanly")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
