"""reader -> colorizer -> smoother -> writer: one path for a film, a clip or a photo.

The file-level run: its options and report, the reader, writer and lost-frame
filler around the per-batch stage chain of ``frame_stream`` (``FrameColorizer``
and ``run_stream``, whose names this module still offers).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path

from ..errors import InputError
from ..media.fields import plan_fields
from ..media.outputs import output_kind
from ..media.preflight import preflight
from ..media.video import STDIO, VideoFrame, VideoReader, VideoWriter
from ..model.colorizer import Colorizer
from ..settings import default
from .frame_stream import (
    QUEUE_BYTES,
    AnalyzedBatch,
    FrameColorizer,
    auto_threads,
    batched,
    run_stream,
    torch_threads,
)
from .hints import HintColorizer, film_hints
from .reference import ReferenceColorizer, load_references

# warnings a user must see before a long run ends (the command line prints them as they come)
log = logging.getLogger("facecolor_video")


@dataclass
class ColorizeOptions:
    """Everything that shapes one colorize run; defaults come from ``settings.SETTINGS``."""

    batch_size: int = default("batch_size")
    smooth: str = default("smooth")
    smooth_radius: int = default("smooth_radius")
    codec: str = default("codec")
    crf: int = default("crf")
    preset: str = default("preset")
    audio: bool = True
    overwrite: bool = False
    # decode (and L) in a reader thread, compose and encode in a writer thread, the network in between
    overlap: bool = True
    # torch intra-op threads while colorizing; 0: auto_threads (one less than the cores on a CPU)
    threads: int = default("threads")
    # stop after this many frames (bench); audio is not cut to match, so use it with audio=False
    max_frames: int | None = None
    # None: an interlaced source stays interlaced; 'frame' or 'field': bwdif at that rate (media/fields.py)
    deinterlace: str | None = None
    # the muxer when the destination is "-" (stdout): nut, mkv, ts, mp4, mov
    stream_format: str | None = None
    # compose full-size Lab -> RGB and let the encoder convert it, instead of computing only the chroma planes
    exact_lab: bool = False
    # the encoder's pixel format (None: 4:2:0, 4:4:4 at odd sizes, 10-bit for deep sources)
    pix_fmt: str | None = None
    # colour from a reference image, or from a file of 'timecode image' lines (see film/reference.py)
    reference: str | None = None
    references: str | None = None
    # apply the reference to every shot, not only to those whose global features resemble it
    reference_all_shots: bool = False
    # colour hints: an RGBA image for the first frame, or a file of 'timecode image' lines (see film/hints.py)
    hint: str | None = None
    hints: str | None = None
    # a folder for the frames where faces were detected, with their boxes drawn
    faces_debug: Path | None = None


@dataclass
class ColorizeReport:
    source: Path
    destination: Path
    frames_read: int = 0
    frames_written: int = 0
    decode_errors: int = 0
    scene_cuts: int = 0
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    # "planes" (luma kept, chroma computed) or "lab" (full-size Lab -> RGB)
    composition: str = "lab"
    # seconds each thread of the pipeline spent working, and the wall time they ran in ("wall")
    thread_busy: dict[str, float] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames_written / self.seconds if self.seconds else 0.0


def colorize_file(
    source: str | Path,
    destination: str | Path,
    colorizer: Colorizer | None = None,
    options: ColorizeOptions | None = None,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[VideoReader], None] | None = None,
) -> ColorizeReport:
    """Colorize a video or an image file into ``destination`` (written atomically).

    progress: called with the number of frames just written.
    on_start: called with the opened reader (the CLI sizes its progress bar from it).
    """
    options = options or ColorizeOptions()
    source, destination = Path(source), Path(destination)
    report = ColorizeReport(source, destination)
    started = time.perf_counter()
    # the writer plans the audio and subtitles itself, from the same reader
    checked = preflight(source, destination, overwrite=options.overwrite, plan_streams=False, crf=options.crf,
                        keep_open=True)
    with checked.reader as reader:
        colorizer = colorizer or Colorizer()
        if on_start is not None:
            on_start(reader)
        if checked.space_warning:  # before the hours of work, not after them
            log.warning(checked.space_warning)
        stream = FrameColorizer(colorizer, options.smooth if not reader.is_image else "none", options.smooth_radius,
                                reference=film_references(colorizer, options, reader), faces_debug=options.faces_debug,
                                hints=film_hints_for(colorizer, options, reader))
        fields = plan_fields(reader, options.deinterlace, options.codec)
        fields.attach(reader)
        with VideoWriter(
            destination, reader, codec=options.codec, crf=options.crf, preset=options.preset,
            copy_audio=options.audio, copy_subtitles=options.audio, stream_format=options.stream_format,
            pix_fmt=options.pix_fmt, **fields.writer_settings,
        ) as writer:
            # fields are split and woven back as RGB rows: an interlaced output keeps the Lab path
            as_planes = keeps_luma_planes(reader, destination, options) and not fields.per_field
            report.composition = "planes" if as_planes else "lab"
            stream.output_planes = writer.planes_format
            watch = _DecodeWatch(reader, as_planes)
            frames = watch.frames()
            if options.max_frames is not None:
                frames = islice(frames, options.max_frames)
            filler = LostFrameFiller(writer, reader.decode_error_pts, progress)
            with torch_threads(options.threads or auto_threads(colorizer.device, options.overlap)):
                run_stream(stream, fields.frames(frames), options.batch_size, fields.writer(filler.write),
                           options.overlap, busy=report.thread_busy)
                report.frames_read = watch.count
            if options.max_frames is None:
                filler.finish()
            report.frames_written = writer.frames_written
            report.notices += writer.notices + ([f"{source}: {fields.notice}"] if fields.notice else [])
        report.decode_errors = reader.decode_errors
        report.scene_cuts = stream.scene_cuts
        if report.decode_errors:
            report.notices.append(
                f"{source}: {report.decode_errors} damaged packet(s) could not be decoded; {filler.filled} lost "
                f"frame(s) filled by repeating the previous frame, so the length and audio sync are kept"
            )
        if options.max_frames is None:
            report.notices += watch.truncation_notice()  # reads the stream: before the reader closes
    report.seconds = time.perf_counter() - started
    return report


def keeps_luma_planes(reader: VideoReader, destination: Path, options: ColorizeOptions) -> bool:
    """Whether a run composes chroma planes beside the source's luma rather than full-size RGB.

    Planes for a film written as a video; Lab -> RGB for stills, for outputs
    with alpha and with ``exact_lab``.
    """
    return (not options.exact_lab and not reader.is_image and not reader.has_alpha and options.faces_debug is None
            and (str(destination) == STDIO or output_kind(Path(destination)) == "video"))


def film_references(colorizer: Colorizer, options: ColorizeOptions, reader: VideoReader) -> ReferenceColorizer | None:
    """The options' reference(s) for this film, timed from its start; None when it has none."""
    return load_references(colorizer, options.reference, options.references, options.reference_all_shots,
                           start_time=float(reader.start_time * reader.time_base) if reader.start_time else 0.0)


