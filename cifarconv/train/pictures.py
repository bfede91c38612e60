"""The pictures of a finished run, PNGs made with matplotlib in the run's folder:

- ``per_class.png``: the test top-1 accuracy of each class, as bars;
- ``confusion.png``: the confusion matrix, the count of test images of each true class (row)
  given each predicted class (column);
- ``predictions.png``: a grid of test images (four of each class) with the predicted and the
  true label, the misclassified ones framed and titled in red.

Each PNG carries what it draws as JSON in its ``cifarconv`` text chunk (the accuracies, the
counts, the labels), so that a reader, or a test, can check the picture against the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_write

WRONG = "#c0392b"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, drawn: dict) -> None:
    """Write the figure to ``path`` atomically, with ``drawn`` as JSON in the PNG's ``cifarconv`` chunk."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100, metadata={"cifarconv": json.dumps(drawn)})
    _pyplot().close(fig)


def per_class_figure(per_class: list[float], classes: tuple[str, ...], title: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    percent = [100 * a for a in per_class]
    bars = ax.bar(classes, percent, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{p:.1f}" for p in percent], fontsize=8)
    ax.set(ylim=(0, 105), ylabel="top-1 accuracy (%)", title=title)
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def confusion_figure(confusion: list[list[int]], classes: tuple[str, ...], title: str):
    plt = _pyplot()
    counts = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(counts, cmap="Blues")
    for (row, col), n in np.ndenumerate(counts):
        ax.text(col, row, str(n), ha="center", va="center", fontsize=7,
                color="white" if n > counts.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(image, ax=ax, label="test images")
    fig.tight_layout()
    return fig


def predictions_figure(images: np.ndarray, true: list[int], predicted: list[int], classes: tuple[str, ...],
                       title: str, columns: int = 8):
    """``images``: uint8 (N, H, W, 3)."""
    plt = _pyplot()
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.7 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, true, predicted):
        ax.imshow(image)
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        wrong = t != p
        ax.set_title(f"{classes[p]}\n({classes[t]})", fontsize=7, color=WRONG if wrong else "black")
        for spine in ax.spines.values():
            spine.set_visible(wrong)
            spine.set_color(WRONG)
            spine.set_linewidth(3)
    fig.suptitle(f"{title}: predicted (true), misclassified in red")
    fig.tight_layout()
    return fig


def write_pictures(folder: Path, scores, images: np.ndarray, true: list[int], predicted: list[int],
                   classes: tuple[str, ...], title: str) -> list[Path]:
    """The three PNGs of a run into ``folder``; ``scores``: the test `Scores`; the grid's images with
    their true and predicted labels.  Returns the paths written."""
    paths = [folder / "per_class.png", folder / "confusion.png", folder / "predictions.png"]
    save_png(per_class_figure(scores.per_class, classes, f"{title}: test accuracy per class"), paths[0],
             {"classes": list(classes), "per_class_accuracy": scores.per_class})
    save_png(confusion_figure(scores.confusion, classes, f"{title}: confusion matrix (test set)"), paths[1],
             {"classes": list(classes), "confusion": scores.confusion})
    save_png(predictions_figure(images, true, predicted, classes, title), paths[2],
             {"classes": list(classes), "true": list(true), "predicted": list(predicted)})
    return paths
