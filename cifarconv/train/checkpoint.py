"""Checkpoints written atomically (temp file, then rename) and read back with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import torch

from .atomic import atomic_write


def save_atomically(path: Path, payload: dict) -> None:
    """``torch.save`` that never leaves a half-written file: a kill mid-save keeps the old one."""
    with atomic_write(path) as f:
        torch.save(payload, f)


def save_checkpoint(path: Path, state: dict, model, optimizer, scheduler, scaler, lookahead=None) -> None:
    save_atomically(path, {"state": state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                           "lookahead": None if lookahead is None else lookahead.state_dict()})


def load_checkpoint(path: Path, device, model, optimizer, scheduler, scaler, lookahead=None) -> dict:
    """Restore the training objects in place; return the saved progress (epoch, step, metrics, ...)."""
    saved = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    if lookahead is not None:
        lookahead.load_state_dict(saved["lookahead"])
    return saved["state"]
