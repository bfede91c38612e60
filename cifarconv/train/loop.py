"""Training: one run (one backend, one seed, one fold) with its model's recipe, and the
comparison of backends over seeds (and folds).

Everything but the conv is held fixed: per seed, every backend starts from the same
weights and sees the same data order and augmentation (runs interleave: seed 0 for each
backend, then seed 1, ...).  With a validation split (``--val``, ``--folds`` or the recipe's
``val_images``) the validation set is scored after every epoch and the test set once, at the
end; without one the test set is scored after every epoch.  The test accuracy reported is
the final epoch's (never the best epoch's), with the recipe's test-time augmentation, and
without it beside.  ``best.pt`` keeps the weights of the epoch with the best validation
accuracy (never chosen on the test set), ``final.pt`` those after the last epoch.

Timing, as airbench94 counts it: building the model with its whitening init, the training
steps, and the final evaluation with TTA; not the per-epoch evaluation.  It starts after
one warm-up step run on a throwaway copy of the model (autotuning, JIT builds), and
synchronizes the device before reading the clock.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .. import convert
from .checkpoint import load_checkpoint, read, save_atomically, save_checkpoint, save_weights
from .data import CLASSES, Cifar10, DataError, load_cifar10
from .data.gpu_loader import GpuLoader, channel_stats, class_balanced_subset
from .data.splits import Split, SplitError, splits
from .evaluate import AMP_DTYPES, all_sum, evaluate, predict
from .models import FastNet, build_network
from .optim import Lookahead, Schedule, make_optimizer
from .pictures import write_pictures
from .report import add_time_over_torch, comparison_table, plot_curves, plural, write_json, write_metrics

SUMMED = ("airbench", "per_example")  # conventions whose loss is summed over the batch; "torch": the mean
GRID_IMAGES = 40  # test images in predictions.png: four of each class


def total_steps(recipe: dict, batches_per_epoch: int) -> int:
    """A fractional epoch count ends mid-epoch: 9.9 epochs of 48 batches are 476 steps."""
    return math.ceil(recipe["epochs"] * batches_per_epoch - 1e-9)


def loss_reduction(recipe: dict) -> str:
    return "sum" if recipe["convention"] in SUMMED else "mean"


def build_model(args, conv: str, seed: int, train: GpuLoader) -> nn.Module:
    """The same initial weights for every backend: seeded init, then the convs switch backend."""
    recipe = args.recipe
    torch.manual_seed(seed)
    model = build_network(args.model, recipe["net"])
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


def train_step(model, optimizer, scaler, x, y, amp: str, label_smoothing: float, world_size: int,
               reduction: str = "sum"):
    """One step; returns (the batch's summed loss, its correct predictions), both on the device."""
    with torch.autocast(x.device.type, dtype=AMP_DTYPES[amp], enabled=amp != "off"):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing, reduction=reduction)
        if reduction == "sum":
            # Summed over the batch, as airbench and Page do.  DDP averages the processes' gradients:
            # times world_size, they add up to the gradient of the whole batch's sum.  (A mean needs
            # nothing: DDP's average of the processes' means is the whole batch's mean.)
            loss = loss * world_size
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    summed = loss.detach() / world_size if reduction == "sum" else loss.detach() * len(y)
    return summed, (logits.argmax(1) == y).sum()


