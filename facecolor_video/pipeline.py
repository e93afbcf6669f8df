"""reader -> colorizer -> smoother -> writer: one path for a film, a clip or a photo.

Memory stays bounded whatever the film's length: frames stream through in
batches, and the smoother holds at most ``radius`` frames back.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .colorizer import Colorizer
from .outputs import check_output_path
from .settings import default
from .temporal import SceneCutDetector, TemporalSmoother
from .video import VideoFrame, VideoReader, VideoWriter


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

    @property
    def frames_per_second(self) -> float:
        return self.frames_written / self.seconds if self.seconds else 0.0


def batched(frames: Iterable[VideoFrame], size: int) -> Iterator[list[VideoFrame]]:
    batch: list[VideoFrame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class FrameColorizer:
    """Colorizes a stream of frames in order, with temporal smoothing between prediction and composition.

    ``process(batch)`` returns the frames that are finished (the smoother may
    hold the last few back); ``finish()`` returns the rest. Every frame that
    goes in comes out once, in order, with its pts, time base and alpha.
    """

    def __init__(self, colorizer: Colorizer, smooth: str = default("smooth"), radius: int = default("smooth_radius")):
        self.colorizer = colorizer
        self.colorizer.reset()
        # one detector decides the shots, for the smoother and for global-feature reuse alike
        self.detector = SceneCutDetector()
        self.smoother = TemporalSmoother(mode=smooth, radius=radius, detector=None)
        self.waiting: deque[tuple[VideoFrame, torch.Tensor, float]] = deque()  # frame, full-size L, depth
        self.scene_cuts = 0

    def process(self, frames: list[VideoFrame]) -> list[VideoFrame]:
        prepared = self.colorizer.prepare([frame.rgb for frame in frames])
        new_shot = [self.detector.update(small) for small in prepared.small_lightness]
        self.scene_cuts += sum(new_shot)
        ab = self.colorizer.predict(prepared.small_lightness, new_shot)
        ready = []
        for index, frame in enumerate(frames):
            self.waiting.append((frame, prepared.lightness[index], prepared.max_value))
            ready += self.smoother.push(prepared.small_lightness[index], ab[index], key=frame.index, cut=new_shot[index])
        return self._compose(ready)

    def finish(self) -> list[VideoFrame]:
        return self._compose(self.smoother.flush())

    def _compose(self, ready: list[tuple[int, torch.Tensor]]) -> list[VideoFrame]:
        if not ready:
            return []
        sources = [self.waiting.popleft() for _ in ready]
        for (key, _), (frame, _, _) in zip(ready, sources):
            assert key == frame.index, "the smoother returns frames in order"
        max_value = sources[0][2]
        rgb = self.colorizer.compose(
            torch.stack([lightness for _, lightness, _ in sources]),
            torch.stack([ab for _, ab in ready]),
            max_value,
        )
        return [
            VideoFrame(rgb=rgb[i], pts=frame.pts, time_base=frame.time_base, alpha=frame.alpha, index=frame.index)
            for i, (frame, _, _) in enumerate(sources)
        ]


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
    check_output_path(source, destination, overwrite=options.overwrite)
    report = ColorizeReport(source, destination)
    started = time.perf_counter()
    with VideoReader(source) as reader:
        colorizer = colorizer or Colorizer()
        if on_start is not None:
            on_start(reader)
        stream = FrameColorizer(colorizer, options.smooth if not reader.is_image else "none", options.smooth_radius)
        with VideoWriter(
            destination, reader, codec=options.codec, crf=options.crf, preset=options.preset,
            copy_audio=options.audio, copy_subtitles=options.audio,
        ) as writer:
            for batch in batched(reader.frames(), options.batch_size):
                report.frames_read += len(batch)
                _write_all(writer, stream.process(batch), progress)
            _write_all(writer, stream.finish(), progress)
            report.frames_written = writer.frames_written
            report.notices += writer.notices
        report.decode_errors = reader.decode_errors
        report.scene_cuts = stream.scene_cuts
    if report.decode_errors:
        report.notices.append(
            f"{source}: {report.decode_errors} damaged packet(s) could not be decoded; their frames are missing"
        )
    report.seconds = time.perf_counter() - started
    return report


def _write_all(writer: VideoWriter, frames: list[VideoFrame], progress: Callable[[int], None] | None) -> None:
    for frame in frames:
        writer.write(frame)
    if progress is not None and frames:
        progress(len(frames))


def colorize_video(source: str | Path, destination: str | Path, **settings) -> ColorizeReport:
    """The library's one-call entry: ``colorize_video("old.mp4", "new.mp4", smooth="ema", device="cpu")``.

    Keyword arguments are the fields of ``ColorizeOptions`` and the arguments of
    ``Colorizer`` (model, device, precision, render_size, global_every, chroma_gain).
    """
    option_names = set(ColorizeOptions.__dataclass_fields__)
    options = ColorizeOptions(**{k: v for k, v in settings.items() if k in option_names})
    colorizer_settings = {k: v for k, v in settings.items() if k not in option_names}
    return colorize_file(source, destination, Colorizer(**colorizer_settings), options)
