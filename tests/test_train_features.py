"""The trainer's pipeline features on a tiny synthetic CIFAR-10 (tests/synthetic_cifar.py): top-1
and top-5, the validation split and K folds, the best checkpoint chosen on validation (never
on the test set), --eval, --find-lr, --summary, the pictures, and the output a user reads."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from cifarconv.train import cli, loop
from cifarconv.train.data import load_cifar10
from cifarconv.train.data.gpu_loader import class_balanced_subset
from cifarconv.train.data.splits import SplitError, splits
from cifarconv.train.evaluate import Scores
from cifarconv.train.lr_finder import sweep_lrs
from cifarconv.train.models import MODELS
from cifarconv.train.pictures import confusion_figure, per_class_figure, predictions_figure
from cifarconv.train.recipes import RECIPES
from cifarconv.train.report import add_time_over_torch, comparison_table
from synthetic_cifar import write_cifar

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """200 train and 100 test images."""
    return write_cifar(tmp_path_factory.mktemp("synthetic"), train_per_class=20, test_per_class=10)


def run(*flags):
    return cli.main([str(f) for f in flags])


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def png_drawn(path):
    """The PNG's own check that it is one, and what it says it draws."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
        return json.loads(image.text["cifarconv"])


# --- validation split, best checkpoint, top-k, pictures ---------------------------------------------

@pytest.fixture(scope="module")
def val_run(data_dir, tmp_path_factory):
    """cnn3 for 4 epochs on 150 images, validating on 50, with every call of evaluate recorded."""
    out = tmp_path_factory.mktemp("val") / "out"
    calls, evaluate = [], loop.evaluate

    def recording(model, loader, amp, tta=0, **kw):
        calls.append((len(loader.labels), tta))
        return evaluate(model, loader, amp, tta, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "evaluate", recording)
        records = run("--conv", "torch,custom", "--epochs", "4", "--batch-size", "16", "--val", "50", "--set", "tta=1",
                      "--device", "cpu", "--data-dir", data_dir, "--out", out)
    return out, records, calls


def test_val_each_epoch_and_the_test_set_once_at_the_end(val_run):
    out, records, calls = val_run
    # Per backend: the 50 validation images after each of 4 epochs, then the 100 test images plain and with TTA.
    assert calls == [(50, 0)] * 4 + [(100, 0), (100, 1)] + [(50, 0)] * 4 + [(100, 0), (100, 1)]
    for r in records:
        rows = read_csv(out / f"{r['conv']}-seed0" / "metrics.csv")
        assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
        assert all(row["val_accuracy"] and row["val_top5"] and not row["test_accuracy"] for row in rows)
        assert r["val_accuracy"] == pytest.approx(float(rows[-1]["val_accuracy"]))
        assert (r["train_set_images"], r["val_images"], r["test_images"]) == (150, 50, 100)
        assert r["train_images"] == 144  # 9 batches of 16 each epoch: the last 6 images are left out
        assert 0 <= r["test_accuracy"] <= r["test_top5"] <= 1 and r["tta"] == 1


def test_the_generated_set_is_learned_end_to_end(val_run):
    """The trainer end to end with no real data (tests/test_train.py's real-image tests skip without it):
    cnn3 with torch and with custom learns the generated classes far above chance (10 %)."""
    out, records, _ = val_run
    assert [r["conv"] for r in records] == ["torch", "custom"]
    for r in records:
        assert r["test_accuracy"] >= 0.5  # 0.71 for both (100 test images, seed 0)
    losses = [float(read_csv(out / f"{c}-seed0" / "metrics.csv")[-1]["train_loss"]) for c in ("torch", "custom")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)  # nothing but the conv differs
    saved = json.loads((out / "results.json").read_text())
    torch_run, custom_run = saved
    assert (torch_run["time_over_torch"], custom_run["time_over_torch"]) \
        == (1.0, pytest.approx(custom_run["train_seconds"] / torch_run["train_seconds"]))


