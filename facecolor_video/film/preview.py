"""Contact sheets: every Nth frame of a film, before | after, labelled with its time.

Only the frames the sheet needs are decoded when the film allows it (see
``media.sampling.FrameSampler``).

Picked frames are colorized as stills: no temporal smoothing, and fresh global
features for every frame (they are far apart, usually in different shots).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import OutputError
from ..media.outputs import check_output_path, output_kind, temporary_path_for
from ..media.sampling import FrameSampler, PickedFrame, format_timestamp
from ..media.video import VideoFrame, VideoReader, VideoWriter
from .reference import load_references
from .stills import colorize_stills

LABEL_FONT_SIZE = 12
PADDING = 16
PAIR_GAP = 2
BACKGROUND = (24, 24, 24)
TEXT_COLOR = (235, 235, 235)


@dataclass
class PreviewReport:
    source: Path
    sheet_path: Path
    every: int
    frames_shown: int = 0
    frames_decoded: int = 0
    seeks: int = 0
    decode_errors: int = 0
    frame_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)


def frame_label(seconds, number: int) -> str:
    """The caption under a pair: ``00:00:09.600  #240``."""
    return f"{format_timestamp(seconds)}  #{number}"


def frame_file_name(seconds, number: int) -> str:
    """``frame_000240_00-00-09.600.png``: sorts by frame number, no ':' (Windows refuses it)."""
    return f"frame_{number:06d}_{format_timestamp(seconds).replace(':', '-')}.png"


def _display_rgb(frame: VideoFrame, rotation: int) -> np.ndarray:
    """8-bit RGB turned upright (rotation: counter-clockwise degrees of the display matrix)."""
    rgb = frame.rgb
    if rgb.dtype == np.uint16:
        rgb = (rgb >> 8).astype(np.uint8)
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _upright(frame: VideoFrame, rotation: int) -> VideoFrame:
    turns = round(rotation / 90) % 4
    if not turns:
        return frame
    alpha = None if frame.alpha is None else np.ascontiguousarray(np.rot90(frame.alpha, turns))
    return VideoFrame(np.ascontiguousarray(np.rot90(frame.rgb, turns)), frame.pts, frame.time_base, alpha, frame.index)


class ContactSheet:
    """A grid of before | after pairs with a caption under each, drawn with Pillow."""

    def __init__(self, columns: int, thumb_width: int, title: str = ""):
        self.columns = columns
        self.thumb_width = thumb_width
        self.title = title
        self.pairs: list[tuple[Image.Image, Image.Image, str]] = []
        self.font = _font(LABEL_FONT_SIZE)

    def add(self, before: np.ndarray, after: np.ndarray, label: str) -> None:
        height = max(1, round(self.thumb_width * before.shape[0] / before.shape[1]))
        size = (self.thumb_width, height)
        self.pairs.append((
            Image.fromarray(before).resize(size, Image.Resampling.LANCZOS),
            Image.fromarray(after).resize(size, Image.Resampling.LANCZOS),
            label,
        ))

    def render(self) -> Image.Image:
        if not self.pairs:
            raise OutputError("no frames to put on the contact sheet")
        line = _line_height(self.font)
        columns = min(self.columns, len(self.pairs))
        rows = math.ceil(len(self.pairs) / columns)
        thumb_height = max(before.height for before, _, _ in self.pairs)
        cell_width = 2 * self.thumb_width + PAIR_GAP
        cell_height = thumb_height + line + 4
        header = line + PADDING if self.title else 0
        width = PADDING + columns * (cell_width + PADDING)
        height = PADDING + header + rows * (cell_height + PADDING)
        sheet = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(sheet)
        if self.title:
            draw.text((PADDING, PADDING), self.title, fill=TEXT_COLOR, font=self.font)
        for index, (before, after, label) in enumerate(self.pairs):
            row, column = divmod(index, columns)
            left = PADDING + column * (cell_width + PADDING)
            top = PADDING + header + row * (cell_height + PADDING)
            sheet.paste(before, (left, top))
            sheet.paste(after, (left + self.thumb_width + PAIR_GAP, top))
            draw.text((left, top + thumb_height + 2), label, fill=TEXT_COLOR, font=self.font)
        return sheet


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _line_height(font) -> int:
    left, top, right, bottom = font.getbbox("0:#Ag")
    return bottom + 2


