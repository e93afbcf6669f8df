"""Reading the frames of a video or an image with their timestamps, and what the source holds besides.

A still image is handled as a one-frame video: PyAV opens it with its image
demuxers.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from ..errors import DecodeError, InputError, NoVideoStreamError, VideoOpenError
from .frames import VideoFrame, decoded_to_video_frame, has_alpha
from .planes import decoded_planes
from .streams import codec_name

# The path that means stdin (as input) or stdout (as output).
STDIO = "-"
# Used when a stream declares no rate at all (some images and raw streams).
FALLBACK_FRAME_RATE = Fraction(25)


@dataclass(frozen=True)
class StreamInfo:
    """An audio or subtitle stream of the source, as the writer will copy it."""

    index: int
    type: str
    codec: str
    language: str | None


def _check_input_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: input not found")
    if path.is_dir():
        raise InputError(f"{path}: input is a directory, not a video or image file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: input is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: input is not readable")


class VideoReader:
    """Frames of a video (or of one image) with their timestamps.

    Use as a context manager. frames() is one live decode loop over the
    container; call it again to start over.
    """

    def __init__(self, path):
        self.path = Path(path)
        pipe = str(path) == STDIO
        if not pipe:
            _check_input_path(self.path)
        try:
            # "-": a stream on stdin (NUT, Matroska, MPEG-TS, y4m), read once
            self._container = av.open("pipe:0" if pipe else str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as error:
            raise VideoOpenError(f"{self.path}: cannot open as video or image ({error})") from None
        if not self._container.streams.video:
            self._container.close()
            raise NoVideoStreamError(f"{self.path}: no video or image stream in the file")
        self._stream = self._container.streams.video[0]
        # Let the decoder use several threads; frames still come out in order.
        self._stream.thread_type = "AUTO"
        self._rotation: int | None = None
        self._decode_started = False
        self.decode_errors = 0
        # pts of the packets that failed to decode (None where a packet had no pts).
        self.decode_error_pts: list[int | None] = []
        self._pipe = pipe
        self._side_packets: deque = deque()
        # a pipe cannot be read twice: its audio and subtitle packets are kept from the one demux, when wanted
        self.keep_side_packets = False
        self._replay: list = []  # packets read ahead from a pipe (peek_packets), decoded first
        # Iterator[av.VideoFrame] -> Iterator[av.VideoFrame] between decoder and conversion (a deinterlacer)
        self.frame_filter = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def width(self) -> int:
        return self._stream.codec_context.width

    @property
    def height(self) -> int:
        return self._stream.codec_context.height

    @property
    def frame_rate(self) -> Fraction:
        stream = self._stream
        for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
            if rate:
                return Fraction(rate)
        return FALLBACK_FRAME_RATE

    @property
    def time_base(self) -> Fraction:
        return Fraction(self._stream.time_base) if self._stream.time_base else 1 / self.frame_rate

    @property
    def start_time(self) -> int:
        """pts of the stream's first frame, in time_base units (0 when unknown)."""
        return self._stream.start_time or 0

    @property
    def stream_duration(self) -> Fraction | None:
        """Length of the video stream itself in seconds (not the container's), when the file says."""
        if self._stream.duration:
            return self._stream.duration * self.time_base
        # Matroska keeps each stream's end time in a DURATION tag (HH:MM:SS.nnnnnnnnn)
        tag = self._stream.metadata.get("DURATION", "")
        try:
            hours, minutes, seconds = tag.split(":")
            end = (int(hours) * 60 + int(minutes)) * 60 + Fraction(seconds)
        except ValueError:
            return None
        length = end - self.start_time * self.time_base
        return length if length > 0 else None

    @property
    def duration(self) -> Fraction | None:
        """Length of the video stream in seconds, when the file says."""
        if self.stream_duration:
            return self.stream_duration
        if self._container.duration:
            return Fraction(self._container.duration, av.time_base)
        return None

    @property
    def frame_count(self) -> int:
        """Number of frames: exact when the container counts them, else estimated."""
        if self.is_image:
            return 1
        if self._stream.frames:
            return self._stream.frames
        duration = self.duration
        return round(duration * self.frame_rate) if duration else 0

    @property
    def is_image(self) -> bool:
        # Still images are opened by the image2 demuxer or one of its *_pipe probes.
        name = self._container.format.name
        return name == "image2" or name.endswith("_pipe")

    @property
    def pix_fmt(self) -> str | None:
        return self._stream.codec_context.pix_fmt

    @property
    def codec_name(self) -> str:
        return self._stream.codec_context.name

    @property
    def has_alpha(self) -> bool:
        video_format = self._stream.codec_context.format
        return video_format is not None and has_alpha(video_format)

    @property
    def bit_depth(self) -> int:
        """Bits per colour channel of the source (8 when the format is unknown)."""
        video_format = self._stream.codec_context.format
        if video_format is None:
            return 8
        return max((c.bits for c in video_format.components if not c.is_alpha), default=8)

    @property
    def rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0 when none is set).

        FFmpeg attaches the container's display matrix to decoded frames, so the
        first frame tells; it is decoded once, from a separate handle.
        """
        if self._rotation is None and self._pipe:
            return 0  # known once the first frame is decoded
        if self._rotation is None:
            with av.open(str(self.path)) as probe:
                first = next(probe.decode(video=0), None)
                self._rotation = int(first.rotation) if first is not None else 0
        return self._rotation

    @property
    def video_stream(self):
        """The PyAV video stream being decoded."""
        return self._stream

    @property
    def is_pipe(self) -> bool:
        """True when the source is a stream read once from stdin (it cannot be opened again)."""
        return self._pipe

    def source_streams(self, kind: str | None = None) -> list:
        """The source's audio and subtitle streams (PyAV streams), or those of one kind."""
        kinds = (kind,) if kind else ("audio", "subtitle")
        return [stream for stream in self._container.streams if stream.type in kinds]

    def peek_packets(self, indices: list[int], count: int, byte_limit: int = 64 << 20) -> dict[int, list]:
        """For a pipe: read ahead until each stream in indices has count packets (or byte_limit is read).

        The packets read are kept and decoded or copied first, so nothing is lost; the
        ones of indices are returned for the output's trial mux.
        """
        found: dict[int, list] = {index: [] for index in indices}
        size = 0
        try:
            for packet in self._container.demux():
                if not packet.size:
                    break  # the end of the stream: its flush packets come again when decoding
                self._replay.append(packet)
                size += packet.size
                wanted = found.get(packet.stream.index)
                if wanted is not None and packet.dts is not None and len(wanted) < count:
                    wanted.append(packet)
                if size > byte_limit or all(len(packets) >= count for packets in found.values()):
                    break
        except av.FFmpegError as error:
            raise DecodeError(f"{self.path}: reading the stream failed ({error})") from None
        return found

    def next_side_packet(self):
        """For a pipe: the next audio or subtitle packet demuxed along with the video, or None for now."""
        return self._side_packets.popleft() if self._side_packets else None

    @property
    def audio_streams(self) -> list[StreamInfo]:
        return [_stream_info(stream) for stream in self._container.streams.audio]

    @property
    def subtitle_streams(self) -> list[StreamInfo]:
        return [_stream_info(stream) for stream in self._container.streams.subtitles]

    def frames(self, start_pts: int | None = None, as_planes: bool = False,
               keep_chroma: bool = False) -> Iterator[VideoFrame]:
        """Yield every frame in presentation order, from start_pts if given.

        as_planes: frames carry their luma plane as decoded (``VideoFrame.yuv``)
        instead of an RGB conversion; for a video output that keeps it.
        keep_chroma: with as_planes, the source's chroma planes too (to re-encode them as they are).

        start_pts is in time_base units: the reader seeks to the keyframe at or
        before it and skips the frames before it. Packets the decoder rejects
        are counted in decode_errors (with their pts in decode_error_pts) and
        decoding goes on; DecodeError when nothing at all could be decoded.
        """
        if start_pts is not None or self._decode_started:
            self._seek(start_pts if start_pts is not None else self.start_time)
        self._decode_started = True
        index = 0
        decoded = self._decoded(self._stream)
        if self.frame_filter is not None:
            decoded = self.frame_filter(decoded)
        for frame in decoded:
            if start_pts is not None and frame.pts is not None and frame.pts < start_pts:
                continue
            if index == 0 and self._rotation is None:
                self._rotation = int(frame.rotation)
            if as_planes:
                yield VideoFrame(None, frame.pts, frame.time_base, None, index, yuv=decoded_planes(frame, keep_chroma))
            else:
                yield decoded_to_video_frame(frame, index)
            index += 1
        if index == 0 and self.decode_errors:
            raise DecodeError(f"{self.path}: no frame could be decoded ({self.decode_errors} packets rejected)")
        if index == 0 and start_pts is None:
            raise DecodeError(f"{self.path}: the video stream holds no frame that could be decoded")

    def _decoded(self, stream) -> Iterator[av.VideoFrame]:
        # Demux and decode packet by packet, rather than container.decode(), so
        # that one corrupt packet is counted instead of ending the generator.
        # The demuxer ends with an empty packet that flushes the frames the
        # decoder still holds (B-frames), so none are lost at the end.
        #
        # decode_error_pts gets the pts of the frames actually lost, not of the
        # packet whose decode() raised: with frame threading the decoder reports
        # an error one or more packets late. A packet is known lost when a frame
        # with a later pts comes out (frames come out in presentation order) or
        # when the stream ends, and one is counted per decode error.
        pending: list[int] = []  # sorted pts of the packets sent whose frame has not come out
        unmatched = 0  # decode errors not yet matched to a lost frame
        side = self.source_streams() if self._pipe and self.keep_side_packets else []
        replayed, self._replay = self._replay, []
        try:
            for packet in itertools.chain(replayed, self._container.demux(stream, *side)):
                if packet.stream is not stream:
                    if side:
                        self._side_packets.append(packet)
                    continue
                if packet.pts is not None and packet.size:
                    bisect.insort(pending, packet.pts)
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    self.decode_errors += 1
                    unmatched += 1
                    continue
                for frame in decoded:
                    if frame.pts is not None and pending:
                        unmatched = self._settle(pending, frame.pts, unmatched)
                    yield frame
        except av.FFmpegError as error:
            raise DecodeError(f"{self.path}: reading the file failed ({error})") from None
        lost = pending[:unmatched]
        self.decode_error_pts += lost + [None] * (unmatched - len(lost))

    def _settle(self, pending: list[int], pts: int, unmatched: int) -> int:
        """A frame with this pts came out: the packets before it that gave none are lost or never framed."""
        cut = bisect.bisect_left(pending, pts)
        lost = pending[:min(cut, unmatched)]
        self.decode_error_pts += lost
        del pending[:cut]
        if pending and pending[0] == pts:
            del pending[0]
        return unmatched - len(lost)

    def _seek(self, pts: int) -> None:
        try:
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError as error:
            raise DecodeError(f"{self.path}: cannot seek to pts {pts} ({error})") from None


def _stream_info(stream) -> StreamInfo:
    codec = codec_name(stream)
    return StreamInfo(index=stream.index, type=stream.type, codec=codec, language=stream.language)
