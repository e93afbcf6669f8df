"""What a training run hands on: the best head in float16 with its metadata and sha256, and its variants."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import InputError
from .config import CHECKPOINT_NAME, HEAD_NAME

if TYPE_CHECKING:
    from .train import Trainer


def export_head(checkpoint: str | Path, out_path: str | Path, metadata: dict | None = None) -> str:
    """Write the model's weights alone, in float16, with its config and metadata; return its sha256."""
    from ..model.weights import sha256_of

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    exported = {
        "config": state["model_config"],
        "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()},
        "metadata": dict(metadata or {}),
    }
    torch.save(exported, out_path)
    return sha256_of(out_path)


def with_uncertainty_strength(head_path: str | Path, out_path: str | Path, strength: float,
                              confident_gain: float | None = None) -> str:
    """A copy of an ``uncertainty`` head that fades unsure colours with another strength (0: not at all).

    ``confident_gain``: also how much stronger sure colours come out (``ColorizationNet``; None keeps the head's).

    The colour channels are learnt by the colour loss alone, so one training run
    gives every strength; ``eval`` chooses. Writes ``out_path`` and its .sha256; returns the sha256.
    """
    from ..model.colorizer import load_head
    from ..model.weights import sha256_of

    head, metadata = load_head(head_path)
    if not head.uncertainty:
        raise InputError(f"{head_path}: this head was trained without --uncertainty")
    config = dict(head.config, uncertainty_strength=float(strength))
    if confident_gain is not None:
        config.pop("confident_gain", None)
        if confident_gain:
            config["confident_gain"] = float(confident_gain)
    torch.save({"config": config, "state_dict": {k: v.half() if v.is_floating_point() else v
                                                  for k, v in head.state_dict().items()},
                "metadata": metadata}, out_path)
    sha256 = sha256_of(out_path)
    Path(str(out_path) + ".sha256").write_text(f"{sha256}  {Path(out_path).name}\n")
    return sha256


def export_best(trainer: Trainer, best: Path) -> None:
    config, run_dir = trainer.config, trainer.run_dir
    if not best.is_file():  # no validation: the last state is the best we know
        best = run_dir / CHECKPOINT_NAME
    best_row = max(trainer.history, key=lambda row: float(row.get("val_score", "-inf") or "-inf"), default={})
    metadata = {
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "train_seconds": round(trainer.seconds, 1),
        "device": str(trainer.device),
        "data": [str(d) for d in config.data],
        "sources": {name: len(items) for name, items in trainer.sources.items()},
        "options": {key: getattr(config, key) for key in (
            "loss", "uncertainty", "lightness_jitter", "batch_norm", "lr_schedule", "lr_decay_minutes",
            "lr_decay_samples", "crop_size", "min_scale", "batch_size", "mix", "init", "cache_global_features",
            "images_per_source", "global_size", "campaign")},
        "samples": trainer.samples_seen(),
        "best_epoch": {k: (float(v) if isinstance(v, (int, float, str)) and is_number(v) else str(v))
                       for k, v in best_row.items()},
    }
    if trainer.distributed.enabled:
        metadata["processes"] = trainer.distributed.world_size
    head = run_dir / HEAD_NAME
    sha256 = export_head(best, head, metadata)
    head.with_name(head.name + ".sha256").write_text(f"{sha256}  {head.name}\n")


def is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
