"""Photos and other unrelated frames, colorized whole: the network, then faces, a reference and hints.

The model layer's ``Colorizer.colorize`` runs the network alone; the stages
that make a still look right (each face from a close-up crop of its own, a
reference photo's colours, a user's colour hints) live in this layer, so this
is where they are put together. ``Colorizer`` here is the library's public
one (``facecolor_video.Colorizer``): the model's, with ``colorize`` doing the
whole stills path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model import colorizer as model_colorizer
from .face_crops import refine_stills
from .hints import apply_still_hints
from .reference import ReferenceColorizer


def colorize_stills(colorizer: model_colorizer.Colorizer, frames: list[np.ndarray] | np.ndarray,
                    reference=None, hints: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Colorize a batch of frames (H x W x 3, uint8 or uint16, same size) with no temporal smoothing.

    Each frame gets its own global features (frames handed in together may be
    unrelated photos), then the face stage where the colorizer finds faces.
    reference: an RGB image (H x W x 3) whose colours the frames take where
    they match it, or a ``ReferenceColorizer``.
    hints: per frame, an RGBA hint image (its opaque pixels' colours, any
    size of the frame's shape; see ``hints``) or None.
    """
    prepared = colorizer.prepare(frames)
    vectors = colorizer.global_vectors(prepared.small_lightness, [True] * prepared.small_lightness.shape[0])
    ab = colorizer.predict(prepared.small_lightness, global_vectors=vectors)
    if colorizer.face_detector is not None:
        ab, _ = refine_stills(colorizer, colorizer.face_detector, prepared.lightness, ab)
    if reference is not None:
        if not isinstance(reference, ReferenceColorizer):
            reference = ReferenceColorizer.from_images(colorizer, [(0.0, np.asarray(reference))])
        ab = reference.apply([None] * len(ab), prepared.small_lightness, ab, vectors)
    if hints is not None:
        ab = apply_still_hints(prepared.small_lightness, ab, hints)
    return colorizer.compose(prepared.lightness, ab, prepared.max_value)


class Colorizer(model_colorizer.Colorizer):
    """The model's colorizer (same settings, see ``model.colorizer.Colorizer``) whose ``colorize`` is the whole
    stills path: faces, a reference and hints as well as the network (``colorize_stills``)."""

    def colorize(self, frames: list[np.ndarray] | np.ndarray, reference=None,
                 hints: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return colorize_stills(self, frames, reference, hints)
