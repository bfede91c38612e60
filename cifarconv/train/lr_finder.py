"""``--find-lr``: the LR range test of ``002_8418f40bdbec346f.txt`` (torch-lr-finder's
``range_test(end_lr=10, num_iter=200, step_mode="exp")``), on the model and recipe chosen.

The model starts from its seeded initial weights, with the recipe's optimiser (its parameter
groups keep their lr ratios), and trains for up to ``STEPS`` steps while the lr grows
exponentially from ``START_LR`` to ``END_LR`` (torch's lr of the main group).  The loss is
smoothed (``smoothed = SMOOTHING * loss + (1 - SMOOTHING) * smoothed``); the sweep stops early
once the smoothed loss passes ``DIVERGE`` times its lowest.  The suggested peak lr is where the
smoothed loss falls fastest (the most negative ``numpy.gradient`` of it, as torch-lr-finder
suggests it), looked for only up to the lowest smoothed loss: past it the loss wobbles on its
way up, and a dip there is no lr to train at.  Writes ``lr_find.png`` (loss against lr, the suggestion marked) and
``lr_find.json`` in ``--out``, and prints the suggestion in torch's units and in the recipe's
(what ``--lr`` takes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data.splits import SplitError, splits
from .loop import build_model, loss_reduction, make_loaders, read_data, train_step
from .optim import make_optimizer, step_sizes
from .report import write_json

START_LR, END_LR, STEPS = 1e-7, 10.0, 200
SMOOTHING, DIVERGE = 0.05, 5.0


def sweep_lrs(steps: int = STEPS, start: float = START_LR, end: float = END_LR) -> np.ndarray:
    return start * (end / start) ** (np.arange(steps) / (steps - 1))


def batches(train, seed: int):
    """The training batches, epoch after epoch, without end."""
    epoch = 0
    while True:
        yield from train.epoch(seed, epoch)
        epoch += 1


def suggestion(lrs: list[float], smoothed: list[float]) -> float:
    """The lr where the smoothed loss falls fastest, up to its lowest point."""
    lowest = int(np.argmin(smoothed))
    if lowest < 1:
        return float(lrs[0])  # the loss never fell: the smallest lr tried
    return float(lrs[int(np.argmin(np.gradient(np.asarray(smoothed[: lowest + 1]))))])


def plot(path: Path, lrs: list[float], smoothed: list[float], suggested: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lrs, smoothed)
    low, start = min(smoothed), smoothed[0]
    ax.set_ylim(low - 0.05 * (start - low + 1e-3), start + 0.5 * (start - low + 1e-3))  # the descent, not the blow-up
    ax.axvline(suggested, color="#c0392b", linestyle="--", label=f"suggested {suggested:.2e}")
    ax.set(xscale="log", xlabel="learning rate (torch's, main parameter group)", ylabel="training loss (smoothed)",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def find_lr(args) -> dict:
    recipe, device, conv, seed = args.recipe, args.torch_device, args.conv[0], args.seeds[0]
    data = read_data(args)
    try:
        split = splits(data.train_labels, recipe["val_images"], None, args.limit_train)[0]
    except SplitError as e:
        raise SystemExit(f"error: {e}") from None
    train = make_loaders(args, data, split, 0, 1).train
    model = build_model(args, conv, seed, train)
    optimizer = make_optimizer(model, recipe)
    main_lr = optimizer.param_groups[-1]["lr"]
    ratios = [group["lr"] / main_lr for group in optimizer.param_groups]
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    lrs, losses, smoothed = sweep_lrs(), [], []
    print(f"LR range test: {args.model} ({args.recipe_name} recipe), conv {conv}, lr {START_LR:g} -> {END_LR:g} over "
          f"up to {STEPS} steps of batch {recipe['batch_size']}", flush=True)
    for step, (x, y) in zip(range(STEPS), batches(train, seed)):
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lrs[step] * ratio
        loss, _ = train_step(model, optimizer, scaler, x, y, args.amp, recipe["label_smoothing"], 1,
                             loss_reduction(recipe))
        losses.append(loss.item() / len(y))  # the mean over the batch, whatever the recipe minimizes
        smoothed.append(losses[-1] if not smoothed else SMOOTHING * losses[-1] + (1 - SMOOTHING) * smoothed[-1])
        if not np.isfinite(smoothed[-1]) or smoothed[-1] > DIVERGE * min(smoothed):
            break
    lrs = lrs[: len(smoothed)].tolist()
    finite = [i for i, s in enumerate(smoothed) if np.isfinite(s)]
    suggested = suggestion([lrs[i] for i in finite], [smoothed[i] for i in finite])
    # The recipe's --lr for that torch lr: torch's lr is proportional to the recipe's in every convention.
    recipe_lr = suggested * recipe["lr"] / step_sizes(recipe)[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"LR range test: {args.model}, {conv}, batch {recipe['batch_size']}"
    plot(out / "lr_find.png", lrs, smoothed, suggested, title)
    result = dict(model=args.model, recipe=args.recipe_name, conv=conv, batch_size=recipe["batch_size"],
                  convention=recipe["convention"], steps=len(smoothed), lrs=lrs, losses=losses, smoothed=smoothed,
                  suggested_torch_lr=suggested, suggested_recipe_lr=recipe_lr)
    write_json(out / "lr_find.json", result)
    stopped = "" if len(smoothed) == STEPS else f" (stopped at step {len(smoothed)}: the loss diverged)"
    print(f"suggested peak lr: {suggested:.3g} (torch's lr; --lr {recipe_lr:.3g} in this recipe's "
          f"{recipe['convention']} units){stopped}\nplot: {out / 'lr_find.png'}, values: {out / 'lr_find.json'}",
          flush=True)
    return result
