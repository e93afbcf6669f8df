"""Interlaced sources: their field order, encoder settings that keep it, and deinterlacing.

Field order is FFmpeg's: 'tt' (top field first), 'bb' (bottom first), 'tb'
and 'bt' (coded one way, shown the other), 'progressive'. A stream that does
not say (DV: the decoder marks each frame interlaced, the stream nothing)
takes its codec's own rule: DV is bottom field first in both NTSC and PAL.

Deinterlacing runs FFmpeg's bwdif through PyAV's own libavfilter, at the
frame rate (one frame per frame: every pts kept) or the field rate (two
frames per frame: the rate doubles).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av

# AVFieldOrder values
FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
INTERLACED = ("tt", "bb", "tb", "bt")
_CODEC_FIELD_ORDER = {"dvvideo": "bb"}
DEINTERLACE_MODES = ("frame", "field")


def field_order(path, stream_index: int | None = None) -> str:
    """The field order of the video stream of path: one of FIELD_ORDERS' values, or 'unknown'."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if stream_index is None else container.streams[stream_index]
        stated = FIELD_ORDERS.get(stream.codec_context.field_order)
        if stated:
            return stated
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError:
            first = None  # damaged: the reader reports it, with the file's name
        if first is None:
            return "unknown"
        stated = FIELD_ORDERS.get(stream.codec_context.field_order)
        if stated:
            return stated
        if first.interlaced_frame:
            return _CODEC_FIELD_ORDER.get(stream.codec_context.name, "tt")
        return "progressive"


def interlaced_encoder_options(codec: str, order: str) -> dict[str, str]:
    """Encoder options that make the output interlaced in the source's field order (libx264: MBAFF)."""
    if order not in INTERLACED:
        return {}
    options = {"flags": "+ildct+ilme"}
    if codec == "libx264":
        # x264 codes both fields of a frame together; which one comes first is its tff/bff
        options["x264-params"] = "tff=1" if order in ("tt", "tb") else "bff=1"
    return options


def deinterlaced(frames: Iterator[av.VideoFrame], stream, mode: str) -> Iterator[av.VideoFrame]:
    """The frames through bwdif: 'frame' keeps each frame (and its pts), 'field' makes one per field."""
    if mode not in DEINTERLACE_MODES:
        raise ValueError(f"deinterlace mode {mode!r}; use one of {', '.join(DEINTERLACE_MODES)}")
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    # deint=all: every frame, also those not marked interlaced (some DVD encoders mark none)
    bwdif = graph.add("bwdif", f"mode={'send_field' if mode == 'field' else 'send_frame'}:parity=auto:deint=all")
    sink = graph.add("buffersink")
    source.link_to(bwdif)
    bwdif.link_to(sink)
    graph.configure()
    for frame in frames:
        graph.push(frame)
        yield from _drain(graph)
    graph.push(None)
    yield from _drain(graph)


def _drain(graph) -> Iterator[av.VideoFrame]:
    while True:
        try:
            yield graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def output_time_base(source_time_base: Fraction, mode: str | None) -> Fraction:
    """The writer's time base: fine enough for the field rate's half-frame steps."""
    return source_time_base / 2 if mode == "field" else source_time_base


class FieldPlan:
    """How one run treats the source's fields: kept interlaced, or deinterlaced at the frame or field rate.

    Attach it to the reader before decoding (``attach``); pass ``writer_settings``
    to the VideoWriter. ``notice`` says what was done, for an interlaced source.
    """

    def __init__(self, order: str, deinterlace: str | None, codec: str, source_time_base: Fraction,
                 frame_rate: Fraction):
        self.order = order
        self.deinterlace = deinterlace
        interlaced = order in INTERLACED
        self.writer_settings: dict = {}
        if deinterlace:
            self.writer_settings = {"time_base": output_time_base(source_time_base, deinterlace),
                                    "frame_rate": frame_rate * (2 if deinterlace == "field" else 1)}
        elif interlaced:
            self.writer_settings = {"options": interlaced_encoder_options(codec, order)}
        if deinterlace:
            rate = "field rate, twice the frames" if deinterlace == "field" else "frame rate, every pts kept"
            self.notice = f"deinterlaced with bwdif at the {rate} (source field order {order})"
        elif interlaced:
            self.notice = f"interlaced source (field order {order}): the output is interlaced the same way"
        else:
            self.notice = None

    def attach(self, reader) -> None:
        if self.deinterlace:
            mode = self.deinterlace
            reader.frame_filter = lambda frames: deinterlaced(frames, reader.video_stream, mode)


def plan_fields(reader, deinterlace: str | None, codec: str) -> FieldPlan:
    order = "progressive" if reader.is_image or reader.is_pipe else field_order(reader.path)
    return FieldPlan(order, deinterlace, codec, reader.time_base, reader.frame_rate)