def film_hints_for(colorizer: Colorizer, options: ColorizeOptions, reader: VideoReader) -> HintColorizer | None:
    """The options' hints for this film (its hinted frames and their shots found by a scan); None without hints."""
    if options.hint is None and options.hints is None:
        return None
    if reader.is_pipe:
        raise InputError("hints need the film as a file (its hinted frames are found before it is colorized), not stdin")
    return film_hints(colorizer, reader.path, options.hint, options.hints,
                      start_time=float(reader.start_time * reader.time_base) if reader.start_time else 0.0)


class LostFrameFiller:
    """Writes colorized frames in order, and a repeat of the previous one at the pts of each frame lost to a decode error.

    lost_pts: the reader's ``decode_error_pts``, growing (in pts order) as it
    decodes, from another thread: when the writer gets a frame, the lost frames
    before it are already known. A lost frame before the first decoded one
    repeats the first one; ``finish`` places those after the last one. A lost
    frame whose pts is unknown (None) cannot be placed and is not filled.
    """

    def __init__(self, writer: VideoWriter, lost_pts: list, progress: Callable[[int], None] | None = None):
        self.writer = writer
        self.lost_pts = lost_pts
        self.progress = progress
        self.filled = 0
        self._next = 0  # index in lost_pts of the first lost frame not placed yet
        self._previous: VideoFrame | None = None

    def write(self, frames: list[VideoFrame]) -> None:
        count = 0
        for frame in frames:
            if frame.pts is not None:
                count += self._fill(frame, before=frame.pts)
            self.writer.write(frame)
            self._previous = frame
            count += 1
        if self.progress is not None and count:
            self.progress(count)

    def finish(self) -> None:
        """Fill the frames lost after the last decoded one (call once the reader is exhausted)."""
        if self._previous is not None:
            count = self._fill(self._previous, before=None)
            if self.progress is not None and count:
                self.progress(count)

    def _fill(self, frame: VideoFrame, before: int | None) -> int:
        count = 0
        while self._next < len(self.lost_pts):
            pts = self.lost_pts[self._next]
            if pts is not None and before is not None and pts >= before:
                break
            self._next += 1
            if pts is None:
                continue
            source = self._previous if self._previous is not None else frame
            self.writer.write(dataclasses.replace(source, pts=pts, time_base=frame.time_base))
            self.filled += 1
            count += 1
        return count


