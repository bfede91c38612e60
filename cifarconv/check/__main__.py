"""``python -m cifarconv.check --plugin my_conv.py winograd``: check a backend against torch.

Loads each ``--plugin`` (a Python file or an importable module that registers backends
with ``cifarconv.register_backend``), then runs `cifarconv.testing.check_backend` on the
backend named and prints its report.  Exit status: 0 when every check passed, 1 when one
failed, 2 for bad arguments (an unknown backend or check, a plugin that does not load).
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..registry import PluginError, check_name, describe_backend, load_plugin
from ..testing import CHECKS, check_backend


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifarconv.check", description=__doc__.splitlines()[0])
    parser.add_argument("backend", help="the registered backend to check")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="import this first: a .py file or a module that registers backends (repeatable)")
    parser.add_argument("--device", default="cpu", help="the device type of the tensors (default cpu)")
    parser.add_argument("--only", type=lambda s: s.split(","), metavar="CHECK,...",
                        help=f"run only these checks: {', '.join(CHECKS)}")
    args = parser.parse_args(argv)
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        check_name(args.backend)
        torch.device(args.device)
    except (PluginError, ValueError, RuntimeError) as e:
        parser.error(str(e))
    unknown = sorted(set(args.only or ()) - set(CHECKS))
    if unknown:
        parser.error(f"--only: unknown checks {', '.join(unknown)}; valid: {', '.join(CHECKS)}")
    print(describe_backend(args.backend), flush=True)
    try:
        report = check_backend(args.backend, args.device, checks=args.only)
    except RuntimeError as e:
        parser.error(str(e))
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
