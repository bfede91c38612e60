"""The data layer: each CIFAR-10 format (tiny files of the exact official layouts, made here),
the checksummed download, safe extraction, the cache, and the on-device loader."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from cifarconv.train.data import CLASSES, DataError, load_cifar10
from cifarconv.train.data.download import MD5, URL, ChecksumError, safe_extract
from cifarconv.train.data.gpu_loader import GpuLoader, augment, class_balanced_subset

PER_BATCH, TEST = 4, 10  # images per train batch (5 batches) and in the test batch


@pytest.fixture
def cifar():
    """Random images (N, 32, 32, 3) and labels standing in for CIFAR-10; labels sorted per split,
    so that image folders (read class by class) give back the same order."""
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(10), 5 * PER_BATCH // 10), np.repeat(np.arange(10), TEST // 10)])
    return rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8), labels


def official_rows(images):
    """The official row layout: 1024 red, 1024 green, 1024 blue bytes."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def batches(images, labels):
    edges = [i * PER_BATCH for i in range(6)]
    names = [f"data_batch_{i}" for i in range(1, 6)]
    yield from ((name, images[a:b], labels[a:b]) for name, a, b in zip(names, edges, edges[1:]))
    yield "test_batch", images[edges[-1]:], labels[edges[-1]:]


def write_pickle_batches(folder, images, labels):
    folder.mkdir(parents=True)
    for name, x, y in batches(images, labels):
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": official_rows(x),
                 b"filenames": [f"img_{i}.png".encode() for i in range(len(y))]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def write_binary_batches(folder, images, labels):
    folder.mkdir(parents=True)
    for name, x, y in batches(images, labels):
        records = np.concatenate([y[:, None].astype(np.uint8), official_rows(x)], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")


def write_image_folders(root, images, labels, suffix=".png"):
    from PIL import Image

    split_at = 5 * PER_BATCH
    for split, xs, ys in (("train", images[:split_at], labels[:split_at]), ("test", images[split_at:], labels[split_at:])):
        for i, (x, y) in enumerate(zip(xs, ys)):
            folder = root / split / CLASSES[y]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(folder / f"{i:04d}{suffix}")


def make_tar(path, source_dir):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source_dir, arcname=source_dir.name)


def assert_same(data, images, labels):
    n = 5 * PER_BATCH
    np.testing.assert_array_equal(data.train_images, images[:n])
    np.testing.assert_array_equal(data.train_labels, labels[:n])
    np.testing.assert_array_equal(data.test_images, images[n:])
    np.testing.assert_array_equal(data.test_labels, labels[n:])
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64


def test_pickle_batches(tmp_path, cifar):
    write_pickle_batches(tmp_path / "cifar-10-batches-py", *cifar)
    assert_same(load_cifar10(tmp_path), *cifar)


def test_pickle_batches_folder_itself(tmp_path, cifar):
    write_pickle_batches(tmp_path / "batches", *cifar)
    assert_same(load_cifar10(tmp_path / "batches"), *cifar)


def test_python_archive_is_unpacked_beside_itself(tmp_path, cifar):
    write_pickle_batches(tmp_path / "src" / "cifar-10-batches-py", *cifar)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_tar(data_dir / "cifar-10-python.tar.gz", tmp_path / "src" / "cifar-10-batches-py")
    assert_same(load_cifar10(data_dir), *cifar)
    assert (data_dir / "cifar-10-batches-py" / "test_batch").is_file()


def test_binary_batches_folder_and_archive(tmp_path, cifar):
    write_binary_batches(tmp_path / "a" / "cifar-10-batches-bin", *cifar)
    assert_same(load_cifar10(tmp_path / "a"), *cifar)
    (tmp_path / "b").mkdir()
    make_tar(tmp_path / "b" / "cifar-10-binary.tar.gz", tmp_path / "a" / "cifar-10-batches-bin")
    assert_same(load_cifar10(tmp_path / "b"), *cifar)


def test_image_folders_png_exact_and_jpeg_close(tmp_path, cifar):
    write_image_folders(tmp_path / "png", *cifar)
    assert_same(load_cifar10(tmp_path / "png"), *cifar)
    smooth = np.ascontiguousarray(np.broadcast_to(cifar[0][:, :1, :1], cifar[0].shape))  # one colour: JPEG keeps it
    write_image_folders(tmp_path / "jpg", smooth, cifar[1], suffix=".jpg")
    data = load_cifar10(tmp_path / "jpg")
    np.testing.assert_array_equal(data.train_labels, cifar[1][: 5 * PER_BATCH])
    assert np.abs(data.train_images.astype(int) - smooth[: 5 * PER_BATCH]).mean() < 8


def test_decoded_arrays_are_cached_once(tmp_path, cifar, monkeypatch):
    write_image_folders(tmp_path, *cifar)
    load_cifar10(tmp_path)
    assert len(list(tmp_path.glob("cifarconv-cache-images-*.npz"))) == 1
    monkeypatch.setitem(__import__("cifarconv.train.data", fromlist=["READERS"]).READERS, "images", None)  # not read again
    assert_same(load_cifar10(tmp_path), *cifar)


def test_missing_file_and_wrong_size_are_clear_errors(tmp_path, cifar):
    write_binary_batches(tmp_path / "cifar-10-batches-bin", *cifar)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="3073-byte records"):
        load_cifar10(tmp_path)
    path.unlink()
    with pytest.raises(DataError, match="data_batch_3.bin is missing"):
        load_cifar10(tmp_path)