def test_time_over_torch_is_above_one_for_a_slower_backend():
    """The trainer's "time ÷ torch" (table) and time_over_torch (results.json): a backend's training
    seconds ÷ torch's, so one that takes 2.5 times as long shows 2.50x."""
    def run_record(conv, seconds):
        return {"conv": conv, "train_seconds": seconds, "images_per_second": 1000 / seconds, "test_accuracy": 0.5,
                "test_top5": 0.9, "peak_memory_bytes": None}

    records = [run_record("torch", 10.0), run_record("slow", 25.0), run_record("fast", 5.0)]
    add_time_over_torch(records)
    assert [r["time_over_torch"] for r in records] == [1.0, 2.5, 0.5]
    head, *rows = comparison_table(records).splitlines()
    column = head.index("time ÷ torch")
    assert [row[column:column + len("time ÷ torch")].strip() for row in rows] == ["1.00x", "2.50x", "0.50x"]
    alone = [run_record("slow", 25.0)]
    add_time_over_torch(alone)
    assert alone[0]["time_over_torch"] is None and comparison_table(alone).splitlines()[1].split()[-2] == "-"


def test_best_checkpoint_is_the_best_validation_epoch(val_run):
    out, records, _ = val_run
    for r in records:
        rows = read_csv(out / f"{r['conv']}-seed0" / "metrics.csv")
        val = [float(row["val_accuracy"]) for row in rows]
        best_epoch = val.index(max(val)) + 1  # the first epoch with the highest validation accuracy
        assert (r["best_epoch"], r["best_val_accuracy"]) == (best_epoch, pytest.approx(max(val)))
        best = torch.load(out / f"{r['conv']}-seed0" / "best.pt", weights_only=True)
        final = torch.load(out / f"{r['conv']}-seed0" / "final.pt", weights_only=True)
        assert (best["kind"], best["epoch"], best["val_accuracy"]) == ("best", best_epoch, pytest.approx(max(val)))
        assert (final["kind"], final["epoch"], final["model"]) == ("final", 4, "cnn3")
        assert "test_accuracy" not in best  # chosen before the test set was ever scored


def test_top5_is_at_least_top1_and_counts_the_five_largest_logits():
    from cifarconv.train.evaluate import top_k_hits

    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4, 3, 2, 1, 0]] * 3)
    y = torch.tensor([0, 4, 5])  # ranks 1, 5 and 6
    assert top_k_hits(logits, y, 1).item() == 1 and top_k_hits(logits, y, 5).item() == 2


def test_pictures_hold_what_they_claim(val_run, data_dir):
    out, records, _ = val_run
    data = load_cifar10(data_dir)
    shown = class_balanced_subset(data.test_labels, 40)  # the grid's images: four of each class
    for r in records:
        folder = out / f"{r['conv']}-seed0"
        confusion = png_drawn(folder / "confusion.png")["confusion"]
        assert confusion == r["confusion"] and sum(map(sum, confusion)) == r["test_images"] == 100
        assert [sum(row) for row in confusion] == [10] * 10  # each true class's test images
        assert sum(confusion[i][i] for i in range(10)) == round(r["test_accuracy"] * 100)
        per_class = png_drawn(folder / "per_class.png")
        assert per_class["classes"] == list(CLASSES)
        assert per_class["per_class_accuracy"] == [confusion[i][i] / 10 for i in range(10)]
        assert per_class["per_class_accuracy"] == list(r["per_class_accuracy"].values())
        # The grid: the final weights' own predictions (with the TTA level they were scored with).
        saved = torch.load(folder / "final.pt", weights_only=True)
        model = MODELS["cnn3"]()
        model.load_state_dict(saved["weights"])
        model.eval()
        x = torch.from_numpy(data.test_images).permute(0, 3, 1, 2).float()
        x = (x - torch.tensor(saved["mean"]).view(1, 3, 1, 1)) / torch.tensor(saved["std"]).view(1, 3, 1, 1)
        with torch.no_grad():
            predicted = (0.5 * (model(x) + model(x.flip(-1)))).argmax(1)  # TTA level 1
        assert (predicted == torch.from_numpy(data.test_labels)).sum().item() == round(r["test_accuracy"] * 100)
        grid = png_drawn(folder / "predictions.png")
        assert grid["true"] == data.test_labels[shown].tolist() and sorted(grid["true"]) == sorted(list(range(10)) * 4)
        assert grid["predicted"] == predicted[torch.from_numpy(shown)].tolist()


