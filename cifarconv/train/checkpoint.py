"""Checkpoints written atomically (temp file, then rename) and read back with ``weights_only=True``.

Three kinds of file, each a plain dict of tensors, numbers, strings and lists:

- ``checkpoint.pt``: everything a killed run needs to continue (``--resume``);
- ``final.pt`` and ``best.pt``: a network's weights after the last epoch, and after the epoch of
  the best validation accuracy, with what is needed to rebuild and feed it (``--eval``);
- ``result.pt``: a finished run's record and per-epoch metrics.

A file that cannot be read (truncated, corrupt, not torch's, or holding objects that
``weights_only`` refuses to unpickle, e.g. code) is a `CheckpointError` that names the file and
says what to do, never torch's own traceback.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint or weights file that cannot be used; the message names it and the way out."""


def save_atomically(path: Path, payload: dict) -> None:
    """``torch.save`` that never leaves a half-written file: a kill mid-save keeps the old one."""
    with atomic_write(path) as f:
        torch.save(payload, f)


def read(path: Path, device, what_to_do: str, keys: tuple[str, ...] = ()) -> dict:
    """``torch.load(path, weights_only=True)``, or a CheckpointError ending in ``what_to_do``.

    ``keys``: what the dict must hold to be one of this trainer's files of that kind."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist; {what_to_do}") from None
    except Exception as e:  # torch.load fails in many types: zip reader, unpickler, EOF, key, ...
        text = str(e)
        if "GLOBAL" in text or "Unsupported global" in text:  # weights_only's unpickler refused a class or function
            problem = "holds objects that safe loading (weights_only=True) refuses, e.g. code to run; it was not loaded"
        else:
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            reason = next((line for line in lines if "Unsupported" in line), lines[0] if lines else type(e).__name__)
            problem = f"is truncated or corrupt, or not a torch checkpoint ({type(e).__name__}: {reason[:120]})"
        raise CheckpointError(f"{path} {problem}; {what_to_do}") from None
    missing = [key for key in keys if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise CheckpointError(f"{path} is not this kind of file of this trainer (it lacks {', '.join(missing)}); "
                              f"{what_to_do}")
    return saved


def save_checkpoint(path: Path, state: dict, model, optimizer, schedule, scaler, lookahead=None) -> None:
    save_atomically(path, {"state": state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": schedule.state_dict(), "scaler": scaler.state_dict(),
                           "lookahead": None if lookahead is None else lookahead.state_dict()})


def load_checkpoint(path: Path, device, model, optimizer, schedule, scaler, lookahead=None) -> dict:
    """Restore the training objects in place; return the saved progress (epoch, step, metrics, ...)."""
    what_to_do = (f"delete it to train this run again from its first epoch (the run's other backends and seeds "
                  f"are kept), or start a new run with another --out")
    saved = read(path, device, what_to_do, ("state", "model", "optimizer", "scheduler", "scaler", "lookahead"))
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        if lookahead is not None:
            lookahead.load_state_dict(saved["lookahead"])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} does not fit this run's model and recipe ({reason[:160]}); "
                              f"{what_to_do}") from None
    return saved["state"]


WEIGHTS_KEYS = ("model", "net", "weights", "mean", "std", "tta")


def save_weights(path: Path, model_name: str, net: dict, model, mean, std, tta: int, **about) -> None:
    """The network's weights with what rebuilds and feeds it: its name and settings, and the
    normalization of its inputs; ``about``: epoch, conv, seed, accuracies (for the reader)."""
    save_atomically(path, {"model": model_name, "net": net, "weights": model.state_dict(), "mean": list(mean),
                           "std": list(std), "tta": tta, **about})


def read_weights(path: Path, device) -> dict:
    return read(path, device, "train the run again, or point --eval at another run's folder", WEIGHTS_KEYS)
