"""The trainer end to end on the CPU: a smoke run on real CIFAR-10 images, the recipe's
epoch-level rules (a fractional epoch count, the whitening bias frozen after 3 epochs), resume
after an interruption, the recipe picked by model and overridden by flags, and bad flags giving
clear errors.

The real images come from ``$CIFARCONV_CIFAR10`` (a .tar.gz of ``train/<class>/`` and
``test/<class>/`` images, such as the JPEG copy of CIFAR-10) or ``$CIFARCONV_DATA`` (those image
folders).  Without either, the tests that need them are skipped with that reason, unless
``CIFARCONV_REQUIRE_DATA=1`` (CI sets it): then they fail.  tests/test_train_features.py
trains end to end on a generated data set either way."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from cifarconv.train import cli, loop
from cifarconv.train.recipes import RECIPES

PER_SPLIT = {"train": 20, "test": 10}  # images taken per class


def _from_archive(archive: Path, dest: Path) -> None:
    taken = Counter()
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            split, *rest = member.name.split("/")
            if member.isfile() and len(rest) == 2 and split in PER_SPLIT and taken[split, rest[0]] < PER_SPLIT[split]:
                taken[split, rest[0]] += 1
                tar.extract(member, dest, filter="data")


def _from_folders(source: Path, dest: Path) -> None:
    for split, count in PER_SPLIT.items():
        for label in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            (dest / split / label.name).mkdir(parents=True)
            for image in sorted(f for f in label.iterdir() if f.is_file())[:count]:
                shutil.copy(image, dest / split / label.name / image.name)


def _real_source() -> tuple[Path | None, str]:
    """(archive or image folder, "") when the real data is found, else (None, why not)."""
    if archive := os.environ.get("CIFARCONV_CIFAR10"):
        if Path(archive).is_file():
            return Path(archive), ""
        return None, f"CIFARCONV_CIFAR10={archive} is not a file"
    if folder := os.environ.get("CIFARCONV_DATA"):
        if all((Path(folder) / split).is_dir() for split in PER_SPLIT):
            return Path(folder), ""
        return None, f"CIFARCONV_DATA={folder} holds no train/<class>/ and test/<class>/ image folders"
    return None, ("no real CIFAR-10: set CIFARCONV_CIFAR10 to its .tar.gz of image folders "
                  "or CIFARCONV_DATA to the folders")


@pytest.fixture(scope="module")
def real_images(tmp_path_factory):
    """A few hundred real CIFAR-10 images: 20 train and 10 test per class, in image folders."""
    source, why_not = _real_source()
    if source is None:  # CIFARCONV_REQUIRE_DATA=1 (CI): missing data is a failure, never a skip
        (pytest.fail if os.environ.get("CIFARCONV_REQUIRE_DATA") == "1" else pytest.skip)(why_not)
    root = tmp_path_factory.mktemp("cifar-real")
    (_from_folders if source.is_dir() else _from_archive)(source, root)
    return root


def run(*flags):
    return cli.main([str(f) for f in flags])


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_smoke_two_backends_on_real_images(real_images, tmp_path):
    out = tmp_path / "out"
    run("--conv", "torch,custom", "--model", "fastnet", "--device", "cpu", "--epochs", "1", "--batch-size", "100",
        "--limit-test", "50", "--data-dir", real_images, "--out", out)  # 50 test images: 7 passes over them with TTA
    records = json.loads((out / "results.json").read_text())
    assert [(r["conv"], r["seed"]) for r in records] == [("torch", 0), ("custom", 0)]
    for r in records:
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["test_accuracy_no_tta"] <= 1 and r["epochs"] == 1
        assert r["tta"] == 2 and r["steps"] == 2 and r["batch_size"] == 100
        assert r["train_seconds"] > 0 and r["images_per_second"] > 0
        assert r["peak_memory_bytes"] is None  # not measured on the CPU
        assert (r["train_images"], r["test_images"]) == (200, 50)
        rows = read_csv(out / f"{r['conv']}-seed0" / "metrics.csv")
        assert [row["epoch"] for row in rows] == ["1"]
        assert all(math.isfinite(float(rows[0][k])) for k in ("train_loss", "test_loss"))
    assert (out / "curves.png").stat().st_size > 1000
    assert "time ÷ torch" in (out / "table.txt").read_text() and "without TTA" in (out / "table.txt").read_text()
    # Nothing but the conv differs: same weights, data and augmentation give the same loss up to rounding.
    losses = [float(read_csv(out / f"{c}-seed0" / "metrics.csv")[0]["train_loss"]) for c in ("torch", "custom")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)


def test_resume_continues_from_the_last_epoch(real_images, tmp_path, monkeypatch, killed_after_first_checkpoint,
                                             capsys):
    out = tmp_path / "out"
    # 6 steps an epoch, 12 in all: lookahead updates at steps 5 and 10 and the last, across the interruption.
    flags = ("--conv", "torch", "--model", "fastnet", "--device", "cpu", "--epochs", "2", "--batch-size", "10",
             "--limit-train", "60", "--limit-test", "30", "--data-dir", real_images)
    with pytest.raises(KeyboardInterrupt):
        run(*flags, "--out", out)
    first = read_csv(out / "torch-seed0" / "metrics.csv")
    assert [row["epoch"] for row in first] == ["1"] and not (out / "results.json").exists()

    killed_after_first_checkpoint()  # saves normally again
    with pytest.raises(SystemExit):
        run(*flags, "--out", out)
    assert "already holds a run: continue it with --resume" in capsys.readouterr().err
    run("--resume", out)
    rows = read_csv(out / "torch-seed0" / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0] == first[0]  # epoch 1 was not trained again
    (record,) = json.loads((out / "results.json").read_text())
    assert record["epochs"] == 2 and record["train_images"] == 60 and record["steps"] == 12

    (whole,) = run(*flags, "--out", tmp_path / "whole")  # the same run, not interrupted
    timing = ("epoch_seconds", "images_per_second")
    assert [{k: v for k, v in r.items() if k not in timing} for r in read_csv(tmp_path / "whole" / "torch-seed0" / "metrics.csv")] \
        == [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert whole["test_accuracy"] == record["test_accuracy"]

    def must_not_train(*args):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop, "train_run", must_not_train)
    run("--out", out, "--resume")
    assert json.loads((out / "results.json").read_text()) == [record]


def test_whitening_bias_freezes_after_three_epochs_and_a_fraction_ends_mid_epoch(real_images, tmp_path, monkeypatch):
    biases, weights, save = [], [], loop.save_checkpoint

    def save_and_look(path, state, model, *rest):
        biases.append(model.whiten.bias.detach().clone())
        weights.append(model.whiten.weight.detach().clone())
        save(path, state, model, *rest)

    monkeypatch.setattr(loop, "save_checkpoint", save_and_look)
    (record,) = run("--conv", "torch", "--model", "fastnet", "--device", "cpu", "--epochs", "4.5", "--batch-size", "30",
                    "--limit-train", "60", "--limit-test", "30", "--set", "lookahead_every=0", "--set", "tta=0",
                    "--data-dir", real_images, "--out", tmp_path / "out")
    assert record["steps"] == 9 and len(biases) == 5  # 2 steps an epoch: 4 epochs, then 1 step of the fifth
    assert record["test_accuracy"] == record["test_accuracy_no_tta"]
    assert biases[0].abs().sum() > 0  # trained from 0 in epoch 1
    assert not torch.equal(biases[1], biases[0]) and not torch.equal(biases[2], biases[1])  # epochs 2 and 3
    assert torch.equal(biases[3], biases[2]) and torch.equal(biases[4], biases[2])  # frozen from epoch 4 on
    assert all(torch.equal(w, weights[0]) for w in weights)  # the whitening weight never trains


def test_recipe_by_model_and_single_overrides(tmp_path):
    for model, recipe in RECIPES.items():
        assert cli.parse_args(["--model", model, "--out", str(tmp_path)]).recipe == recipe
    args = cli.parse_args(["--model", "fastnet", "--lr", "5", "--epochs", "3", "--set", "flip=random",
                           "--set", "lr_knots=(0, 0.5, 1)", "--set", "tta=0", "--out", str(tmp_path)])
    changed = {"lr": 5.0, "epochs": 3.0, "flip": "random", "lr_knots": (0, 0.5, 1), "tta": 0}
    assert args.recipe == {**RECIPES["fastnet"], **changed}
    assert RECIPES["fastnet"]["tta"] == 2  # the recipe itself is not changed


@pytest.mark.parametrize("flags, message", [
    (["--conv", "torch,nope"], "unknown conv backend nope; valid names: torch, custom, cpp, cuda, triton"),
    (["--conv", "torch,torch"], "named twice"),
    (["--conv", "cuda", "--device", "cpu"], "--conv cuda cannot run on cpu here: it runs on cuda tensors"),
    (["--epochs", "0"], "must be positive"),
    (["--set", "tta=3"], "recipe value tta=3: must be 0, 1 or 2"),
    (["--set", "flip=sideways"], "recipe value flip='sideways': must be one of none, random, alternating"),
    (["--set", "wings=2"], "'wings=2' is not KEY=VALUE with KEY one of: epochs, batch_size"),
    (["--set", "momentum=1"], "recipe value momentum=1: must be a number >= 0 and < 1"),
    (["--lr", "-1"], "must be positive"),
    (["--batch-size", "x"], "invalid int value"),
    (["--model", "vgg"], "invalid choice: 'vgg'"),
    (["--amp", "fp8"], "invalid choice: 'fp8'"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--resume"], "--resume needs the run's folder"),
])
def test_bad_flags_are_clear_errors(flags, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        run(*flags, "--out", tmp_path / "out") if "--resume" not in flags else run(*flags)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("config, message", [
    ('{"conv": ["torch"], "model": "fastnet", "epochs": 10}', "lacks this trainer's settings"),
    ("{not json", "is not a run's settings"),
])
def test_resume_of_a_folder_that_is_not_this_trainers_run(config, message, capsys, tmp_path):
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(SystemExit) as e:
        run("--resume", tmp_path)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_device_without_cuda(capsys, tmp_path):
    with pytest.raises(SystemExit):
        run("--device", "cuda", "--out", tmp_path)
    assert "CUDA is not available here" in capsys.readouterr().err


def test_no_data_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("cifarconv.train.data.URL", (tmp_path / "offline.tar.gz").as_uri())
    with pytest.raises(SystemExit) as e:
        run("--device", "cpu", "--data-dir", tmp_path / "nothing", "--out", tmp_path / "out")
    assert str(tmp_path / "nothing") in str(e.value) and "cifar-10-batches-py" in str(e.value)
    assert not (tmp_path / "out").exists()  # a failed start leaves no run behind to --resume