def test_figures_draw_the_numbers_given():
    confusion = [[3 if i == j else 1 for j in range(10)] for i in range(10)]
    fig = confusion_figure(confusion, CLASSES, "t")
    assert np.array_equal(fig.axes[0].images[0].get_array(), np.array(confusion))
    assert [t.get_text() for t in fig.axes[0].texts] == [str(n) for row in confusion for n in row]
    fig = per_class_figure([i / 10 for i in range(10)], CLASSES, "t")
    assert [round(p.get_height(), 6) for p in fig.axes[0].patches] == [10.0 * i for i in range(10)]
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    fig = predictions_figure(images, [0, 1, 2, 3], [0, 5, 2, 7], CLASSES, "t", columns=2)
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes]
    assert titles == [("airplane\n(airplane)", "black"), ("dog\n(automobile)", "#c0392b"),
                      ("bird\n(bird)", "black"), ("horse\n(cat)", "#c0392b")]
    assert [ax.spines["left"].get_visible() for ax in fig.axes] == [False, True, False, True]


# --- folds and splits --------------------------------------------------------------------------

def test_splits_are_class_balanced_disjoint_and_cover_the_training_set():
    labels = np.repeat(np.arange(10), 30)
    (one,) = splits(labels, 50, None, None)
    assert len(one.val) == 50 and np.bincount(labels[one.val]).tolist() == [5] * 10
    assert set(one.val).isdisjoint(one.train) and len(one.train) + len(one.val) == 300
    folds = splits(labels, 0, 3, None)
    assert [f.fold for f in folds] == [0, 1, 2]
    assert sorted(np.concatenate([f.val for f in folds]).tolist()) == list(range(300))
    for f in folds:
        assert np.bincount(labels[f.val]).tolist() == [10] * 10 and set(f.val).isdisjoint(f.train)
    (limited,) = splits(labels, 50, None, 40)
    assert len(limited.train) == 40 and set(limited.train) <= set(one.train)
    with pytest.raises(SplitError, match="--val 300: not smaller than the 300 training images"):
        splits(labels, 300, None, None)


def test_folds_cross_validate(data_dir, tmp_path, capsys):
    records = run("--conv", "torch", "--folds", "3", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
                  "--data-dir", data_dir, "--out", tmp_path / "out")
    assert [(r["fold"], r["val_images"]) for r in records] == [(0, 67), (1, 67), (2, 66)]
    assert all(r["val_accuracy"] is not None for r in records)
    table = (tmp_path / "out" / "table.txt").read_text()
    assert "val top-1" in table and "±" in table  # the mean ± std over the 3 folds
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"torch-seed0-fold0", "torch-seed0-fold1", "torch-seed0-fold2"}
    assert "3-fold cross-validation" in capsys.readouterr().out


# --- the plateau schedule watches validation accuracy ------------------------------------------

def test_plateau_watches_validation_accuracy(data_dir, tmp_path, monkeypatch):
    watched, after_epoch = [], loop.Schedule.after_epoch

    def record(self, accuracy):
        watched.append(accuracy)
        after_epoch(self, accuracy)

    monkeypatch.setattr(loop.Schedule, "after_epoch", record)
    run("--conv", "torch", "--epochs", "3", "--batch-size", "32", "--val", "50", "--set", "lr_values=(1, 1, 1)",
        "--set", "plateau_factor=0.5", "--set", "plateau_patience=0", "--device", "cpu", "--data-dir", data_dir,
        "--out", tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "torch-seed0" / "metrics.csv")
    assert watched == [pytest.approx(float(row["val_accuracy"])) for row in rows]
    best, lr, expected = -math.inf, RECIPES["cnn3"]["lr"], []
    for accuracy in watched:  # patience 0, threshold 0: halved after every epoch that does not beat the best
        best, lr = (accuracy, lr) if accuracy > best else (best, lr / 2)
        expected.append(lr)
    assert [float(row["lr"]) for row in rows] == pytest.approx(expected)


# --- --eval -------------------------------------------------------------------------------------