class _DecodeWatch:
    """Passes the reader's frames on and remembers where decoding stopped, to tell a truncated file."""

    def __init__(self, reader: VideoReader, as_planes: bool = False):
        self.reader = reader
        self.as_planes = as_planes
        self.count = 0
        self.end: Fraction | None = None  # end time (seconds) of the last frame decoded

    def frames(self) -> Iterator[VideoFrame]:
        period = 1 / self.reader.frame_rate
        for frame in self.reader.frames(as_planes=self.as_planes):
            self.count += 1
            if frame.time is not None:
                self.end = frame.time + period
            yield frame

    def truncation_notice(self) -> list[str]:
        reader = self.reader
        length = None if reader.is_image else reader.stream_duration
        if not length or self.end is None:
            return []
        expected_end = reader.start_time * reader.time_base + length
        if expected_end - self.end <= max(2 / reader.frame_rate, length / 50):
            return []
        return [f"{reader.path}: decoding stopped at {float(self.end):.2f} s of {float(expected_end):.2f} s: "
                f"the file looks truncated; the {self.count} frame(s) that decoded were colorized"]


def colorize_video(source: str | Path, destination: str | Path, **settings) -> ColorizeReport:
    """The library's one-call entry: ``colorize_video("old.mp4", "new.mp4", smooth="ema", device="cpu")``.

    Keyword arguments are the fields of ``ColorizeOptions`` and the arguments of
    ``Colorizer`` (model, device, precision, render_size, global_every, chroma_gain).
    """
    option_names = set(ColorizeOptions.__dataclass_fields__)
    options = ColorizeOptions(**{k: v for k, v in settings.items() if k in option_names})
    colorizer_settings = {k: v for k, v in settings.items() if k not in option_names}
    return colorize_file(source, destination, Colorizer(**colorizer_settings), options)


__all__ = [
    "QUEUE_BYTES",
    "AnalyzedBatch",
    "ColorizeOptions",
    "ColorizeReport",
    "FrameColorizer",
    "LostFrameFiller",
    "auto_threads",
    "batched",
    "colorize_file",
    "colorize_video",
    "film_hints_for",
    "film_references",
    "keeps_luma_planes",
    "run_stream",
    "torch_threads",
]
