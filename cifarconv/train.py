"""Train CIFAR-10 with each chosen conv backend and compare them for accuracy and speed.

    python -m cifarconv.train --conv cuda                         # one backend
    python -m cifarconv.train --conv torch,triton,cuda --seeds 3  # side by side

Everything but the conv is held fixed: per seed, every backend starts from the same
weights and sees the same data order and augmentation (runs interleave: seed 0 for each
backend, then seed 1, ...).  Reported accuracy is the final epoch's, on the test set.
Timing covers the training steps only (not evaluation), starts after one warm-up step run
on a throwaway copy of the model (autotuning, JIT builds), and synchronizes CUDA before
reading the clock.  Under ``torchrun --nproc_per_node=K`` it trains with DDP.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import convert
from .checkpoint import load_checkpoint, save_atomically, save_checkpoint
from .data import DataError, load_cifar10
from .data.gpu_loader import GpuLoader, channel_stats, class_balanced_subset
from .models import MODELS, FastNet
from .registry import BACKENDS, available_backends, unavailable_reason
from .report import comparison_table, plot_curves, write_json, write_metrics

# Per model: (epochs, batch size, peak learning rate).  ResNet-9 is David Page's recipe.
RECIPES = {"resnet9": (24, 512, 0.4), "resnet18": (30, 512, 0.2), "fastnet": (10, 1024, 0.4)}
MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING, WARMUP_FRACTION = 0.9, 5e-4, 0.2, 0.2
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
CONFIG_KEYS = ("conv", "model", "epochs", "batch_size", "lr", "seeds", "device", "amp", "channels_last",
               "data_dir", "limit_train", "limit_test")


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


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cifarconv.train", description=__doc__.splitlines()[0])
    p.add_argument("--conv", type=conv_list, default=["torch"], help=f"backend, or a comma list of: {', '.join(BACKENDS)}")
    p.add_argument("--model", choices=MODELS, default="resnet9")
    p.add_argument("--epochs", type=positive(int), help="default per model: " + ", ".join(f"{m} {r[0]}" for m, r in RECIPES.items()))
    p.add_argument("--batch-size", type=positive(int), help="global batch size (default per model: 512, 512, 1024)")
    p.add_argument("--lr", type=positive(float), help="peak learning rate of the one-cycle schedule (default per model)")
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
        vars(args).update(saved, out=out)
    else:
        epochs, batch_size, lr = RECIPES[args.model]
        args.epochs, args.batch_size, args.lr = args.epochs or epochs, args.batch_size or batch_size, args.lr or lr
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
    if args.batch_size % world_size:
        parser.error(f"--batch-size {args.batch_size} does not split evenly over {world_size} processes")
    return args


# --- one training run: one backend, one seed -----------------------------------------------

def one_cycle(total_steps: int):
    """Learning-rate factor per step: linear up over the first WARMUP_FRACTION, then linear down to 0."""
    peak = max(1, round(WARMUP_FRACTION * total_steps))

    def factor(step):
        step += 1
        return step / peak if step <= peak else max(0.0, (total_steps + 1 - step) / (total_steps + 1 - peak))
    return factor


def build_model(args, conv: str, seed: int, train: GpuLoader) -> nn.Module:
    """The same initial weights for every backend: seeded init, then the convs switch backend."""
    torch.manual_seed(seed)
    model = MODELS[args.model]()
    if isinstance(model, FastNet):
        images = (train.images[:5000].float() - train.mean) / train.std  # the same on every rank
        model.init_whitening(images.cpu())
    model = convert(model, conv).to(args.torch_device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def train_step(model, optimizer, scaler, x, y, amp):
    with torch.autocast(x.device.type, dtype=AMP_DTYPES[amp], enabled=amp != "off"):
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), (logits.argmax(1) == y).sum()


def make_optimizer(args, model, total_steps):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(total_steps))
    scaler = torch.amp.GradScaler(args.torch_device.type, enabled=args.amp == "fp16")
    return optimizer, scheduler, scaler


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def all_sum(*values: torch.Tensor) -> list[float]:
    total = torch.stack([v.double() for v in values])
    if dist.is_initialized():
        dist.all_reduce(total)
    return total.tolist()


@torch.no_grad()
def evaluate(model, test: GpuLoader, amp: str) -> tuple[float, float]:
    model.eval()
    loss = correct = count = torch.zeros((), device=test.images.device)
    for x, y in test.epoch(0, 0):
        with torch.autocast(x.device.type, dtype=AMP_DTYPES[amp], enabled=amp != "off"):
            logits = model(x)
        loss = loss + F.cross_entropy(logits.float(), y, reduction="sum")
        correct, count = correct + (logits.argmax(1) == y).sum(), count + len(y)
    model.train()
    loss, correct, count = all_sum(loss, correct, count)
    return loss / count, correct / count


def train_run(args, conv: str, seed: int, train: GpuLoader, test: GpuLoader, run_dir: Path, rank: int):
    """Train (or finish training) one backend with one seed; return its record and per-epoch metrics."""
    from tqdm import tqdm

    device, world_size = args.torch_device, dist.get_world_size() if dist.is_initialized() else 1
    model = build_model(args, conv, seed, train)
    optimizer, scheduler, scaler = make_optimizer(args, model, len(train) * args.epochs)
    state = {"epoch": 0, "metrics": [], "train_seconds": 0.0, "images": 0}
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, device, model, optimizer, scheduler, scaler)

    # Warm-up: one step on a throwaway copy, so autotuning and JIT builds stay out of the timing.
    warm = copy.deepcopy(model)
    warm_optimizer, _, warm_scaler = make_optimizer(args, warm, 1)
    train_step(warm, warm_optimizer, warm_scaler, *next(iter(train.epoch(seed, 0))), args.amp)
    del warm, warm_optimizer, warm_scaler
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world_size > 1 else model
    for epoch in range(state["epoch"], args.epochs):
        loss_sum = correct = torch.zeros((), device=device)
        seen = 0
        bar = tqdm(total=len(train), desc=f"{conv} seed {seed} epoch {epoch + 1}/{args.epochs}", disable=rank != 0,
                   unit="batch", dynamic_ncols=True)
        synchronize(device)
        start = time.perf_counter()
        for step, (x, y) in enumerate(train.epoch(seed, epoch)):
            loss, hits = train_step(net, optimizer, scaler, x, y, args.amp)
            scheduler.step()
            loss_sum, correct, seen = loss_sum + loss * len(y), correct + hits, seen + len(y)
            bar.update()
            if step % 10 == 9 or step == len(train) - 1:  # reading the values waits for the device
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{(loss_sum / seen).item():.3f}", acc=f"{(correct / seen).item():.3f}",
                                img_s=f"{seen * world_size / elapsed:.0f}")
        synchronize(device)
        seconds = time.perf_counter() - start
        bar.close()
        loss_sum, correct, seen_all = all_sum(loss_sum, correct, torch.tensor(float(seen), device=device))
        test_loss, test_accuracy = evaluate(net, test, args.amp)
        state["metrics"].append(dict(epoch=epoch + 1, train_loss=loss_sum / seen_all, train_accuracy=correct / seen_all,
                                     test_loss=test_loss, test_accuracy=test_accuracy, epoch_seconds=seconds,
                                     images_per_second=seen_all / seconds))
        state.update(epoch=epoch + 1, train_seconds=state["train_seconds"] + seconds, images=state["images"] + int(seen_all))
        if rank == 0:
            write_metrics(run_dir / "metrics.csv", state["metrics"])
            save_checkpoint(checkpoint, state, model, optimizer, scheduler, scaler)
            print(f"{conv} seed {seed} epoch {epoch + 1}: train loss {state['metrics'][-1]['train_loss']:.4f}, "
                  f"test accuracy {test_accuracy:.4f}, {seconds:.1f} s", flush=True)

    record = dict(conv=conv, seed=seed, model=args.model, test_accuracy=state["metrics"][-1]["test_accuracy"],
                train_seconds=state["train_seconds"], epochs=args.epochs,
                images_per_second=state["images"] / state["train_seconds"],
                peak_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
                device=str(device), world_size=world_size, amp=args.amp, batch_size=args.batch_size, lr=args.lr,
                train_images=len(train.labels), test_images=len(test.labels))
    return record, state["metrics"]


# --- the whole comparison ----------------------------------------------------------------------

def load_data(args, rank: int, world_size: int) -> tuple[GpuLoader, GpuLoader]:
    try:
        data = load_cifar10(args.data_dir)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    train_x, train_y, test_x, test_y = data
    if args.limit_train:
        keep = class_balanced_subset(train_y, args.limit_train)
        train_x, train_y = train_x[keep], train_y[keep]
    if args.limit_test:
        keep = class_balanced_subset(test_y, args.limit_test)
        test_x, test_y = test_x[keep], test_y[keep]
    mean, std = channel_stats(train_x)  # normalization from the training images used
    common = dict(device=args.torch_device, mean=mean, std=std, rank=rank, world_size=world_size,
                  channels_last=args.channels_last)
    return (GpuLoader(train_x, train_y, args.batch_size // world_size, train=True, **common),
            GpuLoader(test_x, test_y, 1000, train=False, **common))


def main(argv=None) -> list[dict]:
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    args = parse_args(argv, world_size, int(os.environ.get("LOCAL_RANK", 0)))
    if world_size > 1:
        dist.init_process_group("nccl" if args.torch_device.type == "cuda" else "gloo")
        if args.torch_device.type == "cuda":
            torch.cuda.set_device(args.torch_device)
        shared = [args.out]  # every rank writes under rank 0's timestamp
        dist.broadcast_object_list(shared)
        args.out = shared[0]
    out = Path(args.out)
    train, test = load_data(args, rank, world_size)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            write_json(out / "config.json", {k: getattr(args, k) for k in CONFIG_KEYS})
        print(f"{args.model} on {len(train.labels)} train / {len(test.labels)} test images, {args.epochs} epochs, "
              f"batch {args.batch_size}, lr {args.lr}, {args.torch_device} x{world_size}, amp {args.amp}; "
              f"conv {', '.join(args.conv)}; seeds {args.seeds}; writing to {out}", flush=True)

    records, metrics = [], {}
    for seed in args.seeds:  # interleaved: every backend for one seed, then the next seed
        for conv in args.conv:
            run_dir = out / f"{conv}-seed{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            result = run_dir / "result.pt"
            if result.exists():  # finished before an interruption
                saved = torch.load(result, weights_only=True)
                record, rows = saved["record"], saved["metrics"]
            else:
                record, rows = train_run(args, conv, seed, train, test, run_dir, rank)
                if rank == 0:
                    save_atomically(result, {"record": record, "metrics": rows})
            records.append(record)
            metrics.setdefault(conv, []).append(rows)
            if rank == 0:
                write_json(out / "results.json", records)

    if rank == 0:
        plot_curves(out / "curves.png", metrics)
        table = comparison_table(records)
        (out / "table.txt").write_text(table + "\n")
        print(f"\n{args.model}, {args.epochs} epochs, final-epoch test accuracy over seeds {args.seeds}:\n{table}\n"
              f"results in {out}/", flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()
    return records


if __name__ == "__main__":
    main()
