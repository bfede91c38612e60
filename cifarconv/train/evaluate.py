"""Test accuracy, with airbench94's test-time augmentation (TTA) when the recipe asks for it.

Level 0 is the image alone; level 1 averages the logits of the image and its mirror; level 2
gives that average weight 1/2 and the other 1/2 to the same average over two translated
copies, cropped at [0:H, 0:W] and [2:H+2, 2:W+2] from the image reflect-padded by 1 pixel
(shifted by one pixel up-left and down-right).  So six views: weights 1/4, 1/4 and four of 1/8.
"""

from __future__ import annotations

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


@torch.no_grad()
def evaluate(model, test, amp: str, tta: int = 0) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the test loader's images, in eval mode."""
    model.eval()
    loss = correct = count = torch.zeros((), device=test.images.device)
    for x, y in test.epoch(0, 0):
        logits = 0
        for weight, view in tta_views(x, tta):
            with torch.autocast(x.device.type, dtype=AMP_DTYPES[amp], enabled=amp != "off"):
                logits = logits + weight * model(view.contiguous(memory_format=test.memory_format)).float()
        loss = loss + F.cross_entropy(logits, y, reduction="sum")
        correct, count = correct + (logits.argmax(1) == y).sum(), count + len(y)
    model.train()
    loss, correct, count = all_sum(loss, correct, count)
    return loss / count, correct / count