def test_eval_scores_a_saved_run_again_with_any_backend(val_run, data_dir, capsys):
    out, records, _ = val_run
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    scored = run("--eval", out, "--conv", "torch,cpp", "--device", "cpu", "--data-dir", data_dir)
    printed = capsys.readouterr().out
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # writes nothing
    finals = {(s["weights"].split("/")[-2], s["conv"]): s for s in scored if s["weights"].endswith("final.pt")}
    for r in records:  # the final weights score what the run reported, with either backend
        for conv in ("torch", "cpp"):
            s = finals[f"{r['conv']}-seed0", conv]
            assert (s["top1"], s["top5"]) == (pytest.approx(r["test_accuracy"], abs=0.011),
                                              pytest.approx(r["test_top5"], abs=0.011))
    assert len(scored) == 8  # final.pt and best.pt of 2 runs, with 2 backends each
    assert "top-1 per class" in printed and "airplane" in printed and "custom-seed0/best.pt" in printed


@pytest.fixture
def trained(data_dir, tmp_path):
    out = tmp_path / "out"
    run("--conv", "torch", "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--data-dir", data_dir,
        "--out", out)
    return out


def exits_with_one_line(capsys, *flags) -> str:
    with pytest.raises(SystemExit) as e:
        run(*flags)
    assert e.value.code != 0
    message = e.value.code if isinstance(e.value.code, str) else capsys.readouterr().err
    assert message.strip() and "\n" not in message.strip() and "Traceback" not in message
    return message


