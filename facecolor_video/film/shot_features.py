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

import bisect
from dataclasses import dataclass, replace
from typing import Any

import torch

# How the global vector of a frame between two anchors is made:
#   hold: the last anchor's value (steps at every anchor: the former behaviour);
#   interpolate: linear between the values of the anchors before and after.
BLENDS = ("interpolate", "hold")
# An anchor's value: the mean of the shot's last ANCHOR_WINDOW anchors' vectors, itself included.
ANCHOR_WINDOW = 4


@dataclass
class _Pending:
    frames: list
    analyzed: Any  # pipeline.AnalyzedBatch: new_shot, anchors, global_vectors of the anchors only
    vectors: list  # per frame: its settled global vector, or None while it waits for later anchors


class ShotGlobalFeatures:
    """Turns anchor vectors into one global vector per frame, batch by batch, in order.

    ``push(frames, analyzed)`` takes a batch whose ``analyzed.global_vectors``
    holds the vectors of its anchor frames only (``analyzed.anchors`` says
    which) and returns the batches now settled, in order, each with
    ``global_vectors`` (N, C) for all its frames. ``flush()`` settles the rest.

    anchor_window: each anchor's value is the mean of the vectors of the
    shot's last ``anchor_window`` anchors (1: its own), which calms features
    that wobble from anchor to anchor. Causal, so a segment decoded from a seek
    needs ``anchor_window`` anchors of lead-in to give the same values.
    """

    def __init__(self, blend: str = "interpolate", anchor_window: int = ANCHOR_WINDOW):
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        self.blend = blend
        self.anchor_window = max(1, int(anchor_window))
        self._pending: list[_Pending] = []
        self._position = 0  # stream position of the next frame pushed
        self._anchors: list[tuple[int, torch.Tensor]] = []  # the current shot's anchors: position, vector
        self._closed = False
        self._open: list[tuple[_Pending, int, int]] = []  # frames of the shot still unsettled: batch, slot, position

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
                self._anchors.append((position, next(anchor_values).float()))
            elif not self._anchors:
                raise ValueError("the first frame of a stream and of each shot must be an anchor")
            self._open.append((entry, slot, position))
            if is_anchor or self.blend != "interpolate":
                self._settle()
        return self._release()

    def flush(self) -> list[tuple[list, Any]]:
        self._close_shot()
        released = self._release()
        assert not self._pending
        self._position = 0
        return released

    def _close_shot(self) -> None:
        # the shot's last anchors are final: there is no later one in this shot
        self._closed = True
        self._settle()
        assert not self._open
        self._anchors, self._closed = [], False

    def _value(self, k: int) -> torch.Tensor:
        """Anchor k's value (the shot's anchors up to k are known)."""
        if self.anchor_window == 1:
            return self._anchors[k][1]
        window = self._anchors[max(0, k - self.anchor_window + 1):k + 1]
        return torch.stack([vector for _, vector in window]).mean(dim=0)

    def _settle(self) -> None:
        positions = [position for position, _ in self._anchors]
        still_open = []
        for entry, slot, position in self._open:
            k = bisect.bisect_right(positions, position) - 1  # the last anchor at or before the frame
            vector = self._value(k)
            if position != positions[k] and self.blend == "interpolate":
                if k + 1 < len(positions):
                    weight = (position - positions[k]) / (positions[k + 1] - positions[k])
                    vector = torch.lerp(vector, self._value(k + 1), weight)
                elif not self._closed:
                    vector = None  # the next anchor is still to come
            if vector is None:
                still_open.append((entry, slot, position))
            else:
                entry.vectors[slot] = vector
        self._open = still_open
        del self._anchors[:-(self.anchor_window + 1)]  # older anchors no longer count

    def _release(self) -> list[tuple[list, Any]]:
        released = []
        while self._pending and all(vector is not None for vector in self._pending[0].vectors):
            entry = self._pending.pop(0)
            vectors = torch.stack(entry.vectors).to(entry.analyzed.global_vectors.dtype)
            released.append((entry.frames, replace(entry.analyzed, global_vectors=vectors)))
        return released
