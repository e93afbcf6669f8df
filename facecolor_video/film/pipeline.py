"""reader -> colorizer -> smoother -> writer: one path for a film, a clip or a photo.

Memory stays bounded whatever the film's length: frames stream through in
batches, the global features hold at most ``global_every`` frames plus a batch
back (until the shot's next anchor), and the smoother ``radius`` frames.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F

from ..devices import usable_cores
from ..errors import InputError
from ..media.fields import plan_fields
from ..media.outputs import output_kind
from ..media.planes import PlaneFormat, YuvPlanes, convert_luma
from ..media.prefetch import BackgroundWriter, Prefetcher
from ..media.preflight import preflight
from ..media.video import STDIO, VideoFrame, VideoReader, VideoWriter
from ..model.colorizer import Colorizer, PreparedBatch
from ..settings import default
from .face_tracks import FaceRefiner
from .hints import HintColorizer, film_hints
from .reference import ReferenceColorizer, load_references
from .scene_cuts import SceneCutDetector
from .shot_features import ANCHOR_WINDOW, ShotGlobalFeatures
from .temporal import TemporalSmoother

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


@dataclass
class AnalyzedBatch:
    """A batch after ``FrameColorizer.prepare``: its L, where new shots start, its global features.

    ``global_vectors`` holds the vectors of the ``anchors`` frames only until
    ``ShotGlobalFeatures`` settles one vector per frame.
    """

    prepared: PreparedBatch
    new_shot: list[bool]
    global_vectors: torch.Tensor
    anchors: list[bool] = field(default_factory=list)
    faces: list | None = None  # per frame, its faces' FacePlacements (None: faces off)


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
    Frames given as planes (``VideoFrame.yuv``) come out as planes: their luma
    as it came, chroma computed in the format ``output_planes`` picks.
    """

    # (source planes, height, width) -> the planes to compose into, or None for RGB; None: the source's own
    output_planes: Callable[[PlaneFormat, int, int], PlaneFormat | None] | None = None

    def __init__(self, colorizer: Colorizer, smooth: str = default("smooth"), radius: int = default("smooth_radius"),
                 global_blend: str = "interpolate", reference: ReferenceColorizer | None = None,
                 anchor_window: int = ANCHOR_WINDOW, faces_debug: Path | None = None,
                 hints: HintColorizer | None = None):
        self.colorizer = colorizer
        self.reference = reference
        self.hints = hints
        # faces found in prepare get their own crop blended in after the head (None: faces off)
        self.faces = FaceRefiner.for_colorizer(colorizer, faces_debug)
        self.colorizer.reset()
        # one detector decides the shots, for the smoother and for the global features alike
        self.detector = SceneCutDetector()
        self.shot_features = ShotGlobalFeatures(global_blend, anchor_window)
        self._anchored = False  # the stream's first frame is an anchor
        self.smoother = TemporalSmoother(mode=smooth, radius=radius, detector=None)
        self.waiting: deque[tuple[VideoFrame, torch.Tensor, float]] = deque()  # frame, full-size L, depth
        self.scene_cuts = 0

    def process(self, frames: list[VideoFrame]) -> list[VideoFrame]:
        return self.compose(self.advance(frames, self.prepare(frames)))

    def finish(self) -> list[VideoFrame]:
        return self.compose(self.flush())

    # The three steps of process(), for callers that run them in different threads:
    # prepare and advance must each see the batches in order; compose keeps no state.
    def prepare(self, frames: list[VideoFrame]) -> AnalyzedBatch:
        """Frames -> their L, where new shots start, and their VGG16 global features.

        The global features are computed here rather than in ``advance`` so that
        a pipeline running this step in its decoding thread keeps VGG16 and the
        head busy at the same time (640x480 on two CPU cores, together with
        cache-sized compose strips: 5.9 -> 6.9 fps).
        """
        with self.colorizer.stage("lightness"):
            prepared = self.colorizer.prepare([frame.picture for frame in frames])
            thumbnails = self._thumbnails(prepared.small_lightness)
        with self.colorizer.stage("smoothing"):
            new_shot = [self.detector.update(thumbnail) for thumbnail in thumbnails]
        self.scene_cuts += sum(new_shot)
        anchors = self._fresh_global(frames, new_shot)
        if not self._anchored:
            anchors[0] = self._anchored = True
        anchor_lightness = prepared.small_lightness[[i for i, anchor in enumerate(anchors) if anchor]]
        if len(anchor_lightness):
            vectors = self.colorizer.global_vectors(anchor_lightness, [True] * len(anchor_lightness))
        else:
            vectors = anchor_lightness.new_empty((0, self.colorizer.global_features.out_channels))
        faces = None
        if self.faces is not None:
            lightness = prepared.lightness
            if frames[0].yuv is not None:  # luma codes: the detector and the crops want L
                lightness = self.colorizer.lightness_of_luma(lightness, frames[0].yuv.format)
            faces = self.faces.plan([frame.index for frame in frames], new_shot, lightness,
                                    prepared.small_lightness.shape[-2])
        return AnalyzedBatch(prepared, new_shot, vectors, anchors, faces)

    def advance(self, frames: list[VideoFrame], analyzed: AnalyzedBatch) -> list:
        """a*b* and smoothing; returns the frames now ready for ``compose``.

        A batch is predicted once its global features are settled (the shot's
        next anchor is known), so frames come out up to ``global_every`` later.
        """
        return self._take(self._predict_settled(self.shot_features.push(frames, analyzed)))

    def flush(self) -> list:
        """The frames still held, ready for ``compose``."""
        ready = self._predict_settled(self.shot_features.flush())
        self._anchored = False
        with self.colorizer.stage("smoothing"):
            return self._take(ready + self.smoother.flush())

    def _predict_settled(self, settled: list[tuple[list[VideoFrame], AnalyzedBatch]]) -> list[tuple[int, torch.Tensor]]:
        ready = []
        for frames, analyzed in settled:
            prepared, new_shot = analyzed.prepared, analyzed.new_shot
            ab = self.colorizer.predict(prepared.small_lightness, global_vectors=analyzed.global_vectors)
            if analyzed.faces is not None:
                ab = self.faces.blend(ab, analyzed.faces, *prepared.lightness.shape[-2:])
            if self.reference is not None:
                with self.colorizer.stage("reference"):
                    ab = self.reference.apply(frames, prepared.small_lightness, ab, analyzed.global_vectors)
            if self.hints is not None:
                with self.colorizer.stage("hints"):
                    ab = self.hints.apply(frames, prepared.small_lightness, ab)
            with self.colorizer.stage("smoothing"):
                for index, frame in enumerate(frames):
                    self.waiting.append((frame, prepared.lightness[index], prepared.max_value))
                    ready += self.smoother.push(prepared.small_lightness[index], ab[index], key=frame.index,
                                                cut=new_shot[index])
        return ready

    def _thumbnails(self, small_lightness: torch.Tensor) -> torch.Tensor:
        # SceneCutDetector.thumbnail for the whole batch in one op (the same numbers): the
        # detector then gets frames already at its thumbnail size and uses them as they are.
        height, width = small_lightness.shape[-2:]
        scale = self.detector.thumb / min(height, width)
        if scale >= 1:
            return small_lightness
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        return F.adaptive_avg_pool2d(small_lightness.float(), size)

    def _take(self, ready: list[tuple[int, torch.Tensor]]) -> list[tuple[VideoFrame, torch.Tensor, torch.Tensor, float]]:
        taken = []
        for key, ab in ready:
            frame, lightness, max_value = self.waiting.popleft()
            assert key == frame.index, "the smoother returns frames in order"
            taken.append((frame, lightness, ab, max_value))
        return taken

    def _fresh_global(self, frames: list[VideoFrame], new_shot: list[bool]) -> list[bool]:
        # Global features are computed at each cut and on every frame whose index in
        # the film is a multiple of global_every: a schedule fixed by position, so a
        # segment decoded from a seek (segments.py) computes them on the same frames
        # as a run from the start.
        every = self.colorizer.global_every
        return [cut or frame.index % every == 0 for frame, cut in zip(frames, new_shot)]

    def compose(self, ready: list[tuple[VideoFrame, torch.Tensor, torch.Tensor, float]]) -> list[VideoFrame]:
        """Ready frames (from ``advance`` / ``flush``) -> colorized frames, composed as one batch."""
        if not ready:
            return []
        if ready[0][0].yuv is not None:
            return self._compose_planes(ready)
        with self.colorizer.stage("compose"):
            rgb = self.colorizer.compose(
                torch.stack([lightness for _, lightness, _, _ in ready]),
                torch.stack([ab for _, _, ab, _ in ready]),
                ready[0][3],
            )
        composed = [
            VideoFrame(rgb=rgb[i], pts=frame.pts, time_base=frame.time_base, alpha=frame.alpha, index=frame.index)
            for i, (frame, _, _, _) in enumerate(ready)
        ]
        if self.faces is not None:
            self.faces.write_debug(composed)
        return composed

    def _compose_planes(self, ready: list[tuple[VideoFrame, torch.Tensor, torch.Tensor, float]]) -> list[VideoFrame]:
        """Frames given as planes: their luma kept, Cb/Cr computed at chroma resolution (RGB where the output needs it)."""
        first = ready[0][0]
        source = first.yuv.format
        output = self.output_planes(source, *first.size) if self.output_planes is not None else source
        with self.colorizer.stage("compose"):
            luma = torch.stack([codes for _, codes, _, _ in ready])
            ab = torch.stack([ab for _, _, ab, _ in ready])
            if output is None:
                lightness = self.colorizer.lightness_of_luma(luma, source)
                rgb = self.colorizer.compose(lightness, ab, 65535.0 if source.bits > 8 else 255.0)
                return [dataclasses.replace(frame, rgb=rgb[i], yuv=None) for i, (frame, _, _, _) in enumerate(ready)]
            chroma = self.colorizer.compose_planes(luma, ab, source, output)
        return [
            dataclasses.replace(frame, yuv=YuvPlanes(convert_luma(frame.yuv.luma, source, output), output, chroma[i]))
            for i, (frame, _, _, _) in enumerate(ready)
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


def auto_threads(device: torch.device, overlap: bool = True) -> int:
    """torch intra-op threads for ``threads=0``: on a CPU with overlap, one core less than we may use.

    The reader and writer threads (decode, L, VGG16, compose, encode) take the
    core left over. Measured on 2 shared cores: 1 thread 3.6 fps against 3.2
    with 2, and the smoother's small ops 2 against 124 ms/frame (two threads
    wait on each other whenever another process holds a core). With one torch
    thread, ``Colorizer`` still spreads the head over both cores by running
    parts of each batch in threads of their own. 0 (torch's own choice) on
    CUDA or without overlap.
    """
    if device.type != "cpu" or not overlap:
        return 0
    return max(1, usable_cores() - 1)


class torch_threads:
    """Within the block, torch uses ``count`` intra-op threads (0: as it was); restored afterwards."""

    def __init__(self, count: int):
        self.count = int(count or 0)
        self.saved: int | None = None

    def __enter__(self) -> None:
        if self.count > 0:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.count)

    def __exit__(self, *exc_info) -> None:
        if self.saved is not None:
            torch.set_num_threads(self.saved)


