"""CIFAR-10 from a data folder: find its layout, read it once, cache the uint8 arrays.

    data = load_cifar10("data")          # Cifar10(train_images, train_labels, test_images, test_labels)

Looked for in ``data_dir``, in this order: ``cifar-10-batches-py/`` (or ``data_dir`` being that
folder), ``cifar-10-python.tar.gz``, ``cifar-10-batches-bin/`` (or ``data_dir`` itself),
``cifar-10-binary.tar.gz``, and ``train/<class>/`` + ``test/<class>/`` image folders.
Archives are unpacked next to themselves first.  With nothing found, the official python
archive is downloaded (md5 checked); when that fails, one error says where to put the files.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .download import MD5, URL, download, safe_extract
from .formats import (
    CLASSES, TEST_BATCH, TRAIN_BATCHES, Cifar10, DataError, image_files, read_binary_batches, read_image_folders,
    read_pickle_batches,
)

__all__ = ["CLASSES", "Cifar10", "DataError", "find_source", "layouts_help", "load_cifar10"]

READERS = {"pickle": read_pickle_batches, "binary": read_binary_batches, "images": read_image_folders}
# (kind, folder it unpacks to, archive name): what a data folder may hold, in the order looked for.
LAYOUTS = (("pickle", "cifar-10-batches-py", "cifar-10-python.tar.gz"), ("binary", "cifar-10-batches-bin", "cifar-10-binary.tar.gz"))


def layouts_help(data_dir: Path) -> str:
    return (
        f"put CIFAR-10 in {data_dir} in one of these layouts: the official python batches "
        f"({data_dir}/cifar-10-batches-py/ or {data_dir}/cifar-10-python.tar.gz), the official binary batches "
        f"({data_dir}/cifar-10-batches-bin/ or {data_dir}/cifar-10-binary.tar.gz), or image folders "
        f"{data_dir}/train/<class>/*.png|jpg and {data_dir}/test/<class>/*.png|jpg with the classes "
        f"{', '.join(CLASSES)}; or choose another folder with --data-dir or $CIFARCONV_DATA"
    )


def find_source(data_dir: Path) -> tuple[str, Path] | None:
    """(kind, folder or archive) of the first CIFAR-10 layout found in ``data_dir``, or None."""
    for kind, folder, archive in LAYOUTS:
        if (data_dir / folder).is_dir():
            return kind, data_dir / folder
        if (data_dir / ("data_batch_1" if kind == "pickle" else "data_batch_1.bin")).is_file():
            return kind, data_dir
        if (data_dir / archive).is_file():
            return kind, data_dir / archive
    if (data_dir / "train").is_dir() and (data_dir / "test").is_dir():
        return "images", data_dir
    return None


def _fingerprint(kind: str, folder: Path) -> str:
    """A hash of the source files' names, sizes and times: the cache key."""
    if kind == "images":
        files = [path for split in ("train", "test") for path, _ in image_files(folder, split)]
    else:
        suffix = ".bin" if kind == "binary" else ""
        files = [folder / f"{name}{suffix}" for name in (*TRAIN_BATCHES, TEST_BATCH)]
    h = hashlib.sha256(kind.encode())
    for path in files:
        st = path.stat() if path.exists() else None
        h.update(f"{path.relative_to(folder)}\0{st and st.st_size}\0{st and st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_cifar10(data_dir: str | os.PathLike, download_missing: bool = True, url: str = URL, md5: str = MD5) -> Cifar10:
    data_dir = Path(data_dir)
    source = find_source(data_dir)
    if source is None:
        if not download_missing:
            raise DataError(f"no CIFAR-10 found in {data_dir}: {layouts_help(data_dir)}")
        created = [folder for folder in (data_dir, *data_dir.parents) if not folder.exists()]  # the download's mkdir
        try:
            download(url, data_dir / Path(url).name, md5)
        except OSError as e:  # offline, refused, not found, unwritable folder
            for folder in created:  # leave no empty folder behind (a later run would find it and still no data)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise DataError(f"no CIFAR-10 found in {data_dir}, and downloading {url} failed ({e}). "
                            f"To train offline, {layouts_help(data_dir)}") from e
        source = find_source(data_dir)
    kind, path = source
    if path.is_file():  # an archive: unpack it beside itself, then read the folder
        safe_extract(path, data_dir)
        extracted_from, (kind, path) = path, find_source(data_dir)
        if path.is_file():
            raise DataError(f"{extracted_from} did not unpack to the folder of its layout")

    cache = data_dir / f"cifarconv-cache-{kind}-{_fingerprint(kind, path)}.npz"
    if cache.is_file():
        with np.load(cache) as f:
            return Cifar10(**{name: f[name] for name in Cifar10._fields})
    data = READERS[kind](path)
    try:
        with atomic_write(cache) as f:
            np.savez(f, **data._asdict())
    except OSError as e:
        warnings.warn(f"could not cache the decoded data set in {cache} ({e}); it will be decoded again next time")
    return data
