"""The CIFAR-10 layouts on disk, and one reader for each.

Every reader returns a `Cifar10`: uint8 images (N, 32, 32, 3), RGB, and int64 labels
in the official class order, for the train and the test split.

- python pickle batches: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``
- binary batches: ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin``
- image folders: ``train/<class>/*`` and ``test/<class>/*`` (PNG or JPEG, 32x32)
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(RuntimeError):
    """CIFAR-10 data that is missing, malformed or corrupt."""


class Cifar10(NamedTuple):
    train_images: np.ndarray  # uint8 (N, 32, 32, 3)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray


def _check(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if len(images) != len(labels) or len(images) == 0:
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise DataError(f"{where}: labels outside 0..{len(CLASSES) - 1}")
    return images, labels.astype(np.int64)


def _rows_to_hwc(rows: np.ndarray, where: str) -> np.ndarray:
    """Official rows of 3072 bytes (1024 red, 1024 green, 1024 blue, each row-major) -> (N, 32, 32, 3)."""
    if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: expected rows of 3072 pixels, got shape {rows.shape}")
    return np.ascontiguousarray(rows.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


# --- python pickle batches ---------------------------------------------------------------

class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10's batches hold (numpy arrays, lists, bytes): no code runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"a CIFAR-10 batch does not contain {module}.{name}")
        return super().find_class(module, name)


def read_pickle_batches(folder: Path) -> Cifar10:
    def load(name):
        path = folder / name
        try:
            with open(path, "rb") as f:
                batch = _BatchUnpickler(f, encoding="bytes").load()
            rows, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
        except FileNotFoundError:
            raise DataError(f"{path} is missing (a python-batches folder needs {', '.join(TRAIN_BATCHES)}, {TEST_BATCH})")
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path} is not a CIFAR-10 python batch ({e})") from e
        return _check(_rows_to_hwc(rows, str(path)), labels, str(path))

    train = [load(name) for name in TRAIN_BATCHES]
    return Cifar10(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), *load(TEST_BATCH))


# --- binary batches ------------------------------------------------------------------------

def read_binary_batches(folder: Path) -> Cifar10:
    def load(name):
        path = folder / f"{name}.bin"
        if not path.is_file():
            raise DataError(f"{path} is missing (a binary-batches folder needs data_batch_1..5.bin, test_batch.bin)")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % 3073:
            raise DataError(f"{path}: {raw.size} bytes is not a whole number of 3073-byte records")
        records = raw.reshape(-1, 3073)  # one label byte, then 3072 pixel bytes
        return _check(_rows_to_hwc(records[:, 1:], str(path)), records[:, 0], str(path))

    train = [load(name) for name in TRAIN_BATCHES]
    return Cifar10(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), *load(TEST_BATCH))


# --- image folders ------------------------------------------------------------------------

def image_files(root: Path, split: str) -> list[tuple[Path, int]]:
    """(path, label) for every image under ``root/split/<class>/``, classes in official order, files by name."""
    files = []
    for label, name in enumerate(CLASSES):
        folder = root / split / name
        if not folder.is_dir():
            raise DataError(f"{folder} is missing (an image-folder layout needs {split}/<class>/ for: {', '.join(CLASSES)})")
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{folder} holds no .png/.jpg images")
        files += [(p, label) for p in found]
    return files


def read_image_folders(root: Path) -> Cifar10:
    from PIL import Image  # only this layout needs Pillow

    def load(split):
        files = image_files(root, split)
        images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
        for i, (path, _) in enumerate(files):
            try:
                with Image.open(path) as im:
                    pixels = np.asarray(im.convert("RGB"))
            except OSError as e:
                raise DataError(f"{path} is not a readable image ({e})") from e
            if pixels.shape != (32, 32, 3):
                raise DataError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, not 32x32")
            images[i] = pixels
        return _check(images, np.array([label for _, label in files]), str(root / split))

    return Cifar10(*load("train"), *load("test"))