def test_eval_bad_folders(trained, data_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no trained weights" in exits_with_one_line(capsys, "--eval", empty, "--device", "cpu")
    message = exits_with_one_line(capsys, "--eval", trained, "--model", "cnn5-padded", "--device", "cpu",
                                  "--data-dir", data_dir)
    assert "final.pt holds cnn3 weights, not cnn5-padded's" in message
    assert list(empty.iterdir()) == []


MALICIOUS = b"cos\nsystem\n(S'touch {}'\ntR."  # a protocol-0 pickle that calls os.system


@pytest.mark.parametrize("damage, expected", [
    ("truncated", "is truncated or corrupt"),
    ("garbage", "is truncated or corrupt"),
    ("pickle", "safe loading (weights_only=True) refuses"),
    ("not ours", "is not this kind of file of this trainer"),
])
def test_broken_weights_and_checkpoints_name_the_file_and_the_way_out(trained, data_dir, tmp_path, capsys,
                                                                      damage, expected):
    marker = tmp_path / "pwned"
    for name, flags, way_out in (("final.pt", ("--eval", trained / "torch-seed0"), "train the run again"),
                                 ("checkpoint.pt", ("--resume", trained), "delete it to train this run again")):
        path = trained / "torch-seed0" / name
        good = path.read_bytes()
        (trained / "torch-seed0" / "result.pt").unlink(missing_ok=True)  # so that --resume reads the checkpoint
        path.write_bytes({"truncated": good[: len(good) // 2], "garbage": b"\x00garbage" * 50,
                          "pickle": MALICIOUS.replace(b"{}", str(marker).encode()),
                          "not ours": _saved({"weights": 1})}[damage])
        before = sorted((p.name, p.stat().st_size) for p in trained.rglob("*"))
        message = exits_with_one_line(capsys, *flags, "--device", "cpu", "--data-dir", data_dir)
        assert str(path) in message and expected in message and way_out in message
        assert sorted((p.name, p.stat().st_size) for p in trained.rglob("*")) == before  # nothing written
        assert not marker.exists()
        path.write_bytes(good)


def _saved(value) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


# --- --find-lr and --summary -----------------------------------------------------------------------

def test_find_lr_sweeps_exponentially_and_suggests_a_peak(data_dir, tmp_path, capsys):
    (result,) = run("--find-lr", "--conv", "cpp", "--batch-size", "20", "--device", "cpu", "--data-dir", data_dir,
                    "--out", tmp_path / "out")
    lrs = result["lrs"]
    assert lrs == pytest.approx(sweep_lrs()[: len(lrs)].tolist()) and lrs[0] == pytest.approx(1e-7)
    assert all(b / a == pytest.approx((10 / 1e-7) ** (1 / 199)) for a, b in zip(lrs, lrs[1:]))
    assert 10 <= len(lrs) <= 200 and len(result["smoothed"]) == len(lrs)
    lowest = int(np.argmin(result["smoothed"]))
    steepest = int(np.argmin(np.gradient(result["smoothed"][: lowest + 1])))
    assert result["suggested_torch_lr"] == lrs[steepest] and result["suggested_recipe_lr"] == lrs[steepest]
    assert png_size(tmp_path / "out" / "lr_find.png")
    assert json.loads((tmp_path / "out" / "lr_find.json").read_text())["suggested_torch_lr"] == lrs[steepest]
    assert f"suggested peak lr: {lrs[steepest]:.3g}" in capsys.readouterr().out


def png_size(path):
    with Image.open(path) as image:
        return image.format == "PNG" and image.size


def test_summary_lists_shapes_parameters_and_conv_flops(capsys, tmp_path):
    run("--summary", "--model", "cnn5-padded", "--out", tmp_path / "out")
    text = capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    lines = {line.split()[0]: line for line in text.splitlines()[2:-1]}
    # conv1 3 -> 8, 3x3 at 32x32: 2 * 8 * 32 * 32 * 3 * 9 FLOPs and 8 * 27 + 8 parameters
    assert lines["0"].split()[1:] == ["Conv2d", "[8,", "32,", "32]", "224", f"{2 * 8 * 32 * 32 * 27:,}"]
    assert "[256, 8, 8]" in lines["11"] and "[16384]" in lines["14"] and "4,194,560" in lines["15"]
    assert text.startswith(f"cnn5-padded: {sum(p.numel() for p in MODELS['cnn5-padded']().parameters()):,} parameters")
    run("--summary", "--model", "cnn5-unpadded")
    assert "[256, 6, 6]" in capsys.readouterr().out
    run("--summary", "--model", "vit")
    vit = capsys.readouterr().out
    assert f"total: {sum(p.numel() for p in MODELS['vit']().parameters()):,} parameters" in vit  # all counted once


# --- what a user reads ----------------------------------------------------------------------------

def test_output_says_epoch_percent_and_no_spread_for_one_seed(data_dir, tmp_path, capsys):
    run("--conv", "torch", "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--data-dir", data_dir,
        "--out", tmp_path / "one")
    printed = capsys.readouterr().out
    assert "1 epoch (3 steps)" in printed and "1 epochs" not in printed
    assert "test top-1" in printed and "%" in printed.splitlines()[1]
    table = (tmp_path / "one" / "table.txt").read_text()
    assert "±" not in table
    (record,) = json.loads((tmp_path / "one" / "results.json").read_text())
    assert (record["train_images"], record["train_set_images"]) == (192, 200)  # 3 batches of 64
    run("--conv", "torch", "--seeds", "2", "--epochs", "1", "--batch-size", "64", "--device", "cpu",
        "--data-dir", data_dir, "--out", tmp_path / "two")
    assert "±" in (tmp_path / "two" / "table.txt").read_text()


def test_missing_data_dir_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("cifarconv.train.data.URL", (tmp_path / "offline.tar.gz").as_uri())
    with pytest.raises(SystemExit) as e:
        run("--device", "cpu", "--data-dir", tmp_path / "nothing" / "here", "--out", tmp_path / "out")
    assert "no CIFAR-10 found" in str(e.value.code)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the data folder nor the run's


def test_triton_interpreter_is_announced_before_anything_runs(tmp_path, monkeypatch, capsys):
    def must_not_start(*args):
        raise AssertionError("reached training")

    monkeypatch.setattr(loop, "compare", must_not_start)
    with pytest.raises(AssertionError, match="reached training"):
        run("--conv", "triton", "--device", "cpu", "--out", tmp_path / "out")
    err = capsys.readouterr().err
    assert "Triton's interpreter" in err and "for tests" in err and "slower than torch" in err


def test_no_flags_compare_torch_custom_and_cpp_with_cnn3_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.parse_args([])
    if args.torch_device.type == "cpu":
        assert args.model == "cnn3" and args.recipe == RECIPES["cnn3"]
        assert args.conv[:2] == ["torch", "custom"] and set(args.conv) <= {"torch", "custom", "cpp"}
    assert args.data_dir in ("data", __import__("os").environ.get("CIFARCONV_DATA"))


def test_recipe_by_name(tmp_path):
    from cifarconv.train.source_recipes import SOURCE_RECIPES

    for model, recipe in SOURCE_RECIPES.items():
        assert cli.parse_args(["--model", model, "--recipe", "source", "--out", str(tmp_path)]).recipe == recipe
    args = cli.parse_args(["--model", "cnn3", "--recipe", "source", "--val", "0", "--out", str(tmp_path)])
    assert args.recipe["val_images"] == 0 and args.recipe["lr"] == 1e-4


@pytest.mark.parametrize("flags, message", [
    (["--model", "vgg"], "invalid choice: 'vgg'"),
    (["--recipe", "fastest"], "invalid choice: 'fastest' (choose from 'default', 'source')"),
    (["--model", "vit", "--recipe", "source"], "model vit has no recipe 'source'; its recipes: default"),
    (["--folds", "1"], "cross-validation needs at least 2 folds"),
    (["--folds", "3", "--val", "10"], "--folds and --val exclude each other"),
    (["--find-lr", "--resume", "x"], "--resume and --find-lr exclude each other"),
    (["--eval", "x", "--find-lr"], "--eval and --find-lr exclude each other"),
    (["--val", "-1"], "must be 0 or more"),
    (["--set", "betas=(0.9,)"], "recipe value betas=(0.9,): must be two numbers"),
    (["--set", "plateau_factor=0.5"], "a plateau schedule needs a constant lr factor"),
    (["--device", "mps"], "--device mps: MPS (Apple-silicon GPUs, macOS) is not available here"),
])
def test_bad_input_is_one_line_and_exit_status_2(flags, message, capsys, tmp_path):
    if "mps" in flags and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS: checks the message where it has not")
    with pytest.raises(SystemExit) as e:
        run(*flags, "--out", tmp_path / "out")
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line and line.startswith("python -m cifarconv.train: error:")
    assert not (tmp_path / "out").exists()


def test_val_larger_than_the_training_set(data_dir, tmp_path, capsys):
    message = exits_with_one_line(capsys, "--val", "200", "--device", "cpu", "--data-dir", data_dir, "--out",
                                  tmp_path / "out")
    assert "--val 200: not smaller than the 200 training images" in message
    assert not (tmp_path / "out").exists()


def test_scores_per_class():
    scores = Scores(0.0, 0.5, 1.0, [[1, 1], [0, 2]])
    assert scores.per_class == [0.5, 1.0]
    assert math.isnan(Scores(0, 0, 0, [[0, 0], [0, 1]]).per_class[0])


def test_resume_keeps_the_best_validation_epoch(data_dir, tmp_path, killed_after_first_checkpoint):
    flags = ("--conv", "torch", "--epochs", "3", "--batch-size", "32", "--val", "50", "--device", "cpu",
             "--data-dir", data_dir)
    with pytest.raises(KeyboardInterrupt):
        run(*flags, "--out", tmp_path / "killed")
    assert torch.load(tmp_path / "killed" / "torch-seed0" / "best.pt", weights_only=True)["epoch"] == 1
    killed_after_first_checkpoint()  # saves normally again
    (resumed,) = run("--resume", tmp_path / "killed")
    (whole,) = run(*flags, "--out", tmp_path / "whole")
    same = ("best_epoch", "best_val_accuracy", "val_accuracy", "test_accuracy", "test_top5", "confusion")
    assert {k: resumed[k] for k in same} == {k: whole[k] for k in same}
    for name in ("best.pt", "final.pt"):
        a, b = (torch.load(d / "torch-seed0" / name, weights_only=True) for d in (tmp_path / "killed", tmp_path / "whole"))
        assert a["epoch"] == b["epoch"] and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


def test_denormals_are_flushed_while_training_only(tmp_path, monkeypatch):
    seen = []

    def look(*args):
        seen.append((torch.tensor([1e-39]) * 1.0).item())  # a denormal float32: 0 once flushed
        return []

    monkeypatch.setattr(loop, "compare", look)
    run("--conv", "torch", "--device", "cpu", "--out", tmp_path / "out")
    if torch.set_flush_denormal(True):  # False where the CPU cannot (not x86 with SSE3)
        torch.set_flush_denormal(False)
        assert seen == [0.0]
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0  # torch's default again afterwards
