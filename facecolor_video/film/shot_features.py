"""Global features as a slowly changing property of the shot.

VGG16 global features are computed on anchor frames only: each scene cut,
every ``global_every``-th frame of the film (a schedule fixed by position, so a
segment decoded from a seek has the same anchors as a run from the start) and
the first frame of a stream. Between two anchors of the same shot the vector
is interpolated linearly, so the colour drifts with the content instead of
stepping at each anchor; after the last anchor of a shot (a cut follows, or
the stream ends) the vector is held. No vector crosses a cut.

Interpolation needs the next anchor, so batches are held back until it has
been seen: at most ``global_every`` frames plus one batch.

Measured against holding each anchor's vector until the next one (the former
behaviour) and against a running shot mean of the anchors (see the README's
smoothing numbers): interpolation removed the steps and kept PSNR.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

# How the global vector of a frame between two anchors is made:
#   hold: the last anchor's vector (steps at every anchor);
#   interpolate: linear between the anchors before and after;
#   mean: the mean of the shot's anchors so far, held between them.
BLENDS = ("interpolate", "hold", "mean")


@dataclass
class _Pending:
    frames: list
    analyzed: Any  # pipeline.AnalyzedBatch: new_shot, anchors, global_vectors of the anchors only
    vectors: list  # per frame: its settled global vector, or None while the next anchor is unknown


class ShotGlobalFeatures:
    """Turns anchor vectors into one global vector per frame, batch by batch, in order.

    ``push(frames, analyzed)`` takes a batch whose ``analyzed.global_vectors``
    holds the vectors of its anchor frames only (``analyzed.anchors`` says
    which) and returns the batches now settled, in order, each with
    ``global_vectors`` (N, C) for all its frames. ``flush()`` settles the rest.
    """

    def __init__(self, blend: str = "interpolate"):
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        self.blend = blend
        self._pending: list[_Pending] = []
        self._position = 0  # stream position of the next frame pushed
        self._anchor: tuple[int, torch.Tensor] | None = None  # last anchor of the shot: position, value
        self._shot_sum: torch.Tensor | None = None
        self._shot_anchors = 0
        self._open: list[tuple[_Pending, int, int]] = []  # frames waiting for the next anchor: batch, slot, position

    def push(self, frames: list, analyzed) -> list[tuple[list, Any]]:
        entry = _Pending(frames, analyzed, [None] * len(frames))
        self._pending.append(entry)
        anchor_values = iter(analyzed.global_vectors)
        for slot, (cut, is_anchor) in enumerate(zip(analyzed.new_shot, analyzed.anchors)):
            position = self._position
            self._position += 1
            if cut:
                self._close_shot()
            if is_anchor:
                self._add_anchor(position, next(anchor_values).float())
                entry.vectors[slot] = self._anchor[1]
            elif self._anchor is None:
                raise ValueError("the first frame of a stream and of each shot must be an anchor")
            elif self.blend == "interpolate":
                self._open.append((entry, slot, position))
            else:
                entry.vectors[slot] = self._anchor[1]
        return self._release()

    def flush(self) -> list[tuple[list, Any]]:
        self._close_shot()
        released = self._release()
        assert not self._pending
        self._position = 0
        return released

    def _add_anchor(self, position: int, value: torch.Tensor) -> None:
        if self.blend == "mean":
            self._shot_sum = value if self._shot_sum is None else self._shot_sum + value
            self._shot_anchors += 1
            value = self._shot_sum / self._shot_anchors
        if self._anchor is not None and self._open:
            start_position, start_value = self._anchor
            for entry, slot, frame_position in self._open:
                weight = (frame_position - start_position) / (position - start_position)
                entry.vectors[slot] = torch.lerp(start_value, value, weight)
        self._open = []
        self._anchor = (position, value)

    def _close_shot(self) -> None:
        # frames after the shot's last anchor keep its vector: there is no later one in this shot
        if self._anchor is not None:
            for entry, slot, _ in self._open:
                entry.vectors[slot] = self._anchor[1]
        self._open = []
        self._anchor = None
        self._shot_sum, self._shot_anchors = None, 0

    def _release(self) -> list[tuple[list, Any]]:
        released = []
        while self._pending and all(vector is not None for vector in self._pending[0].vectors):
            entry = self._pending.pop(0)
            vectors = torch.stack(entry.vectors).to(entry.analyzed.global_vectors.dtype)
            released.append((entry.frames, replace(entry.analyzed, global_vectors=vectors)))
        return released
