"""``--eval RUN_DIR``: score a trained run's weights on the test set again, with each ``--conv``,
without training.

RUN_DIR is a run's folder (its ``<conv>-seed<seed>[-fold<k>]`` folders are searched) or one of
those folders.  Every ``final.pt`` and ``best.pt`` found is read with ``weights_only=True`` and
rebuilt from what it holds (the network's name and settings, the normalization of its inputs,
its TTA level), so the run's recipe may have changed since.  ``--model`` is a check: weights of
another network are an error.  Prints top-1 and top-5 per (file, backend), then each class's
top-1; writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from .. import convert
from .checkpoint import CheckpointError, read_weights
from .data import CLASSES
from .data.gpu_loader import GpuLoader, class_balanced_subset
from .evaluate import evaluate
from .loop import percent, read_data
from .models import BUILDERS, build_network
from .report import per_class_table

WEIGHTS = ("final.pt", "best.pt")


def weights_files(folder: Path) -> list[Path]:
    here = [folder / name for name in WEIGHTS if (folder / name).is_file()]
    return here or sorted(path for name in WEIGHTS for path in folder.glob(f"*/{name}"))


def load_network(path: Path, saved: dict, model_name: str | None, device):
    """The network ``saved`` holds, its weights loaded; CheckpointError if they are not ``model_name``'s."""
    if saved["model"] not in BUILDERS:
        raise CheckpointError(f"{path} holds weights of a network this trainer does not know ({saved['model']!r})")
    if model_name is not None and saved["model"] != model_name:
        raise CheckpointError(f"{path} holds {saved['model']} weights, not {model_name}'s: evaluate it without --model "
                              f"(the file names its network), or point --eval at a run of {model_name}")
    try:
        network = build_network(saved["model"], saved["net"])
        network.load_state_dict(saved["weights"])
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: its weights do not fit the {saved['model']} network it names ({reason[:160]}); "
                              f"train the run again") from None
    return network.to(device)


def evaluate_run(args) -> list[dict]:
    folder = Path(args.eval)
    if not folder.is_dir():
        raise SystemExit(f"error: --eval {folder}: no such folder; give a run's folder (the --out of a training run)")
    files = weights_files(folder)
    if not files:
        raise SystemExit(f"error: --eval {folder} holds no trained weights (final.pt or best.pt, in it or in its "
                         f"<conv>-seed<seed> folders); train a run first, or point --eval at a run's folder")
    device = args.torch_device
    networks = [(path, saved, load_network(path, saved, args.model, device))
                for path, saved in ((path, read_weights(path, device)) for path in files)]  # all checked before data
    data = read_data(args)
    test_x, test_y = data.test_images, data.test_labels
    if args.limit_test:
        keep = class_balanced_subset(test_y, args.limit_test)
        test_x, test_y = test_x[keep], test_y[keep]

    records, per_class = [], []
    print(f"scoring {len(files)} weights file{'s' if len(files) > 1 else ''} from {folder} on {len(test_y)} test "
          f"images with {', '.join(args.conv)}", flush=True)
    for path, saved, network in networks:
        test = GpuLoader(test_x, test_y, 1000, device, saved["mean"], saved["std"], train=False,
                         channels_last=args.channels_last)
        label = str(path.relative_to(folder)) if path.parent != folder else path.name
        for conv in args.conv:
            scores = evaluate(convert(network, conv), test, args.amp, saved["tta"])
            records.append(dict(weights=str(path), model=saved["model"], conv=conv, tta=saved["tta"], top1=scores.top1,
                                top5=scores.top5, per_class_accuracy=dict(zip(CLASSES, scores.per_class)),
                                confusion=scores.confusion, test_images=len(test_y)))
            per_class.append((f"{label} {conv}", scores.per_class))
    width = max(len(r["weights"]) for r in records)
    print(f"\n{'weights':{width}s} {'conv':8s} {'model':14s} {'tta':>3s} {'top-1':>9s} {'top-5':>9s}")
    for r in records:
        print(f"{r['weights']:{width}s} {r['conv']:8s} {r['model']:14s} {r['tta']:3d} {percent(r['top1']):>9s} "
              f"{percent(r['top5']):>9s}")
    print(f"\ntop-1 per class:\n{per_class_table(per_class, CLASSES)}", flush=True)
    return records
