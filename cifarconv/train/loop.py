"""Training: one run (one backend, one seed), and the comparison of backends over seeds.

Everything but the conv is held fixed: per seed, every backend starts from the same
weights and sees the same data order and augmentation (runs interleave: seed 0 for each
backend, then seed 1, ...).  Reported accuracy is the final epoch's, on the test set.
Timing covers the training steps only (not evaluation), starts after one warm-up step run
on a throwaway copy of the model (autotuning, JIT builds), and synchronizes CUDA before
reading the clock.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .. import convert
from .checkpoint import load_checkpoint, save_atomically, save_checkpoint
from .data import DataError, load_cifar10
from .data.gpu_loader import GpuLoader, channel_stats, class_balanced_subset
from .models import MODELS, FastNet
from .recipes import LABEL_SMOOTHING, MOMENTUM, WARMUP_FRACTION, WEIGHT_DECAY
from .report import comparison_table, plot_curves, write_json, write_metrics

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


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


def compare(args, rank: int, world_size: int, config: dict | None) -> list[dict]:
    """Train every (seed, backend) pair, interleaved, keeping runs finished before an interruption;
    write config.json (unless ``config`` is None: a resumed run), results.json, curves.png and
    table.txt (rank 0), and return the records."""
    out = Path(args.out)
    train, test = load_data(args, rank, world_size)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if config is not None:
            write_json(out / "config.json", config)
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
    return records
