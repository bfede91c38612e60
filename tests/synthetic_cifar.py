"""A tiny stand-in for CIFAR-10 that a small CNN learns in a few steps, written in the official
python-batches layout (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``), so that trainer
tests need no real data.

Each class has its own colour and a bright bar at its own rows; Gaussian noise on top keeps a
few images hard.  Train images come shuffled, test images class by class (as the real test
batch is not, but the order does not matter to the trainer).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CLASSES = 10


def images(per_class: int, rng: np.random.Generator, noise: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(CLASSES), per_class)
    palette = np.random.default_rng(1234).integers(40, 216, (CLASSES, 3))  # the same colours for train and test
    x = np.broadcast_to(palette[labels][:, None, None, :], (len(labels), 32, 32, 3)).astype(np.float64).copy()
    for c in range(CLASSES):
        x[labels == c, 3 * c:3 * c + 3, :, :] = 255  # the class's bar
    x += rng.normal(0, noise, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8), labels


def write_batch(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # official rows: 1024 red, 1024 green, 1024 blue bytes
    path.write_bytes(pickle.dumps({b"labels": [int(v) for v in y], b"data": rows}, protocol=2))


def write_cifar(root: Path, train_per_class: int = 20, test_per_class: int = 10, seed: int = 0) -> Path:
    """Write the data set under ``root/cifar-10-batches-py``; return ``root`` (a --data-dir)."""
    rng = np.random.default_rng(seed)
    train_x, train_y = images(train_per_class, rng)
    order = rng.permutation(len(train_y))
    train_x, train_y = train_x[order], train_y[order]
    test_x, test_y = images(test_per_class, rng)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(train_y)), 5), start=1):
        write_batch(folder / f"data_batch_{i}", train_x[part], train_y[part])
    write_batch(folder / "test_batch", test_x, test_y)
    return Path(root)