def _save_atomically(image: Image.Image, destination: Path) -> None:
    temporary = temporary_path_for(destination)
    image_format = Image.registered_extensions().get(destination.suffix.lower())
    if image_format is None:
        raise OutputError(f"{destination}: Pillow cannot write {destination.suffix} images; use .png")
    try:
        image.save(temporary, format=image_format)
        os.replace(temporary, destination)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{destination}: writing the contact sheet failed ({error})") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _check_frames_dir(frames_dir: Path) -> None:
    if not frames_dir.is_dir():
        raise OutputError(f"{frames_dir}: frames folder does not exist")
    if not os.access(frames_dir, os.W_OK | os.X_OK):
        raise OutputError(f"{frames_dir}: frames folder is not writable")


def _colorize_still(colorizer, frame: VideoFrame, reference=None) -> np.ndarray:
    # as a photo (fresh global features, faces found anew): preview frames are far apart
    return colorize_stills(colorizer, [frame.rgb], reference=reference)[0]


def make_preview(
    source: str | Path,
    sheet_path: str | Path,
    colorizer=None,
    every: int = 240,
    frames_dir: str | Path | None = None,
    columns: int = 4,
    thumb_width: int = 320,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[VideoReader, int], None] | None = None,
    seek: bool | None = None,
    reference: str | Path | None = None,
    references: str | Path | None = None,
    reference_all_shots: bool = False,
) -> PreviewReport:
    """Write a contact sheet of every ``every``-th frame of ``source``, before | after, to ``sheet_path``.

    colorizer: a ``Colorizer``, or a function that makes one (called only once
    the paths are checked and the input opened), or None for the default model.
    frames_dir: an existing folder that also gets each colorized frame as PNG
    (full size, the source's depth and alpha; ``frame_file_name`` names them).
    progress: called with 1 for each frame put on the sheet.
    on_start: called with the opened reader and the expected number of pairs.
    seek: None lets the sampler decide per gap; False decodes every frame (see FrameSampler).
    reference, references, reference_all_shots: colour from references, as ``ColorizeOptions`` takes them.
    The sheet is written atomically (temporary file beside it, then renamed);
    an image input gives a one-pair sheet.
    """
    if every < 1:
        raise ValueError("every must be at least 1")
    if columns < 1 or thumb_width < 8:
        raise ValueError("columns must be at least 1 and thumb_width at least 8")
    source, sheet_path = Path(source), Path(sheet_path)
    check_output_path(source, sheet_path, overwrite=overwrite)
    if output_kind(sheet_path) != "image":
        raise OutputError(f"{sheet_path}: a contact sheet is an image; use .png or .jpg")
    if frames_dir is not None:
        frames_dir = Path(frames_dir)
        _check_frames_dir(frames_dir)
    report = PreviewReport(source, sheet_path, every)
    started = time.perf_counter()
    with VideoReader(source) as reader:
        if colorizer is None or not hasattr(colorizer, "predict"):
            from ..model.colorizer import Colorizer

            colorizer = (colorizer or Colorizer)()
        colorizer.reset()
        start_time = float(reader.start_time * reader.time_base) if reader.start_time else 0.0
        matcher = load_references(colorizer, reference, references, reference_all_shots, start_time)
        expected = 1 if reader.is_image else math.ceil(reader.frame_count / every) if reader.frame_count else 0
        if on_start is not None:
            on_start(reader, expected)
        rotation = reader.rotation
        title = f"{source.name}  every {every} frames  (left: source, right: colorized)"
        sheet = ContactSheet(columns, thumb_width, title)
        with FrameSampler(reader, every, seek=seek) as sampler:
            for picked in sampler:
                colorized = _colorize_still(colorizer, picked.frame, matcher)
                after = VideoFrame(colorized, picked.frame.pts, picked.frame.time_base, picked.frame.alpha, picked.number)
                sheet.add(_display_rgb(picked.frame, rotation), _display_rgb(after, rotation),
                          frame_label(picked.time, picked.number))
                if frames_dir is not None:
                    report.frame_files.append(_write_frame(source, frames_dir, after, picked, rotation, overwrite))
                report.frames_shown += 1
                if progress is not None:
                    progress(1)
                if reader.is_image:
                    break
            report.frames_decoded = sampler.frames_decoded
            report.seeks = sampler.seeks
            report.decode_errors = sampler.decode_errors
        _save_atomically(sheet.render(), sheet_path)
    if report.decode_errors:
        report.notices.append(f"{source}: {report.decode_errors} damaged packet(s) could not be decoded")
    report.seconds = time.perf_counter() - started
    return report


def _write_frame(source: Path, frames_dir: Path, frame: VideoFrame, picked: PickedFrame, rotation: int,
                 overwrite: bool) -> Path:
    path = check_output_path(source, frames_dir / frame_file_name(picked.time, picked.number), overwrite=overwrite)
    with VideoWriter(path) as writer:
        writer.write(_upright(frame, rotation))
    return path
