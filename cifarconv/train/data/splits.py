"""Which training images train and which validate: a validation split (``--val N``) or K folds
(``--folds K``), then ``--limit-train``.

Both take the training images in one fixed class-balanced order (`class_balanced_subset` of all
of them: the classes in turn, a fixed shuffle within each), the same for every seed, backend
and run: ``--val N`` validates on the first N of that order; fold k of K validates on the
positions i with i % K == k, so every fold holds each class about equally.  ``--limit-train``
then takes its images, again class-balanced, from those left to train on.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .gpu_loader import class_balanced_subset


class Split(NamedTuple):
    fold: int | None       # None without --folds
    train: np.ndarray      # indices into the training set
    val: np.ndarray        # indices into the training set; empty without validation


class SplitError(ValueError):
    """A --val, --folds or --limit-train that the training set cannot satisfy."""


def _limited(labels: np.ndarray, train: np.ndarray, limit: int | None) -> np.ndarray:
    if limit is None or limit >= len(train):
        return train
    return train[class_balanced_subset(labels[train], limit)]


def splits(labels: np.ndarray, val: int, folds: int | None, limit_train: int | None) -> list[Split]:
    """One split (fold None) or one per fold; SplitError when the sizes do not fit."""
    order = class_balanced_subset(labels, len(labels))
    if folds is not None:
        if folds > len(labels):
            raise SplitError(f"--folds {folds}: more folds than the {len(labels)} training images")
        position = np.arange(len(order)) % folds
        return [Split(k, _limited(labels, np.sort(order[position != k]), limit_train), np.sort(order[position == k]))
                for k in range(folds)]
    if val >= len(labels):
        raise SplitError(f"--val {val}: not smaller than the {len(labels)} training images; "
                         f"keep some to train on (e.g. --val {len(labels) // 10})")
    return [Split(None, _limited(labels, np.sort(order[val:]), limit_train), np.sort(order[:val]))]
