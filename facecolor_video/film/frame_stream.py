"""The per-batch stage chain: frames -> L, shots and global features -> a*b*, faces, references,
hints -> smoothing -> composition (``FrameColorizer``), and ``run_stream``, which runs its steps in
threads of their own.

Memory stays bounded whatever the film's length: frames stream through in
batches, the global features hold at most ``global_every`` frames plus a batch
back (until the shot's next anchor), and the smoother ``radius`` frames.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..devices import usable_cores
from ..media.planes import PlaneFormat, YuvPlanes, convert_luma
from ..media.prefetch import BackgroundWriter, Prefetcher
from ..media.video import VideoFrame
from ..model.colorizer import Colorizer, PreparedBatch
from ..settings import default
from .face_tracks import FaceRefiner
from .hints import HintColorizer
from .reference import ReferenceColorizer
from .scene_cuts import SceneCutDetector
from .shot_features import ANCHOR_WINDOW, ShotGlobalFeatures
from .temporal import TemporalSmoother


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


__all__ = ["QUEUE_BYTES", "AnalyzedBatch", "FrameColorizer", "auto_threads", "batched", "run_stream",
           "torch_threads"]
