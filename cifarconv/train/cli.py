"""Train CIFAR-10 with each chosen conv backend and compare them for accuracy and speed.

    python -m cifarconv.train --conv cuda                         # one backend
    python -m cifarconv.train --conv torch,triton,cuda --seeds 3  # side by side

The command line: flags, their checks (argparse errors, exit status 2), the model's recipe
(recipes.py) with single values overridden by ``--epochs``, ``--batch-size``, ``--lr`` and
``--set KEY=VALUE``, and the DDP set-up under ``torchrun --nproc_per_node=K``.  The training
itself is in ``loop.py``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import datetime
import importlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ..registry import BACKENDS, available_backends, unavailable_reason
from . import loop
from .evaluate import AMP_DTYPES
from .models import MODELS
from .recipes import CHECKS, RECIPES, check

CONFIG_KEYS = ("conv", "model", "recipe", "seeds", "device", "amp", "channels_last", "data_dir", "limit_train",
               "limit_test")


# --- command line ----------------------------------------------------------------------------

def conv_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown conv backend {', '.join(unknown) or repr(text)}; "
                                         f"valid names: {', '.join(BACKENDS)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a backend is named twice in {text!r}")
    return names


def positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its errors
    return parse


def setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for --set: VALUE is a Python literal (2, 0.5, (0, 0.2, 1), None) or else a word."""
    key, equals, value = text.partition("=")
    if not equals or key.strip() not in CHECKS:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE with KEY one of: {', '.join(CHECKS)}")
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        parsed = value.strip()
    return key.strip(), parsed


def recipe_for(args, parser: argparse.ArgumentParser) -> dict:
    """The model's recipe with the command line's single values put in, checked."""
    recipe = copy.deepcopy(RECIPES[args.model])
    recipe.update(args.set or [])
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    try:
        check(recipe)
    except ValueError as e:
        parser.error(str(e))
    return recipe


def defaults(key: str) -> str:
    return "default per model: " + ", ".join(f"{m} {r[key]:g}" for m, r in RECIPES.items())


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cifarconv.train", description=__doc__.splitlines()[0])
    p.add_argument("--conv", type=conv_list, default=["torch"], help=f"backend, or a comma list of: {', '.join(BACKENDS)}")
    p.add_argument("--model", choices=MODELS, default="resnet9")
    p.add_argument("--epochs", type=positive(float), help=f"a fraction ends mid-epoch ({defaults('epochs')})")
    p.add_argument("--batch-size", type=positive(int), help=f"global batch size ({defaults('batch_size')})")
    p.add_argument("--lr", type=positive(float), help=f"peak lr in the recipe's own units, see recipes.py ({defaults('lr')})")
    p.add_argument("--set", type=setting, action="append", metavar="KEY=VALUE",
                   help="override one recipe value, e.g. --set tta=0 --set flip=random (repeatable; keys: "
                        + ", ".join(CHECKS) + ")")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=positive(int), default=1, help="number of seeds: --seed, --seed+1, ...")
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=AMP_DTYPES, help="autocast dtype (default bf16 on CUDA, off on CPU)")
    p.add_argument("--channels-last", action="store_true", help="channels_last model and inputs")
    p.add_argument("--data-dir", default=os.environ.get("CIFARCONV_DATA", "data"),
                   help="CIFAR-10 folder (default $CIFARCONV_DATA, else ./data)")
    p.add_argument("--limit-train", type=positive(int), help="train on the first N of a fixed class-balanced order")
    p.add_argument("--limit-test", type=positive(int), help="test on the first N of a fixed class-balanced order")
    p.add_argument("--out", help="output folder (default runs/<date>-<time>)")
    p.add_argument("--resume", nargs="?", const=True, metavar="DIR",
                   help="continue the killed run in DIR (or --out) with its saved settings; finished runs are kept")
    return p


def parse_args(argv=None, world_size: int = 1, local_rank: int = 0) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.resume:
        out = args.resume if isinstance(args.resume, str) else args.out
        if out is None:
            parser.error("--resume needs the run's folder: --resume DIR, or --resume with --out DIR")
        try:
            saved = json.loads(Path(out, "config.json").read_text())
        except FileNotFoundError:
            parser.error(f"--resume: {out} holds no run to continue (no config.json)")
        except ValueError as e:  # json.JSONDecodeError
            parser.error(f"--resume: {out}/config.json is not a run's settings ({e})")
        if not isinstance(saved, dict) or set(CONFIG_KEYS) - set(saved):
            parser.error(f"--resume: {out}/config.json lacks this trainer's settings (an older version's run?); "
                         f"start a new run with another --out")
        vars(args).update(saved, out=out)
    else:
        args.recipe = recipe_for(args, parser)
        args.seeds = list(range(args.seed, args.seed + args.seeds))
        if args.device == "auto":
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        if args.amp is None:
            args.amp = "bf16" if args.device.startswith("cuda") else "off"
        args.out = args.out or f"runs/{datetime.datetime.now():%Y%m%d-%H%M%S}"
        if Path(args.out, "config.json").exists():
            parser.error(f"--out {args.out} already holds a run: continue it with --resume {args.out}, or pick another folder")

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        parser.error(f"--device {args.device!r}: {e}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        if world_size > 1:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        parser.error(f"--device {args.device!r}: use auto, cpu, cuda or cuda:N")
    args.torch_device = device
    for name in args.conv:
        reason = unavailable_reason(name, device)
        if reason is not None:
            parser.error(f"--conv {name} cannot run on {device.type} here: {reason} "
                         f"(available on {device.type}: {', '.join(available_backends(device))})")
    if args.recipe["batch_size"] % world_size:
        parser.error(f"--batch-size {args.recipe['batch_size']} does not split evenly over {world_size} processes")
    return args


# The trainer's own dependencies (the library needs none of them): module -> package to install.
TRAINER_DEPENDENCIES = {"tqdm": "tqdm", "PIL": "Pillow", "matplotlib": "matplotlib"}


def require_dependencies() -> None:
    """One line and exit status 2, instead of an import error halfway through a run."""
    missing = []
    for module, package in TRAINER_DEPENDENCIES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        print(f"python -m cifarconv.train: error: the trainer needs {', '.join(missing)}, not installed here; "
              f'install the trainer\'s dependencies with: pip install "cifarconv[train]"', file=sys.stderr)
        raise SystemExit(2)


def main(argv=None) -> list[dict]:
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    args = parse_args(argv, world_size, int(os.environ.get("LOCAL_RANK", 0)))
    require_dependencies()
    if world_size > 1:
        dist.init_process_group("nccl" if args.torch_device.type == "cuda" else "gloo")
        if args.torch_device.type == "cuda":
            torch.cuda.set_device(args.torch_device)
        shared = [args.out]  # every rank writes under rank 0's timestamp
        dist.broadcast_object_list(shared)
        args.out = shared[0]
    config = None if args.resume else {k: getattr(args, k) for k in CONFIG_KEYS}  # what --resume reads back
    records = loop.compare(args, rank, world_size, config)
    if dist.is_initialized():
        dist.destroy_process_group()
    return records


if __name__ == "__main__":
    main()
