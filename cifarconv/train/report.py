"""What a training run leaves behind: results.json, metrics.csv, curves.png and the comparison table."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from .atomic import atomic_write

METRICS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "epoch_seconds", "images_per_second")


def write_json(path: Path, value) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode())


def write_metrics(path: Path, rows: list[dict]) -> None:
    """One line per epoch: losses, accuracies (fractions), seconds of training, images/s."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in METRICS} for row in rows)


def plot_curves(path: Path, metrics: dict[str, list[list[dict]]]) -> None:
    """Train loss and test accuracy per epoch, one line per backend (the mean over its seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for conv, runs in metrics.items():
        epochs = min(len(rows) for rows in runs)
        x = [runs[0][i]["epoch"] for i in range(epochs)]
        for ax, key in ((ax_loss, "train_loss"), (ax_acc, "test_accuracy")):
            ax.plot(x, [statistics.fmean(rows[i][key] for rows in runs) for i in range(epochs)], marker="o", label=conv)
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy (end of each epoch)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def comparison_table(records: list[dict]) -> str:
    """Per backend: test accuracy mean ± std over seeds (final epoch; with the recipe's TTA, and
    without it beside when the recipe has TTA), training time and speed, relative to torch."""
    by_conv: dict[str, list[dict]] = {}
    for r in records:
        by_conv.setdefault(r["conv"], []).append(r)
    torch_seconds = statistics.fmean(r["train_seconds"] for r in by_conv["torch"]) if "torch" in by_conv else None
    tta = any(r.get("tta") for r in records)
    lines = [f"{'conv':8s} {'seeds':>5s} {'test accuracy':>16s}" + (f" {'without TTA':>16s}" if tta else "")
             + f" {'train s':>9s} {'images/s':>9s} {'vs torch':>9s} {'peak MiB':>9s}"]
    for conv, runs in by_conv.items():
        acc, acc_std = _mean_std([100 * r["test_accuracy"] for r in runs])
        plain = ""
        if tta:
            plain_acc, plain_std = _mean_std([100 * r.get("test_accuracy_no_tta", r["test_accuracy"]) for r in runs])
            plain = f" {plain_acc:8.2f} ± {plain_std:4.2f} %"
        seconds = statistics.fmean(r["train_seconds"] for r in runs)
        speed = statistics.fmean(r["images_per_second"] for r in runs)
        relative = f"{torch_seconds / seconds:8.2f}x" if torch_seconds else f"{'-':>9s}"
        memory = [r["peak_memory_bytes"] for r in runs if r["peak_memory_bytes"] is not None]
        mib = f"{max(memory) / 2**20:9.0f}" if memory else f"{'-':>9s}"
        lines.append(f"{conv:8s} {len(runs):5d} {acc:8.2f} ± {acc_std:4.2f} %{plain} {seconds:9.1f} {speed:9.0f} "
                     f"{relative} {mib}")
    return "\n".join(lines)
