"""Training: one run (one backend, one seed) with its model's recipe, and the comparison of
backends over seeds.

Everything but the conv is held fixed: per seed, every backend starts from the same
weights and sees the same data order and augmentation (runs interleave: seed 0 for each
backend, then seed 1, ...).  The accuracy reported is the final epoch's on the test set
(never the best epoch's), with the recipe's test-time augmentation, and without it beside.

Timing, as airbench94 counts it: building the model with its whitening init, the training
steps, and the final evaluation with TTA; not the per-epoch evaluation.  It starts after
one warm-up step run on a throwaway copy of the model (autotuning, JIT builds), and
synchronizes CUDA before reading the clock.
"""

from __future__ import annotations

import copy
import math
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
from .evaluate import AMP_DTYPES, all_sum, evaluate
from .models import MODELS, FastNet
from .optim import Lookahead, lr_factor, make_optimizer
from .report import comparison_table, plot_curves, write_json, write_metrics


def total_steps(recipe: dict, batches_per_epoch: int) -> int:
    """A fractional epoch count ends mid-epoch: 9.9 epochs of 48 batches are 476 steps."""
    return math.ceil(recipe["epochs"] * batches_per_epoch - 1e-9)


def build_model(args, conv: str, seed: int, train: GpuLoader) -> nn.Module:
    """The same initial weights for every backend: seeded init, then the convs switch backend."""
    recipe = args.recipe
    torch.manual_seed(seed)
    model = MODELS[args.model]()
    if isinstance(model, FastNet) and recipe["whiten_images"]:
        # A fixed class-balanced subset: image folders list their train images class by class.
        keep = class_balanced_subset(train.labels.cpu().numpy(), min(recipe["whiten_images"], len(train.labels)))
        model.init_whitening(train.normalized(torch.from_numpy(keep).to(train.images.device)), recipe["whiten_eps"])
    model = convert(model, conv).to(args.torch_device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def set_whitening_bias(model: nn.Module, recipe: dict, epoch: int) -> bool:
    """Train the whitening conv's bias for the first whiten_bias_epochs epochs only; True if that changed."""
    if not isinstance(model, FastNet):
        return False
    trainable = epoch < recipe["whiten_bias_epochs"]
    changed = model.whiten.bias.requires_grad != trainable
    model.whiten.bias.requires_grad_(trainable)
    return changed


def train_step(model, optimizer, scaler, x, y, amp: str, label_smoothing: float, world_size: int):
    with torch.autocast(x.device.type, dtype=AMP_DTYPES[amp], enabled=amp != "off"):
        logits = model(x)
        # Summed over the batch, as both sources do.  DDP averages the processes' gradients:
        # times world_size, they add up to the gradient of the whole batch's sum.
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing, reduction="sum") * world_size
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach() / world_size, (logits.argmax(1) == y).sum()