# Bytes each queue between two threads of ``run_stream`` may hold: a few batches of
# 1080p frames, whatever the batch size; 4K batches pass one at a time.
QUEUE_BYTES = 96 << 20


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, VideoFrame):
        return value.nbytes
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_tensor_bytes(getattr(value, item.name)) for item in dataclasses.fields(value))
    return 0


def run_stream(stream: FrameColorizer, frames: Iterable[VideoFrame], batch_size: int,
               write: Callable[[list[VideoFrame]], None], overlap: bool = True,
               busy: dict[str, float] | None = None) -> int:
    """Push frames through ``stream`` and hand the finished ones, in order, to ``write``; returns frames read.

    overlap: four threads, each on its own stage: decode and L (reader), the
    network and the smoother (this one), composition (composer) and ``write``
    (encoder). FFmpeg and torch release the GIL, so they run at the same time,
    and neither composition nor the encoder waits for the other. Each queue
    between them holds at most ``QUEUE_BYTES`` of frames and tensors, so
    memory stays bounded whatever the resolution and batch size.
    busy: filled with the seconds each thread worked (reader, network,
    composer, encoder) and the wall time of the whole ("wall").
    """
    read = 0
    started = time.perf_counter()
    if not overlap:
        for batch in batched(frames, batch_size):
            read += len(batch)
            write(stream.process(batch))
        write(stream.finish())
        if busy is not None:
            busy.update(network=time.perf_counter() - started, wall=time.perf_counter() - started)
        return read

    def prepared_batches():
        for batch in batched(frames, batch_size):
            yield batch, stream.prepare(batch)

    network = composing = 0.0

    def compose(ready: list) -> list[VideoFrame]:
        nonlocal composing
        began = time.perf_counter()
        composed = stream.compose(ready)
        composing += time.perf_counter() - began
        return composed

    with Prefetcher(prepared_batches(), depth=None, max_bytes=QUEUE_BYTES, size_of=_tensor_bytes) as batches, \
            BackgroundWriter(write, depth=None, name="facecolor-encoder", max_bytes=QUEUE_BYTES,
                             size_of=_tensor_bytes) as encoder, \
            BackgroundWriter(lambda ready: encoder.put(compose(ready)), depth=None, name="facecolor-composer",
                             max_bytes=QUEUE_BYTES, size_of=_tensor_bytes) as composer:
        for batch, prepared in batches:
            read += len(batch)
            began = time.perf_counter()
            ready = stream.advance(batch, prepared)
            network += time.perf_counter() - began
            composer.put(ready)
        began = time.perf_counter()
        ready = stream.flush()
        network += time.perf_counter() - began
        composer.put(ready)
        composer.close()
        encoder.close()
    if busy is not None:
        busy.update(reader=batches.busy_seconds, network=network, composer=composing,
                    encoder=encoder.busy_seconds, wall=time.perf_counter() - started)
    return read


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
