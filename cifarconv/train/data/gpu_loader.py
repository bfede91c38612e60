"""Batches from a data set held on the training device, augmented there.

The uint8 images move to the device once.  Each epoch draws its order and its
augmentation (random crop from a 4-pixel reflect padding, horizontal flip, 8x8 cutout)
from a CPU generator seeded by (seed, epoch): the same for every backend, device and
resumed run.  Under DDP each rank takes every world_size-th image of that order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PAD, CUTOUT = 4, 8


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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class GpuLoader:
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device,
                 mean: list[float], std: list[float], train: bool, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False):
        self.images = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()  # uint8 N, C, H, W
        self.labels = torch.from_numpy(labels).to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.batch_size, self.train, self.rank, self.world_size = batch_size, train, rank, world_size
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

    def epoch(self, seed: int, epoch: int):
        """Yields (images, labels) batches: normalized float32, augmented when training."""
        n, device = len(self.labels), self.images.device
        if self.train:
            g = epoch_generator(seed, epoch)
            order = torch.randperm(n, generator=g)
            crop = torch.randint(0, 2 * PAD + 1, (n, 2), generator=g)
            flip = torch.rand(n, generator=g) < 0.5
            cutout = torch.randint(0, 32 - CUTOUT + 1, (n, 2), generator=g)
        else:
            order = torch.arange(n)
        positions = self.shard(order)
        for i in range(len(self)):
            at = positions[i * self.batch_size : (i + 1) * self.batch_size]
            index = order[at].to(device)
            x = (self.images[index].float() - self.mean) / self.std
            if self.train:
                x = augment(x, crop[at].to(device), flip[at].to(device), cutout[at].to(device))
            yield x.contiguous(memory_format=self.memory_format), self.labels[index]


def augment(x: torch.Tensor, crop: torch.Tensor, flip: torch.Tensor, cutout: torch.Tensor) -> torch.Tensor:
    """Per image: a HxW crop at offset ``crop`` of the reflect-padded image, a horizontal flip
    where ``flip``, and a CUTOUTxCUTOUT square at ``cutout`` set to 0 (the mean)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
    rows = crop[:, 0, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = crop[:, 1, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the columns backwards
    x = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    x = x.permute(0, 3, 1, 2)
    r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside_r = (r >= cutout[:, 0, None]) & (r < cutout[:, 0, None] + CUTOUT)  # (B, H)
    inside_c = (c >= cutout[:, 1, None]) & (c < cutout[:, 1, None] + CUTOUT)  # (B, W)
    keep = ~(inside_r[:, :, None] & inside_c[:, None, :])
    return x * keep[:, None]
