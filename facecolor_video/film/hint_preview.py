"""``preview --hints``: each hinted frame with its strokes drawn over it, beside the frame colorized with them.

A check before a long run: that the strokes sit where they were meant to, and
what they do to the colours.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..media.outputs import check_output_path, output_kind
from ..media.video import VideoReader
from .hints import load_hints
from .preview import ContactSheet
from .stills import colorize_stills


def strokes_over(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """A frame (H, W, 3) with a hint's opaque strokes (scaled to the frame) painted over it, outlined in black."""
    from PIL import Image

    height, width = rgb.shape[:2]
    hint = np.asarray(Image.fromarray(rgba).resize((width, height), Image.NEAREST)) if rgba.shape[:2] != (height, width) \
        else rgba
    drawn = (rgb >> 8).astype(np.uint8) if rgb.dtype == np.uint16 else rgb.copy()
    opaque = hint[..., 3] >= 128
    outline = np.zeros_like(opaque)
    outline[1:] |= opaque[:-1]
    outline[:-1] |= opaque[1:]
    outline[:, 1:] |= opaque[:, :-1]
    outline[:, :-1] |= opaque[:, 1:]
    drawn[outline & ~opaque] = 0
    drawn[opaque] = hint[..., :3][opaque]
    return drawn


def hinted_frames(source: str | Path, hints: list) -> list:
    """The frame each hint belongs to (the last one starting at or before its timecode), decoded in one pass."""
    pictures = [None] * len(hints)
    with VideoReader(source) as reader:
        start = float(reader.start_time * reader.time_base) if reader.start_time else 0.0
        last = None
        pending = sorted(range(len(hints)), key=lambda number: hints[number].seconds)
        for frame in reader.frames():
            seconds = None if frame.time is None else float(frame.time) - start
            while pending and last is not None and seconds is not None and seconds > hints[pending[0]].seconds + 1e-6:
                pictures[pending.pop(0)] = last
            if not pending:
                break
            last = frame
        for number in pending:
            pictures[number] = last
    return pictures


def make_hint_preview(source: str | Path, sheet_path: str | Path, colorizer=None, hint=None, hints=None,
                      columns: int = 2, thumb_width: int = 320, overwrite: bool = False) -> int:
    """Write the sheet of hinted frames (strokes drawn | colorized with them); returns how many frames it shows.

    colorizer: a ``Colorizer``, or a function that makes one (called once the inputs are checked).
    """
    source, sheet_path = Path(source), Path(sheet_path)
    check_output_path(source, sheet_path, overwrite=overwrite)
    if output_kind(sheet_path) != "image":
        raise OutputError(f"{sheet_path}: a contact sheet is an image; use .png or .jpg")
    checked = load_hints(source, hint, hints)
    if colorizer is None or not hasattr(colorizer, "predict"):
        from ..model.colorizer import Colorizer

        colorizer = (colorizer or Colorizer)()
    sheet = ContactSheet(columns, thumb_width, f"{source.name}  hints (left: strokes over the frame, right: colorized)")
    for item, frame in zip(checked, hinted_frames(source, checked)):
        colorizer.reset()
        colour = colorize_stills(colorizer, [frame.rgb], hints=[item.rgba])[0]
        if colour.dtype == np.uint16:
            colour = (colour >> 8).astype(np.uint8)
        sheet.add(strokes_over(frame.rgb, item.rgba), colour, f"{item.seconds:g} s  {Path(item.name).name}")
    temporary = sheet_path.with_name(f".{sheet_path.name}.partial{sheet_path.suffix}")
    try:
        sheet.render().save(temporary)
        os.replace(temporary, sheet_path)
    finally:
        temporary.unlink(missing_ok=True)
    return len(checked)
