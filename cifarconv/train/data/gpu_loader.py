"""Batches from a data set held on the training device, augmented there.

The uint8 images move to the device once.  Each epoch draws its order and its
augmentation from a CPU generator seeded by (seed, epoch): the same for every backend,
device and resumed run.  Under DDP each rank takes every world_size-th image of that order.

The augmentation, as the recipe sets it: a random HxW crop of the image reflect-padded by
``crop_pad`` pixels (offsets 0 .. 2 * crop_pad, i.e. shifts of up to crop_pad each way), a
horizontal flip, and a ``cutout`` x ``cutout`` square inside the image set to 0 (the mean).
``flip`` is ``"random"`` (each image with p = 1/2, drawn afresh every epoch), ``"alternating"``
(airbench94: epoch 0's random flips, and on every odd epoch the whole set flipped the other
way, so each image is seen both ways in every two epochs) or ``"none"``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, H, W, 3) images, on the 0-255 scale."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return pixels.mean(0).tolist(), pixels.std(0).tolist()


def class_balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` images taking the classes in turn (a fixed shuffle within each class)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank_in_class[members] = np.arange(len(members))
    return np.lexsort((labels, rank_in_class))[:n]


class Draws(NamedTuple):
    """One epoch's random choices, per image of the data set (not per position in the order)."""

    order: torch.Tensor   # (N,) the epoch's order
    crop: torch.Tensor    # (N, 2) row and column offset into the padded image, 0 .. 2 * crop_pad
    flip: torch.Tensor    # (N,) bool
    cutout: torch.Tensor  # (N, 2) top-left corner of the square, 0 .. H - cutout


def epoch_draws(seed: int, epoch: int, n: int, size: tuple[int, int], crop_pad: int, cutout: int, flip: str) -> Draws:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g)
    crop = torch.randint(0, 2 * crop_pad + 1, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    corner = torch.stack([torch.randint(0, s - cutout + 1, (n,), generator=g) for s in size], 1)
    if flip == "alternating" and epoch > 0:
        flips = epoch_draws(seed, 0, n, size, crop_pad, cutout, "random").flip ^ bool(epoch % 2)
    elif flip == "none":
        flips = torch.zeros(n, dtype=torch.bool)
    return Draws(order, crop, flips, corner)


class GpuLoader:
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device,
                 mean: list[float], std: list[float], train: bool, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False, crop_pad: int = 0, cutout: int = 0, flip: str = "none"):
        self.images = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()  # uint8 N, C, H, W
        self.labels = torch.from_numpy(labels).to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.batch_size, self.train, self.rank, self.world_size = batch_size, train, rank, world_size
        self.crop_pad, self.cutout, self.flip = crop_pad, cutout, flip
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Batches per epoch.  Training drops a last partial batch (every step has the full batch),
        # unless the rank holds less than one batch: then that is its one batch.
        n = len(self.shard(torch.arange(len(labels))))
        self.batches = max(1, n // batch_size) if train else -(-n // batch_size)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's positions in an epoch's order (every rank the same count when training)."""
        positions = torch.arange(len(order))[self.rank :: self.world_size]
        return positions[: len(order) // self.world_size] if self.train else positions

    def __len__(self) -> int:
        return self.batches

    def normalized(self, index: torch.Tensor) -> torch.Tensor:
        return (self.images[index].float() - self.mean) / self.std

    def draws(self, seed: int, epoch: int) -> Draws:
        return epoch_draws(seed, epoch, len(self.labels), tuple(self.images.shape[-2:]), self.crop_pad, self.cutout,
                           self.flip)

    def epoch(self, seed: int, epoch: int):
        """Yields (images, labels) batches: normalized float32, augmented when training."""
        device = self.images.device
        if self.train:
            draws = self.draws(seed, epoch)
            order = draws.order
        else:
            order = torch.arange(len(self.labels))
        positions = self.shard(order)
        for i in range(len(self)):
            index = order[positions[i * self.batch_size : (i + 1) * self.batch_size]]
            x = self.normalized(index.to(device))
            if self.train:
                x = augment(x, self.crop_pad, draws.crop[index].to(device), draws.flip[index].to(device),
                            self.cutout, draws.cutout[index].to(device))
            yield x.contiguous(memory_format=self.memory_format), self.labels[index.to(device)]


def augment(x: torch.Tensor, pad: int, crop: torch.Tensor, flip: torch.Tensor, size: int,
            cutout: torch.Tensor) -> torch.Tensor:
    """Per image: the HxW crop at offset ``crop`` of the image reflect-padded by ``pad``, flipped
    left-right where ``flip``, with the ``size`` x ``size`` square at ``cutout`` set to 0."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x
    rows = crop[:, 0, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = crop[:, 1, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the columns backwards
    x = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    x = x.permute(0, 3, 1, 2)
    if size == 0:
        return x
    r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside_r = (r >= cutout[:, 0, None]) & (r < cutout[:, 0, None] + size)  # (B, H)
    inside_c = (c >= cutout[:, 1, None]) & (c < cutout[:, 1, None] + size)  # (B, W)
    keep = ~(inside_r[:, :, None] & inside_c[:, None, :])
    return x * keep[:, None]
