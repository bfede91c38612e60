"""Train CIFAR-10 with each chosen conv backend and compare them for accuracy and speed.

    python -m cifarconv.train                                     # cnn3 with torch, custom and cpp (CPU)
    python -m cifarconv.train --model cnn5-padded --conv torch    # one backend
    python -m cifarconv.train --conv torch,triton,cuda --seeds 3  # side by side
    python -m cifarconv.train --eval runs/X                       # score a trained run again

The command line: flags, their checks (one-line errors, exit status 2), the model's recipe
(recipes.py) with single values overridden by ``--epochs``, ``--batch-size``, ``--lr``, ``--val``
and ``--set KEY=VALUE``, the other jobs (``--eval``, ``--find-lr``, ``--summary``), and the DDP
set-up under ``torchrun --nproc_per_node=K``.  The training itself is in ``loop.py``.
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

from ..registry import BACKENDS, available_backends, names, unavailable_reason
from . import loop
from .checkpoint import CheckpointError
from .evaluate import AMP_DTYPES
from .models import MODELS
from .plugins import PluginError, load_plugins
from .recipes import CHECKS, NAMED_RECIPES, RECIPES, check, recipe, recipe_names

CONFIG_KEYS = ("conv", "model", "recipe", "recipe_name", "seeds", "folds", "device", "amp", "channels_last", "data_dir",
               "limit_train", "limit_test")
# With no --model: a network a laptop CPU trains in minutes, or Page's ResNet-9 on a GPU.
DEFAULT_MODEL = {"cpu": "cnn3", "mps": "cnn3", "cuda": "resnet9"}
PROG = "python -m cifarconv.train"


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: ``python -m cifarconv.train: error: ...`` (status 2)."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


# --- command line ----------------------------------------------------------------------------

def conv_list(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    valid = [name for name in names() if name != "auto"]
    unknown = [name for name in chosen if name not in valid]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"unknown conv backend {', '.join(unknown) or repr(text)}; "
                                         f"valid names: {', '.join(valid)} (--plugin FILE adds your own)")
    if len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(f"a backend is named twice in {text!r}")
    return chosen


def positive(kind, low=0, what="must be positive"):
    def parse(text):
        value = kind(text)
        if not value > low:
            raise argparse.ArgumentTypeError(f"{what}, got {text}")
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
    """The model's recipe (``--recipe``) with the command line's single values put in, checked."""
    try:
        chosen = copy.deepcopy(recipe(args.model, args.recipe_name))
    except KeyError as e:
        parser.error(f"--recipe {args.recipe_name}: {e.args[0]}")
    chosen.update(args.set or [])
    for key, flag in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("val_images", "val")):
        if getattr(args, flag) is not None:
            chosen[key] = getattr(args, flag)
    try:
        check(chosen)
    except ValueError as e:
        parser.error(str(e))
    return chosen


def defaults(key: str) -> str:
    return "default per model: " + ", ".join(f"{m} {r[key]:g}" for m, r in RECIPES.items())


def default_convs(device: torch.device) -> list[str]:
    """torch and each of cifarconv's backends that runs natively on the device (not Triton's interpreter)."""
    usable = available_backends(device)
    return [name for name, b in BACKENDS.items()
            if b.builtin and name in usable and not (name == "triton" and device.type == "cpu")]


def make_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--conv", type=conv_list, help=f"backend, or a comma list of: {', '.join(names())} (default: torch "
                   "and every other backend that runs natively on the device: torch,custom,cpp on the CPU)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="a Python file or module that registers conv backends (cifarconv.register_backend) for --conv; "
                        "repeatable; recorded in the run's config.json and imported again by --resume and --eval")
    p.add_argument("--model", choices=MODELS, help="the network (default: cnn3 on the CPU and MPS, resnet9 on CUDA)")
    p.add_argument("--recipe", dest="recipe_name", default="default", choices=NAMED_RECIPES, metavar="NAME",
                   help="the model's recipe: default (ours), or source (the seed project's own, for "
                        + ", ".join(m for m in RECIPES if "source" in recipe_names(m)) + ")")
    p.add_argument("--epochs", type=positive(float), help=f"a fraction ends mid-epoch ({defaults('epochs')})")
    p.add_argument("--batch-size", type=positive(int), help=f"global batch size ({defaults('batch_size')})")
    p.add_argument("--lr", type=positive(float), help=f"peak lr in the recipe's own units, see recipes.py ({defaults('lr')})")
    p.add_argument("--set", type=setting, action="append", metavar="KEY=VALUE",
                   help="override one recipe value, e.g. --set tta=0 --set flip=random (repeatable; keys: "
                        + ", ".join(CHECKS) + ")")
    p.add_argument("--val", type=positive(int, -1, "must be 0 or more"), metavar="N",
                   help="set N training images aside for validation: scored each epoch, the test set once at the end, "
                        "best.pt kept by validation accuracy (default: the recipe's, mostly 0)")
    p.add_argument("--folds", type=positive(int, 1, "cross-validation needs at least 2 folds"), metavar="K",
                   help="K-fold cross-validation: K runs, each validating on one fold of the training images")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=positive(int), default=1, help="number of seeds: --seed, --seed+1, ...")
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--amp", choices=AMP_DTYPES, help="autocast dtype (default bf16 on CUDA, off on CPU)")
    p.add_argument("--channels-last", action="store_true", help="channels_last model and inputs")
    p.add_argument("--data-dir", default=os.environ.get("CIFARCONV_DATA", "data"),
                   help="CIFAR-10 folder (default $CIFARCONV_DATA, else ./data)")
    p.add_argument("--limit-train", type=positive(int), help="train on the first N of a fixed class-balanced order")
    p.add_argument("--limit-test", type=positive(int), help="test on the first N of a fixed class-balanced order")
    p.add_argument("--out", help="output folder (default runs/<date>-<time>)")
    p.add_argument("--resume", nargs="?", const=True, metavar="DIR",
                   help="continue the killed run in DIR (or --out) with its saved settings; finished runs are kept")
    jobs = p.add_argument_group("other jobs than training")
    jobs.add_argument("--eval", metavar="RUN_DIR",
                      help="score a trained run's weights (final.pt, best.pt) on the test set with each --conv: "
                           "top-1, top-5, per class; trains nothing")
    jobs.add_argument("--find-lr", action="store_true",
                      help="LR range test: an exponential lr sweep over 200 steps; writes lr_find.png and "
                           "lr_find.json in --out and prints the suggested peak lr")
    jobs.add_argument("--summary", action="store_true",
                      help="print the model's layers (output shape, parameters, conv FLOPs) and exit")
    return p


def check_jobs(args, parser: argparse.ArgumentParser) -> None:
    """At most one of --resume, --eval, --find-lr and --summary; --folds without --val."""
    chosen = [flag for flag, on in (("--resume", args.resume), ("--eval", args.eval), ("--find-lr", args.find_lr),
                                    ("--summary", args.summary)) if on]
    if len(chosen) > 1:
        parser.error(f"{' and '.join(chosen)} exclude each other: --resume continues a run, --eval scores one, "
                     f"--find-lr and --summary start from a new model")
    if args.folds is not None and args.val is not None:
        parser.error("--folds and --val exclude each other: with --folds each fold is the validation set in turn")


def resolve_device(args, parser: argparse.ArgumentParser, world_size: int, local_rank: int) -> torch.device:
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        parser.error(f"--device {args.device!r}: {e}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        if world_size > 1:
            device = torch.device("cuda", local_rank)
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            built = "built with MPS, but no MPS device here" if torch.backends.mps.is_built() else "not built with MPS"
            parser.error(f"--device mps: MPS (Apple-silicon GPUs, macOS) is not available here "
                         f"(torch {torch.__version__}, {built}); use --device cpu")
    elif device.type != "cpu":
        parser.error(f"--device {args.device!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def parse_args(argv=None, world_size: int = 1, local_rank: int = 0) -> argparse.Namespace:
    # Plugins first (--plugin, and a resumed or evaluated run's own), so that --conv knows their backends.
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    early.add_argument("--resume", nargs="?", const=True)
    early.add_argument("--eval")
    early.add_argument("--out")
    known, _ = early.parse_known_args(argv)
    run = known.eval or (known.resume if isinstance(known.resume, str) else known.out if known.resume else None)
    try:
        plugins = load_plugins(known.plugin, run)
    except PluginError as e:
        Parser(prog=PROG).error(str(e))
    parser = make_parser()
    args = parser.parse_args(argv)
    args.plugins = plugins
    check_jobs(args, parser)
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
        args.torch_device = resolve_device(args, parser, world_size, local_rank)
    else:
        args.torch_device = resolve_device(args, parser, world_size, local_rank)
        if args.eval is None and args.model is None:
            args.model = DEFAULT_MODEL[args.torch_device.type]
        if args.conv is None:
            args.conv = default_convs(args.torch_device)
        args.recipe = None if args.eval is not None else recipe_for(args, parser)
        args.seeds = list(range(args.seed, args.seed + args.seeds))
        if args.amp is None:
            args.amp = "bf16" if args.torch_device.type == "cuda" else "off"
        args.out = args.out or f"runs/{datetime.datetime.now():%Y%m%d-%H%M%S}"
        if args.eval is None and not args.summary and Path(args.out, "config.json").exists():
            parser.error(f"--out {args.out} already holds a run: continue it with --resume {args.out}, or pick another folder")

    device = args.torch_device
    for name in args.conv:
        reason = unavailable_reason(name, device)
        if reason is not None:
            parser.error(f"--conv {name} cannot run on {device.type} here: {reason} "
                         f"(available on {device.type}: {', '.join(available_backends(device))})")
    if args.recipe is not None and args.recipe["batch_size"] % world_size:
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


def interpreter_note(args) -> None:
    """Triton on CPU tensors runs in its interpreter: say so before minutes pass without output."""
    if "triton" in args.conv and args.torch_device.type == "cpu":
        print("note: --conv triton on the CPU runs Triton's interpreter (TRITON_INTERPRET=1), which exists for tests: "
              "it emulates every kernel launch in numpy, thousands of times slower than torch (a cnn5-padded training "
              "step: about 7 s per image on 2 cores, torch under 2 ms; docs/train.md); give it a few dozen images "
              "(--limit-train, --limit-test), or run it on a GPU",
              file=sys.stderr, flush=True)


def main(argv=None) -> list[dict]:
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    args = parse_args(argv, world_size, int(os.environ.get("LOCAL_RANK", 0)))
    require_dependencies()
    if args.summary:
        from .summary import summary

        print(summary(args.model, args.recipe["net"]))
        return []
    interpreter_note(args)
    # Flush denormal floats to zero on the CPU (x86 FTZ/DAZ; a no-op elsewhere): without it, weights and Adam
    # moments that decay below 1.2e-38 made a cnn5 epoch on 2 cores 4x slower after 10 epochs.
    torch.set_flush_denormal(True)
    try:
        if args.eval is not None:
            from .eval_run import evaluate_run

            return evaluate_run(args)
        if args.find_lr:
            from .lr_finder import find_lr

            return [find_lr(args)]
        if world_size > 1:
            dist.init_process_group("nccl" if args.torch_device.type == "cuda" else "gloo")
            if args.torch_device.type == "cuda":
                torch.cuda.set_device(args.torch_device)
            shared = [args.out]  # every rank writes under rank 0's timestamp
            dist.broadcast_object_list(shared)
            args.out = shared[0]
        # what --resume reads back, and the plugins it imports again
        config = None if args.resume else {**{k: getattr(args, k) for k in CONFIG_KEYS}, "plugins": args.plugins}
        records = loop.compare(args, rank, world_size, config)
    except CheckpointError as e:
        raise SystemExit(f"error: {e}") from None
    finally:
        torch.set_flush_denormal(False)  # torch's default, for whoever called main() in-process
    if dist.is_initialized():
        dist.destroy_process_group()
    return records


if __name__ == "__main__":
    main()