def test_pickle_that_runs_code_is_refused(tmp_path, cifar):
    write_pickle_batches(tmp_path / "cifar-10-batches-py", *cifar)

    class Evil:
        def __reduce__(self):
            return os.system, ("touch " + str(tmp_path / "pwned"),)

    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)
    assert not (tmp_path / "pwned").exists()


# --- download ---------------------------------------------------------------------------------

@pytest.fixture
def official_archive(tmp_path, cifar):
    write_pickle_batches(tmp_path / "server" / "cifar-10-batches-py", *cifar)
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    make_tar(archive, tmp_path / "server" / "cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_checks_the_md5(tmp_path, cifar, official_archive):
    archive, md5 = official_archive
    data_dir = tmp_path / "data"
    assert_same(load_cifar10(data_dir, url=archive.as_uri(), md5=md5), *cifar)
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()


def test_download_with_wrong_md5_keeps_nothing(tmp_path, official_archive):
    archive, _ = official_archive
    data_dir = tmp_path / "data"
    with pytest.raises(ChecksumError, match="does not match the published"):
        load_cifar10(data_dir, url=archive.as_uri(), md5="0" * 32)
    assert list(data_dir.iterdir()) == []


def test_offline_without_data_says_where_to_put_it(tmp_path):
    data_dir = tmp_path / "empty"
    with pytest.raises(DataError) as e:
        load_cifar10(data_dir, url=(tmp_path / "nowhere.tar.gz").as_uri())
    message = str(e.value)
    for text in (str(data_dir), "downloading", "cifar-10-batches-py", "cifar-10-batches-bin", "train/<class>/"):
        assert text in message


def test_official_url_and_md5():
    assert URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert MD5 == "c58f30108f718f92721af3b95e74349a"


# --- safe extraction ----------------------------------------------------------------------------

def tar_with(path, *members):
    """A tar.gz of (TarInfo, bytes or None) members, written raw so nothing is sanitized."""
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("ok/fine.txt"), io.BytesIO(b""))
        for info, payload in members:
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def hardlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


@pytest.mark.parametrize("member", [
    pytest.param(lambda out: (tarfile.TarInfo(str(out / "abs.txt")), b"x"), id="absolute"),
    pytest.param(lambda out: (tarfile.TarInfo("ok/../../outside/dotdot.txt"), b"x"), id="dotdot"),
    pytest.param(lambda out: (symlink("ok/link", "../../outside"), None), id="symlink-outside"),
    pytest.param(lambda out: (symlink("ok/abslink", str(out)), None), id="symlink-absolute"),
    pytest.param(lambda out: (hardlink("ok/hard", "../outside/secret"), None), id="hardlink-outside"),
])
def test_unsafe_member_rejected_and_nothing_written(tmp_path, member):
    outside = tmp_path / "outside"
    dest = tmp_path / "dest"
    archive = tar_with(tmp_path / "bad.tar.gz", member(outside))
    with pytest.raises(DataError, match="unsafe archive"):
        safe_extract(archive, dest)
    assert not outside.exists()
    assert list(dest.iterdir()) == []


def test_truncated_archive_is_an_error_and_leaves_nothing(tmp_path, cifar, official_archive):
    archive, _ = official_archive
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / archive.name).write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_cifar10(data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == [archive.name]


def test_garbage_archive_is_an_error(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tar file at all" * 100)
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_cifar10(tmp_path)


# --- the on-device loader ---------------------------------------------------------------------

def loader(images, labels, **kwargs):
    kwargs = {"batch_size": 4, "device": torch.device("cpu"), "mean": [0.0] * 3, "std": [1.0] * 3, "train": True,
              "crop_pad": 4, "cutout": 8, "flip": "random", **kwargs}
    return GpuLoader(images, labels, **kwargs)


def test_augmentation_is_the_same_per_seed_and_epoch(cifar):
    a = [x for x, _ in loader(*cifar).epoch(seed=1, epoch=2)]
    b = [x for x, _ in loader(*cifar).epoch(seed=1, epoch=2)]
    c = [x for x, _ in loader(*cifar).epoch(seed=1, epoch=3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert len(a) == len(cifar[1]) // 4 and a[0].shape == (4, 3, 32, 32)


def test_augment_crop_flip_cutout():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    centre = torch.tensor([[4, 4], [4, 4]])
    out = augment(x, 4, centre, torch.tensor([False, True]), 8, torch.tensor([[0, 0], [24, 24]]))
    assert torch.equal(out[0, :, 8:], x[0, :, 8:]) and (out[0, :, :8, :8] == 0).all()
    assert torch.equal(out[1, :, :24], x[1, :, :24].flip(2))
    assert (out[1, :, 24:, 24:] == 0).all()


def test_ranks_split_each_epoch_without_overlap(cifar):
    images, labels = cifar
    labels = np.arange(len(labels))  # label = index, to see which images each rank got
    seen = [torch.cat([y for _, y in loader(images, labels, batch_size=3, rank=r, world_size=2).epoch(0, 0)])
            for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == len(labels) // 2
    assert set(seen[0].tolist()).isdisjoint(seen[1].tolist())
    whole = torch.cat([y for _, y in loader(images, labels, batch_size=30).epoch(0, 0)])
    assert set(whole.tolist()) == set(seen[0].tolist()) | set(seen[1].tolist())


def test_class_balanced_subset():
    labels = np.repeat(np.arange(10), 50)
    keep = class_balanced_subset(labels, 95)
    assert len(set(keep.tolist())) == 95
    assert np.bincount(labels[keep]).tolist() == [10] * 5 + [9] * 5 or sorted(np.bincount(labels[keep])) == [9] * 5 + [10] * 5
    assert np.array_equal(keep, class_balanced_subset(labels, 95))