def training_objects(args, model: nn.Module, steps: int):
    optimizer = make_optimizer(model, args.recipe)
    schedule = Schedule(optimizer, args.recipe, steps)
    scaler = torch.amp.GradScaler(args.torch_device.type, enabled=args.amp == "fp16")
    return optimizer, schedule, scaler


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def wrap(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """DDP around the model; built again whenever the set of trainable parameters changes."""
    if world_size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class Loaders(NamedTuple):
    train: GpuLoader
    val: GpuLoader | None  # None without a validation split
    test: GpuLoader
    mean: list[float]      # the normalization the network is fed with, on the 0-255 scale
    std: list[float]


def read_data(args) -> Cifar10:
    try:
        return load_cifar10(args.data_dir)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


def normalization(recipe: dict, images) -> tuple[list[float], list[float]]:
    if recipe["normalize"] == "unit":  # x / 255
        return [0.0] * 3, [255.0] * 3
    return channel_stats(images)  # from the training images used


def make_loaders(args, data: Cifar10, split: Split, rank: int, world_size: int) -> Loaders:
    recipe = args.recipe
    train_x, train_y = data.train_images[split.train], data.train_labels[split.train]
    test_x, test_y = data.test_images, data.test_labels
    if args.limit_test:
        keep = class_balanced_subset(test_y, args.limit_test)
        test_x, test_y = test_x[keep], test_y[keep]
    mean, std = normalization(recipe, train_x)
    common = dict(device=args.torch_device, mean=mean, std=std, rank=rank, world_size=world_size,
                  channels_last=args.channels_last)
    augmentation = dict(crop_pad=recipe["crop_pad"], cutout=recipe["cutout"], flip=recipe["flip"])
    val = None
    if len(split.val):
        val = GpuLoader(data.train_images[split.val], data.train_labels[split.val], 1000, train=False, **common)
    train = GpuLoader(train_x, train_y, recipe["batch_size"] // world_size, train=True, **common, **augmentation)
    return Loaders(train, val, GpuLoader(test_x, test_y, 1000, train=False, **common), mean, std)


def run_name(conv: str, seed: int, fold: int | None) -> str:
    return f"{conv}-seed{seed}" + ("" if fold is None else f"-fold{fold}")


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f} %"


def grid(model, test: GpuLoader, amp: str, tta: int) -> tuple:
    """predictions.png's images (uint8 N, H, W, 3), true and predicted labels: four test images of each class."""
    index = torch.from_numpy(class_balanced_subset(test.labels.cpu().numpy(), min(GRID_IMAGES, len(test.labels))))
    index = index.to(test.images.device)
    model.eval()
    predicted = predict(model, test.normalized(index), amp, tta, test.memory_format).argmax(1)
    model.train()
    images = test.images[index].permute(0, 2, 3, 1).cpu().numpy()
    return images, test.labels[index].tolist(), predicted.tolist()


def train_run(args, conv: str, seed: int, loaders: Loaders, run_dir: Path, rank: int, fold: int | None = None):
    """Train (or finish training) one backend with one seed; return its record and per-epoch metrics."""
    from tqdm import tqdm

    recipe, device = args.recipe, args.torch_device
    train, val, test = loaders.train, loaders.val, loaders.test
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    reduction = loss_reduction(recipe)
    steps = total_steps(recipe, len(train))
    epochs = math.ceil(steps / len(train))
    synchronize(device)
    start = time.perf_counter()
    model = build_model(args, conv, seed, train)
    synchronize(device)
    # train_seconds: model building (whitening init) and training steps; step_seconds: the steps alone.
    state = {"epoch": 0, "step": 0, "metrics": [], "train_seconds": time.perf_counter() - start, "step_seconds": 0.0,
             "images": 0, "best_val": None, "best_epoch": None}
    optimizer, schedule, scaler = training_objects(args, model, steps)
    lookahead = Lookahead(model, recipe["lookahead_every"], recipe["lookahead_decay"], recipe["lookahead_power"]) \
        if recipe["lookahead_every"] else None
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, device, model, optimizer, schedule, scaler, lookahead)

    # Warm-up: one step on a throwaway copy, so autotuning and JIT builds stay out of the timing.
    warm = copy.deepcopy(model)
    warm_optimizer, _, warm_scaler = training_objects(args, warm, 1)
    train_step(warm, warm_optimizer, warm_scaler, *next(iter(train.epoch(seed, 0))), args.amp,
               recipe["label_smoothing"], 1, reduction)
    del warm, warm_optimizer, warm_scaler
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    name = f"{conv} seed {seed}" + ("" if fold is None else f" fold {fold}")
    held_out, split = (val, "val") if val is not None else (test, "test")
    weights = dict(model_name=args.model, net=recipe["net"], mean=loaders.mean, std=loaders.std, tta=recipe["tta"])
    net, scores = None, None
    for epoch in range(state["epoch"], epochs):
        if set_whitening_bias(model, recipe, epoch) or net is None:
            net = wrap(model, device, world_size)
        loss_sum = correct = torch.zeros((), device=device)
        seen, todo = 0, min(len(train), steps - state["step"])  # the last of a fractional count stops early
        bar = tqdm(total=todo, desc=f"{name} epoch {epoch + 1}/{epochs}", disable=rank != 0, unit="batch",
                   dynamic_ncols=True)
        synchronize(device)
        start = time.perf_counter()
        for i, (x, y) in zip(range(todo), train.epoch(seed, epoch)):
            loss, hits = train_step(net, optimizer, scaler, x, y, args.amp, recipe["label_smoothing"], world_size,
                                    reduction)
            schedule.after_step()
            state["step"] += 1
            if lookahead is not None:
                lookahead.after_step(model, state["step"], steps)
            loss_sum, correct, seen = loss_sum + loss, correct + hits, seen + len(y)
            bar.update()
            if i % 10 == 9 or i == todo - 1:  # reading the values waits for the device
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{(loss_sum / seen).item():.3f}", acc=f"{100 * (correct / seen).item():.1f}%",
                                img_s=f"{seen * world_size / elapsed:.0f}")
        synchronize(device)
        seconds = time.perf_counter() - start
        bar.close()
        loss_sum, correct, seen_all = all_sum(loss_sum, correct, torch.tensor(float(seen), device=device))
        scores = evaluate(net, held_out, args.amp)
        row = dict(epoch=epoch + 1, train_loss=loss_sum / seen_all, train_accuracy=correct / seen_all,
                   **{f"{split}_loss": scores.loss, f"{split}_accuracy": scores.top1, f"{split}_top5": scores.top5},
                   epoch_seconds=seconds, images_per_second=seen_all / seconds)
        schedule.after_epoch(scores.top1 if val is not None else row["train_accuracy"])  # never the test set
        row["lr"] = optimizer.param_groups[-1]["lr"]
        state["metrics"].append(row)
        state.update(epoch=epoch + 1, train_seconds=state["train_seconds"] + seconds,
                     step_seconds=state["step_seconds"] + seconds, images=state["images"] + int(seen_all))
        improved = val is not None and (state["best_val"] is None or scores.top1 > state["best_val"])
        if improved:
            state.update(best_val=scores.top1, best_epoch=epoch + 1)
        if rank == 0:
            if improved:
                save_weights(run_dir / "best.pt", **weights, model=model, kind="best", epoch=epoch + 1, conv=conv,
                             seed=seed, fold=fold, val_accuracy=scores.top1)
            write_metrics(run_dir / "metrics.csv", state["metrics"])
            save_checkpoint(checkpoint, state, model, optimizer, schedule, scaler, lookahead)
            print(f"{name} epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4f}, train top-1 "
                  f"{percent(row['train_accuracy'])}, {split} top-1 {percent(scores.top1)}, top-5 "
                  f"{percent(scores.top5)}, {seconds:.1f} s", flush=True)

    evaluated = model if net is None else net
    if val is not None or scores is None:  # the test set once, at the end (or: every epoch ran before a resume)
        scores = evaluate(evaluated, test, args.amp)
    plain, final, tta_seconds = scores, scores, 0.0
    if recipe["tta"]:
        synchronize(device)
        start = time.perf_counter()
        final = evaluate(evaluated, test, args.amp, recipe["tta"])
        synchronize(device)
        tta_seconds = time.perf_counter() - start
    last = state["metrics"][-1]
    record = dict(conv=conv, seed=seed, fold=fold, model=args.model, recipe=args.recipe_name,
                  test_accuracy=final.top1, test_top5=final.top5, test_accuracy_no_tta=plain.top1,
                  test_top5_no_tta=plain.top5, per_class_accuracy=dict(zip(CLASSES, final.per_class)),
                  confusion=final.confusion, val_accuracy=last.get("val_accuracy"), val_top5=last.get("val_top5"),
                  best_val_accuracy=state["best_val"], best_epoch=state["best_epoch"], tta=recipe["tta"],
                  train_seconds=state["train_seconds"] + tta_seconds, epochs=recipe["epochs"], steps=state["step"],
                  images_per_second=state["images"] / state["step_seconds"],
                  peak_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
                  device=str(device), world_size=world_size, amp=args.amp, batch_size=recipe["batch_size"],
                  lr=recipe["lr"], train_images=min(len(train) * train.batch_size * world_size, len(train.labels)),
                  train_set_images=len(train.labels), val_images=0 if val is None else len(val.labels),
                  test_images=len(test.labels))
    if rank == 0:
        save_weights(run_dir / "final.pt", **weights, model=model, kind="final", epoch=state["epoch"], conv=conv,
                     seed=seed, fold=fold, test_accuracy=final.top1)
        write_pictures(run_dir, final, *grid(model, test, args.amp, recipe["tta"]), CLASSES, f"{args.model}, {name}")
        best = "" if state["best_val"] is None else \
            f"; best {percent(state['best_val'])} validation top-1 at epoch {state['best_epoch']} (best.pt)"
        tta = f" with TTA level {recipe['tta']}" if recipe["tta"] else ""
        print(f"{name}: test top-1 {percent(final.top1)}, top-5 {percent(final.top5)}{tta}{best}", flush=True)
    return record, state["metrics"]


