"""A training campaign kept in a small folder, so that it grows over many runs on many machines.

A CPU trains for a couple of hours a day. The run folder's checkpoint
(weights, Adam's moments, the cache) is too large to keep, so a campaign
keeps only what it needs to go on: the head in float16 (``head.pt``, a head
file like any other, with its ``.sha256``) and ``state.json`` (steps,
samples, training seconds that drive the learning-rate schedule, and the
log). A run resumes from it with fresh Adam moments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import InputError
from ..model.network import ColorizationNet
from ..model.weights import sha256_of

STATE_NAME = "state.json"


class Campaign:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_NAME

    def exists(self) -> bool:
        return self.state_path.is_file()

    @property
    def head_path(self) -> Path:
        """The head the state names (``head-<sha256 prefix>.pt``)."""
        return self.folder / self.state()["head"]

    def head(self) -> ColorizationNet:
        """The campaign's head, hash-checked against the sha256 its state records."""
        from ..model.colorizer import load_head

        head, _ = load_head(self.head_path)
        return head.train()

    def state(self) -> dict:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"{self.state_path}: not a campaign state ({error})") from None
        missing = {"head", "step", "epoch", "seconds", "best_score"} - set(state)
        if missing:
            raise InputError(f"{self.state_path}: not a campaign state (no {', '.join(sorted(missing))})")
        return state

    def save(self, head: ColorizationNet, state: dict) -> Path:
        """Write the head (float16, named by its hash), then the state that names it.

        Replacing ``state.json`` is the one step that moves the campaign on: a
        kill before it leaves the last pair as it was. Heads no state names are
        removed afterwards.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / "head.pt.tmp"
        torch.save({"config": head.config,
                    "state_dict": {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
                                   for k, v in head.state_dict().items()},
                    "metadata": {"campaign": {k: state[k] for k in ("step", "samples", "seconds") if k in state}}},
                   temporary)
        digest = sha256_of(temporary)
        head_path = self.folder / f"head-{digest[:8]}.pt"
        os.replace(temporary, head_path)
        _write_text(head_path.with_name(head_path.name + ".sha256"), f"{digest}  {head_path.name}\n")
        _write_text(self.state_path, json.dumps(dict(state, head=head_path.name, head_sha256=digest),
                                                indent=1, default=_plain) + "\n")
        for old in self.folder.glob("head-*.pt"):
            if old != head_path:
                old.unlink(missing_ok=True)
                old.with_name(old.name + ".sha256").unlink(missing_ok=True)
        return head_path


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _plain(value):
    return float(value) if hasattr(value, "__float__") else str(value)
