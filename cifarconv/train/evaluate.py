"""Accuracy on a held-out set (top-1, top-5, and the confusion counts per class), with
airbench94's test-time augmentation (TTA) when the recipe asks for it.

Level 0 is the image alone; level 1 averages the logits of the image and its mirror; level 2
gives that average weight 1/2 and the other 1/2 to the same average over two translated
copies, cropped at [0:H, 0:W] and [2:H+2, 2:W+2] from the image reflect-padded by 1 pixel
(shifted by one pixel up-left and down-right).  So six views: weights 1/4, 1/4 and four of 1/8.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def mirrored(views: list[tuple[float, torch.Tensor]]) -> list[tuple[float, torch.Tensor]]:
    """Each view and its left-right mirror, each with half the view's weight."""
    return [pair for w, x in views for pair in ((w / 2, x), (w / 2, x.flip(-1)))]


def tta_views(x: torch.Tensor, level: int) -> list[tuple[float, torch.Tensor]]:
    """(weight, batch of images) for each view of ``x`` (N, C, H, W); the weights sum to 1."""
    if level == 0:
        return [(1.0, x)]
    if level == 1:
        return mirrored([(1.0, x)])
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [(0.25, padded[..., 0:h, 0:w]), (0.25, padded[..., 2:h + 2, 2:w + 2])]
    return mirrored([(0.5, x)]) + mirrored(shifted)


def all_sum(*values: torch.Tensor) -> list[float]:
    """Sum over the DDP processes (or just these values, alone)."""
    total = torch.stack([v.double() for v in values])
    if dist.is_initialized():
        dist.all_reduce(total)
    return total.tolist()


class Scores(NamedTuple):
    """What ``evaluate`` measures; accuracies are fractions (0-1)."""

    loss: float        # mean cross-entropy
    top1: float
    top5: float
    confusion: list    # confusion[true][predicted]: image counts, classes in label order

    @property
    def per_class(self) -> list[float]:
        """Top-1 accuracy of each true class (NaN for a class with no images)."""
        return [row[i] / sum(row) if sum(row) else float("nan") for i, row in enumerate(self.confusion)]


def top_k_hits(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """How many images have their true class among the k largest logits."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(1).sum()


@torch.no_grad()
def predict(model, x: torch.Tensor, amp: str, tta: int = 0, memory_format=torch.contiguous_format) -> torch.Tensor:
    """The TTA-weighted logits of one batch (float32), the model in whatever mode it is."""
    logits = 0
    for weight, view in tta_views(x, tta):
        with torch.autocast(x.device.type, dtype=AMP_DTYPES[amp], enabled=amp != "off"):
            logits = logits + weight * model(view.contiguous(memory_format=memory_format)).float()
    return logits


@torch.no_grad()
def evaluate(model, test, amp: str, tta: int = 0, num_classes: int = 10) -> Scores:
    """Mean cross-entropy, top-1, top-5 and confusion counts over the loader's images, in eval mode."""
    model.eval()
    device = test.images.device
    loss = top5 = torch.zeros((), device=device)
    confusion = torch.zeros(num_classes * num_classes, device=device)
    for x, y in test.epoch(0, 0):
        logits = predict(model, x, amp, tta, test.memory_format)
        loss = loss + F.cross_entropy(logits, y, reduction="sum")
        top5 = top5 + top_k_hits(logits, y, 5)
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes ** 2)  # row: true class
    model.train()
    loss, top5, *counts = all_sum(loss, top5, *confusion)
    count = sum(counts)
    matrix = [[int(c) for c in counts[i * num_classes:(i + 1) * num_classes]] for i in range(num_classes)]
    return Scores(loss / count, sum(matrix[i][i] for i in range(num_classes)) / count, top5 / count, matrix)