def training_objects(args, model: nn.Module, steps: int):
    optimizer = make_optimizer(model, args.recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(args.recipe, steps))
    scaler = torch.amp.GradScaler(args.torch_device.type, enabled=args.amp == "fp16")
    return optimizer, scheduler, scaler


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wrap(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """DDP around the model; built again whenever the set of trainable parameters changes."""
    if world_size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def train_run(args, conv: str, seed: int, train: GpuLoader, test: GpuLoader, run_dir: Path, rank: int):
    """Train (or finish training) one backend with one seed; return its record and per-epoch metrics."""
    from tqdm import tqdm

    recipe, device = args.recipe, args.torch_device
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    steps = total_steps(recipe, len(train))
    epochs = math.ceil(steps / len(train))
    synchronize(device)
    start = time.perf_counter()
    model = build_model(args, conv, seed, train)
    synchronize(device)
    # train_seconds: model building (whitening init) and training steps; step_seconds: the steps alone.
    state = {"epoch": 0, "step": 0, "metrics": [], "train_seconds": time.perf_counter() - start, "step_seconds": 0.0,
             "images": 0}
    optimizer, scheduler, scaler = training_objects(args, model, steps)
    lookahead = Lookahead(model, recipe["lookahead_every"], recipe["lookahead_decay"], recipe["lookahead_power"]) \
        if recipe["lookahead_every"] else None
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, device, model, optimizer, scheduler, scaler, lookahead)

    # Warm-up: one step on a throwaway copy, so autotuning and JIT builds stay out of the timing.
    warm = copy.deepcopy(model)
    warm_optimizer, _, warm_scaler = training_objects(args, warm, 1)
    train_step(warm, warm_optimizer, warm_scaler, *next(iter(train.epoch(seed, 0))), args.amp,
               recipe["label_smoothing"], 1)
    del warm, warm_optimizer, warm_scaler
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    net = None
    for epoch in range(state["epoch"], epochs):
        if set_whitening_bias(model, recipe, epoch) or net is None:
            net = wrap(model, device, world_size)
        loss_sum = correct = torch.zeros((), device=device)
        seen, todo = 0, min(len(train), steps - state["step"])  # the last of a fractional count stops early
        bar = tqdm(total=todo, desc=f"{conv} seed {seed} epoch {epoch + 1}/{epochs}", disable=rank != 0,
                   unit="batch", dynamic_ncols=True)
        synchronize(device)
        start = time.perf_counter()
        for i, (x, y) in zip(range(todo), train.epoch(seed, epoch)):
            loss, hits = train_step(net, optimizer, scaler, x, y, args.amp, recipe["label_smoothing"], world_size)
            scheduler.step()
            state["step"] += 1
            if lookahead is not None:
                lookahead.after_step(model, state["step"], steps)
            loss_sum, correct, seen = loss_sum + loss, correct + hits, seen + len(y)
            bar.update()
            if i % 10 == 9 or i == todo - 1:  # reading the values waits for the device
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
        state.update(epoch=epoch + 1, train_seconds=state["train_seconds"] + seconds,
                     step_seconds=state["step_seconds"] + seconds, images=state["images"] + int(seen_all))
        if rank == 0:
            write_metrics(run_dir / "metrics.csv", state["metrics"])
            save_checkpoint(checkpoint, state, model, optimizer, scheduler, scaler, lookahead)
            print(f"{conv} seed {seed} epoch {epoch + 1}: train loss {state['metrics'][-1]['train_loss']:.4f}, "
                  f"test accuracy {test_accuracy:.4f}, {seconds:.1f} s", flush=True)

    plain = state["metrics"][-1]["test_accuracy"]
    final, tta_seconds = plain, 0.0
    if recipe["tta"]:
        synchronize(device)
        start = time.perf_counter()
        _, final = evaluate(model if net is None else net, test, args.amp, recipe["tta"])
        synchronize(device)
        tta_seconds = time.perf_counter() - start
    record = dict(conv=conv, seed=seed, model=args.model, test_accuracy=final, test_accuracy_no_tta=plain,
                  tta=recipe["tta"], train_seconds=state["train_seconds"] + tta_seconds, epochs=recipe["epochs"],
                  steps=state["step"], images_per_second=state["images"] / state["step_seconds"],
                  peak_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
                  device=str(device), world_size=world_size, amp=args.amp, batch_size=recipe["batch_size"],
                  lr=recipe["lr"], train_images=len(train.labels), test_images=len(test.labels))
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
    recipe = args.recipe
    augmentation = dict(crop_pad=recipe["crop_pad"], cutout=recipe["cutout"], flip=recipe["flip"])
    return (GpuLoader(train_x, train_y, recipe["batch_size"] // world_size, train=True, **common, **augmentation),
            GpuLoader(test_x, test_y, 1000, train=False, **common))


def compare(args, rank: int, world_size: int, config: dict | None) -> list[dict]:
    """Train every (seed, backend) pair, interleaved, keeping runs finished before an interruption;
    write config.json (unless ``config`` is None: a resumed run), results.json, curves.png and
    table.txt (rank 0), and return the records."""
    out, recipe = Path(args.out), args.recipe
    train, test = load_data(args, rank, world_size)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if config is not None:
            write_json(out / "config.json", config)
        print(f"{args.model} on {len(train.labels)} train / {len(test.labels)} test images, {recipe['epochs']:g} epochs "
              f"({total_steps(recipe, len(train))} steps), batch {recipe['batch_size']}, lr {recipe['lr']:g} "
              f"({recipe['convention']}), tta {recipe['tta']}, {args.torch_device} x{world_size}, amp {args.amp}; "
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
        tta = f", with TTA level {recipe['tta']}" if recipe["tta"] else ""
        print(f"\n{args.model}, {recipe['epochs']:g} epochs, final-epoch test accuracy{tta} over seeds {args.seeds}:\n"
              f"{table}\nresults in {out}/", flush=True)
    return records
