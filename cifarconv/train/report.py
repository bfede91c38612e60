"""What a training run leaves behind: results.json, metrics.csv, curves.png and the comparison table."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from .atomic import atomic_write

METRICS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_top5", "test_loss",
           "test_accuracy", "test_top5", "lr", "epoch_seconds", "images_per_second")


def plural(n: float, word: str) -> str:
    """``1 epoch``, ``2 epochs``, ``9.9 epochs``."""
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def write_json(path: Path, value) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode())


def write_metrics(path: Path, rows: list[dict]) -> None:
    """One line per epoch: losses, accuracies (fractions; val_* with a validation split, else test_*;
    empty where not measured), the lr at the epoch's end, seconds of training, images/s."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS)
        writer.writeheader()
        writer.writerows({k: "" if row.get(k) is None else row[k] for k in METRICS} for row in rows)


def plot_curves(path: Path, metrics: dict[str, list[list[dict]]]) -> None:
    """Train loss and validation (else test) accuracy per epoch, one line per backend (the mean over
    its seeds and folds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    validated = any(rows[0].get("val_accuracy") is not None for runs in metrics.values() for rows in runs)
    split = "val" if validated else "test"
    for conv, runs in metrics.items():
        epochs = min(len(rows) for rows in runs)
        x = [runs[0][i]["epoch"] for i in range(epochs)]
        for ax, key in ((ax_loss, "train_loss"), (ax_acc, f"{split}_accuracy")):
            ax.plot(x, [statistics.fmean(rows[i][key] for rows in runs) for i in range(epochs)], marker="o", label=conv)
    name = "validation" if split == "val" else "test"
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel=f"{name} accuracy", title=f"{name} accuracy (end of each epoch)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _stat(percents: list[float], width: int = 16) -> str:
    """``55.12 %`` for one value, ``55.12 ± 0.31 %`` (mean ± std) for several, right-aligned."""
    if not percents:
        return f"{'-':>{width}s}"
    if len(percents) == 1:
        return f"{percents[0]:.2f} %".rjust(width)
    return f"{statistics.fmean(percents):.2f} ± {statistics.stdev(percents):4.2f} %".rjust(width)


def _torch_seconds(records: list[dict]) -> float | None:
    """torch's training seconds, the mean over its runs; None when torch did not run."""
    runs = [r["train_seconds"] for r in records if r["conv"] == "torch"]
    return statistics.fmean(runs) if runs else None


def add_time_over_torch(records: list[dict]) -> None:
    """Set each record's ``time_over_torch``: its training seconds ÷ torch's, so 2.0 took twice
    as long as torch; None when torch did not run."""
    torch_seconds = _torch_seconds(records)
    for r in records:
        r["time_over_torch"] = r["train_seconds"] / torch_seconds if torch_seconds else None


def comparison_table(records: list[dict]) -> str:
    """Per backend, over its runs (seeds and folds): final-epoch test top-1 and top-5 (with the
    recipe's TTA, and top-1 without it beside when the recipe has TTA), the final validation top-1
    when there is a validation split, training time and speed, and the training time ÷ torch's
    (above 1: slower than torch)."""
    torch_seconds = _torch_seconds(records)
    by_conv: dict[str, list[dict]] = {}
    for r in records:
        by_conv.setdefault(r["conv"], []).append(r)
    tta = any(r.get("tta") for r in records)
    val = any(r.get("val_accuracy") is not None for r in records)
    lines = [f"{'conv':8s} {'runs':>4s} {'test top-1':>16s} {'test top-5':>16s}"
             + (f" {'without TTA':>16s}" if tta else "") + (f" {'val top-1':>16s}" if val else "")
             + f" {'train s':>9s} {'images/s':>9s} {'time ÷ torch':>13s} {'peak MiB':>9s}"]
    for conv, runs in by_conv.items():
        line = (f"{conv:8s} {len(runs):4d} {_stat([100 * r['test_accuracy'] for r in runs])} "
                f"{_stat([100 * r['test_top5'] for r in runs if r.get('test_top5') is not None])}")
        if tta:
            line += " " + _stat([100 * r.get("test_accuracy_no_tta", r["test_accuracy"]) for r in runs])
        if val:
            line += " " + _stat([100 * r["val_accuracy"] for r in runs if r.get("val_accuracy") is not None])
        seconds = statistics.fmean(r["train_seconds"] for r in runs)
        speed = statistics.fmean(r["images_per_second"] for r in runs)
        relative = f"{seconds / torch_seconds:12.2f}x" if torch_seconds else f"{'-':>13s}"
        memory = [r["peak_memory_bytes"] for r in runs if r["peak_memory_bytes"] is not None]
        mib = f"{max(memory) / 2**20:9.0f}" if memory else f"{'-':>9s}"
        lines.append(f"{line} {seconds:9.1f} {speed:9.0f} {relative} {mib}")
    return "\n".join(lines)


def per_class_table(rows: list[tuple[str, list[float]]], classes: tuple[str, ...]) -> str:
    """One line per (label, per-class top-1 fractions): the accuracy of each class in percent."""
    width = max(len(label) for label, _ in rows)
    head = f"{'':{width}s} " + " ".join(f"{c[:8]:>8s}" for c in classes)
    return "\n".join([head] + [f"{label:{width}s} " + " ".join(f"{100 * a:7.1f}%" for a in accuracies)
                               for label, accuracies in rows])
