"""The check before a run: the output path, the source opened, its audio and subtitles planned for the output.

One function for the single-film, batch and segmented paths, so that a bad
input or an output that cannot be written stops each of them the same way,
before the (slow) model load and the hours of work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .outputs import VIDEO_CONTAINERS, check_output_path, output_kind, space_warning
from .reader import STDIO, StreamInfo, VideoReader
from .remux import plan_for
from .streams import StreamPlan


@dataclass
class Preflight:
    """What the check found: the source's facts (None where the source was not opened) and the output's plan."""

    source: Path
    destination: Path
    # False until the source is opened (stdin or stdout in a run that leaves them to the run itself)
    opened: bool = False
    is_image: bool = False
    rotation: int | None = None  # asked for with rotation=True (it decodes the first frame)
    width: int | None = None
    height: int | None = None
    frame_rate: Fraction | None = None
    frame_count: int | None = None  # exact when the container counts them, else estimated
    duration: Fraction | None = None  # seconds, when the file says
    audio_streams: list[StreamInfo] = field(default_factory=list)
    subtitle_streams: list[StreamInfo] = field(default_factory=list)
    # how the source's audio and subtitles go into a video output (None: not planned, or not a video output)
    streams: StreamPlan | None = None
    # a line when the output's folder clearly lacks room (None: enough, unknown, or not asked)
    space_warning: str | None = None
    # the opened source, left open for the caller with keep_open (who closes it); else None
    reader: VideoReader | None = None


def preflight(
    source: str | Path,
    destination: str | Path,
    overwrite: bool = False,
    audio: bool = True,
    plan_streams: bool = True,
    crf: int | None = None,
    copies: int = 1,
    keep_open: bool = False,
    rotation: bool = False,
    before_open: Callable[[Path, Path], None] | None = None,
) -> Preflight:
    """Check ``destination`` (``check_output_path``), open ``source`` and plan the output; raise what fails.

    audio: the source's audio and subtitles go into the output (``plan_for``);
    with plan_streams, a video output from a film gets that plan now, so audio
    that fits the output in no way stops here. crf: also estimate whether the
    output fits on its disk (``copies`` times at the peak); the line is
    returned, not logged. keep_open: leave the reader open in the result (the
    caller closes it); without it, stdin and stdout are not touched (stdin is
    read once, by the run itself; stdout is checked when the writer starts).
    before_open: called with the paths after the output check, before the
    source is opened (a caller's own refusals). rotation: also read the
    source's display rotation (decoding its first frame from a second handle).
    """
    source, destination = Path(source), Path(destination)
    check_output_path(source, destination, overwrite=overwrite)
    checked = Preflight(source, destination)
    if before_open is not None:
        before_open(source, destination)
    if not keep_open and STDIO in (str(source), str(destination)):
        return checked
    reader = VideoReader(source)
    try:
        checked.opened = True
        checked.is_image = reader.is_image
        if rotation:
            checked.rotation = reader.rotation
        checked.width, checked.height, checked.frame_rate = reader.width, reader.height, reader.frame_rate
        checked.frame_count, checked.duration = reader.frame_count, reader.duration
        checked.audio_streams, checked.subtitle_streams = reader.audio_streams, reader.subtitle_streams
        if plan_streams and not reader.is_image and output_kind(destination) == "video":
            checked.streams = plan_for(reader, VIDEO_CONTAINERS[destination.suffix.lower()], destination, audio,
                                       audio)
        if crf is not None:
            checked.space_warning = space_warning(reader, destination, crf, copies=copies)
    except BaseException:
        reader.close()
        raise
    if keep_open:
        checked.reader = reader
    else:
        reader.close()
    return checked


__all__ = ["Preflight", "preflight"]