def read_result(path: Path) -> dict:
    return read(path, "cpu", "delete it to train that backend and seed again (resume with --resume)",
                ("record", "metrics"))


def compare(args, rank: int, world_size: int, config: dict | None) -> list[dict]:
    """Train every (fold, seed, backend), interleaved, keeping runs finished before an interruption;
    write config.json (unless ``config`` is None: a resumed run), results.json, curves.png and
    table.txt (rank 0), and return the records."""
    out, recipe = Path(args.out), args.recipe
    data = read_data(args)
    try:
        plan = splits(data.train_labels, recipe["val_images"], args.folds, args.limit_train)
    except SplitError as e:
        raise SystemExit(f"error: {e}") from None

    records, metrics = [], {}
    for split in plan:
        loaders = make_loaders(args, data, split, rank, world_size)
        if rank == 0 and split is plan[0]:
            out.mkdir(parents=True, exist_ok=True)
            if config is not None:
                write_json(out / "config.json", config)
            folds = f", {args.folds}-fold cross-validation" if args.folds else ""
            val = f" / {len(split.val)} validation" if len(split.val) else ""
            print(f"{args.model} ({args.recipe_name} recipe) on {len(loaders.train.labels)} train{val} / "
                  f"{len(loaders.test.labels)} test images{folds}, {plural(recipe['epochs'], 'epoch')} "
                  f"({plural(total_steps(recipe, len(loaders.train)), 'step')}), batch {recipe['batch_size']}, "
                  f"lr {recipe['lr']:g} ({recipe['convention']}), tta {recipe['tta']}, {args.torch_device} "
                  f"x{world_size}, amp {args.amp}; conv {', '.join(args.conv)}; seeds {args.seeds}; writing to {out}",
                  flush=True)
        for seed in args.seeds:  # interleaved: every backend for one seed, then the next seed
            for conv in args.conv:
                run_dir = out / run_name(conv, seed, split.fold)
                run_dir.mkdir(parents=True, exist_ok=True)
                result = run_dir / "result.pt"
                if result.exists():  # finished before an interruption
                    saved = read_result(result)
                    record, rows = saved["record"], saved["metrics"]
                else:
                    record, rows = train_run(args, conv, seed, loaders, run_dir, rank, split.fold)
                    if rank == 0:
                        save_atomically(result, {"record": record, "metrics": rows})
                records.append(record)
                metrics.setdefault(conv, []).append(rows)
                if rank == 0:
                    write_json(out / "results.json", records)

    if rank == 0:
        plot_curves(out / "curves.png", metrics)
        add_time_over_torch(records)
        write_json(out / "results.json", records)
        table = comparison_table(records)
        (out / "table.txt").write_text(table + "\n")
        tta = f", with TTA level {recipe['tta']}" if recipe["tta"] else ""
        runs = f"seeds {args.seeds}" + (f" x {args.folds} folds" if args.folds else "")
        print(f"\n{args.model} ({args.recipe_name} recipe), {plural(recipe['epochs'], 'epoch')}, final-epoch test "
              f"accuracy{tta} over {runs}:\n{table}\n"
              f"results in {out}/ (pictures in each run's folder)", flush=True)
    return records
