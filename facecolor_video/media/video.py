"""Reading frames from a video or image, and writing them back with the source's
timestamps, audio and subtitles.

A still image is handled as a one-frame video: PyAV opens it with its image
demuxers, and the writer writes image files through the image2 muxer.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import os
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import (
    DecodeError,
    EncodeError,
    InputError,
    NoVideoStreamError,
    OutputError,
    VideoOpenError,
)
from .outputs import (
    IMAGE_CODECS,
    MUXER_OPTIONS,
    PIPE_MUXER_OPTIONS,
    VIDEO_CONTAINERS,
    output_kind,
    pipe_format,
    temporary_path_for,
)
from .streams import (
    TRIAL_PACKETS,
    StreamCopier,
    StreamPlan,
    check_video_codec,
    file_packets,
    plan_streams,
    read_first_packets,
)
from .planes import (
    AVCOL_RANGE_JPEG,
    AVCOL_RANGE_MPEG,
    AVCOL_SPC,
    PlaneFormat,
    YuvPlanes,
    decoded_planes,
    plane_format,
    to_av_frame,
)

# The path that means stdin (as input) or stdout (as output).
STDIO = "-"
# Used when a stream declares no rate at all (some images and raw streams).
FALLBACK_FRAME_RATE = Fraction(25)
# AVColorSpace / AVColorRange values: the encoder tags what the writer converts with.
_AVCOL_SPC_SMPTE170M = 6
_AVCOL_RANGE_MPEG = 1


@dataclass
class VideoFrame:
    """One decoded picture.

    rgb: H x W x 3, uint8, or uint16 when the source has more than 8 bits per
    channel (10-bit video, 16-bit PNG), so that no luminance detail is lost.
    pts: presentation timestamp in time_base units (None if the source has none).
    alpha: H x W, same dtype as rgb, for sources with transparency; else None.
    index: position in decode output order, counting from 0.
    yuv: the picture as planes instead of rgb (then rgb is None): the luma as
    decoded and, once colorized, the chroma (``VideoReader.frames(as_planes=True)``).
    """

    rgb: np.ndarray | None
    pts: int | None = None
    time_base: Fraction | None = None
    alpha: np.ndarray | None = None
    index: int = 0
    yuv: YuvPlanes | None = None

    @property
    def picture(self) -> np.ndarray | YuvPlanes:
        """What the frame holds: its planes, or else its RGB array."""
        return self.yuv if self.yuv is not None else self.rgb

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (self.yuv.height, self.yuv.width) if self.yuv is not None else self.rgb.shape[:2]

    @property
    def nbytes(self) -> int:
        """Bytes of picture the frame holds (queues are bounded by it)."""
        alpha = self.alpha.nbytes if self.alpha is not None else 0
        return alpha + (self.yuv.nbytes if self.yuv is not None else self.rgb.nbytes)

    @property
    def time(self) -> Fraction | None:
        """Presentation time in seconds, exact."""
        if self.pts is None or self.time_base is None:
            return None
        return self.pts * self.time_base


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


def _is_deep(video_format) -> bool:
    """True when a pixel format holds more than 8 bits in a colour channel."""
    return any(component.bits > 8 for component in video_format.components if not component.is_alpha)


def _has_alpha(video_format) -> bool:
    return any(component.is_alpha for component in video_format.components)


def decoded_to_video_frame(frame: av.VideoFrame, index: int) -> VideoFrame:
    """Convert a decoded frame to RGB, keeping its depth, range and alpha.

    swscale reads the frame's own colour range and matrix, so full-range
    (yuvj) and 10-bit sources come out right.
    """
    deep = _is_deep(frame.format)
    alpha = None
    if _has_alpha(frame.format):
        rgba = frame.to_ndarray(format="rgba64le" if deep else "rgba")
        rgb, alpha = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    else:
        rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))
    return VideoFrame(rgb=rgb, pts=frame.pts, time_base=frame.time_base, alpha=alpha, index=index)


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
        return video_format is not None and _has_alpha(video_format)

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


def _codec_name(stream) -> str:
    # The codec's own name ('mp3'), not its decoder's ('mp3float'): muxers list codecs.
    return stream.codec.canonical_name


def _stream_info(stream) -> StreamInfo:
    codec = _codec_name(stream)
    return StreamInfo(index=stream.index, type=stream.type, codec=codec, language=stream.language)


def _reason(error: BaseException) -> str:
    """Why a write failed, in words: a full disk says so plainly."""
    if getattr(error, "errno", None) == errno.ENOSPC:
        return "disk full: no space left on device"
    return str(error)


# Hardware encoders FFmpeg may offer, and what each needs at run time.
HARDWARE_ENCODERS = {
    "h264_nvenc": "an NVIDIA GPU and its driver",
    "hevc_nvenc": "an NVIDIA GPU and its driver",
    "av1_nvenc": "an NVIDIA GPU (Ada or newer) and its driver",
}
# x264's preset names on NVENC's p1 (fastest) .. p7 (best) scale.
_NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
    "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """The encoder's own options for ``--crf`` and ``--preset``.

    libx264/libx265 take them as they are. NVENC has no crf: its constant-quality
    mode (``rc=vbr`` with ``cq``, bitrate left free) is the nearest match, and
    x264 preset names map onto its p1..p7 (its own names pass through). Other
    encoders get their defaults.
    """
    if codec == "libx264":
        return {"crf": str(crf), "preset": preset}
    if codec == "libx265":  # x265 logs every run to stderr unless told otherwise
        return {"crf": str(crf), "preset": preset, "x265-params": "log-level=error"}
    if codec.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(crf), "b": "0", "preset": _NVENC_PRESETS.get(preset, preset)}
    return {}


def _video_pix_fmt(codec_name: str, width: int, height: int, deep: bool) -> str:
    """The encoder pixel format: 4:2:0 when the size allows, 10-bit for deep sources."""
    supported = {fmt.name for fmt in (av.codec.Codec(codec_name, "w").video_formats or ())}
    odd_size = width % 2 or height % 2
    for candidate in (
        ("yuv444p10le" if odd_size else "yuv420p10le") if deep else None,
        "yuv444p" if odd_size else "yuv420p",
        "yuv420p",
    ):
        if candidate and (not supported or candidate in supported):
            return candidate
    return sorted(supported)[0]


def _image_pix_fmt(codec_name: str, deep: bool, alpha: bool) -> str:
    if codec_name == "png":
        return {(False, False): "rgb24", (False, True): "rgba", (True, False): "rgb48be", (True, True): "rgba64be"}[
            (deep, alpha)
        ]
    if codec_name == "tiff":
        return {(False, False): "rgb24", (False, True): "rgba", (True, False): "rgb48le", (True, True): "rgba64le"}[
            (deep, alpha)
        ]
    if codec_name == "libwebp":
        return "yuva420p" if alpha else "yuv420p"
    if codec_name == "bmp":
        return "bgra" if alpha else "bgr24"
    # JPEG: full range, no chroma subsampling (colour is what we produce).
    return "yuvj444p"


_IMAGE_CODEC_OPTIONS = {
    "mjpeg": {"qmin": "1", "qmax": "2"},
    "libwebp": {"quality": "95"},
}


def _to_av_frame(frame: VideoFrame) -> av.VideoFrame:
    rgb = np.ascontiguousarray(frame.rgb)
    deep = rgb.dtype == np.uint16
    if rgb.dtype not in (np.uint8, np.uint16) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise EncodeError(f"frame {frame.index}: expected H x W x 3 uint8 or uint16 RGB, got {rgb.dtype} {rgb.shape}")
    if frame.alpha is not None:
        alpha = np.asarray(frame.alpha).astype(rgb.dtype)
        rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
        return av.VideoFrame.from_ndarray(rgba, format="rgba64le" if deep else "rgba")
    return av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24")


class VideoWriter:
    """Writes RGB frames to a video or image file, atomically.

    template: the VideoReader of the source (its size, time base, rate and
    rotation are kept, its audio and subtitle packets copied), or None to take
    the size from the first frame and use frame_rate.
    The output goes to a hidden temporary file beside path; close() renames it
    onto path only when everything was written. Leaving the with-block by an
    exception removes the temporary file and leaves path untouched.
    """

    def __init__(
        self,
        path,
        template: VideoReader | None = None,
        *,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "medium",
        copy_audio: bool = True,
        copy_subtitles: bool = True,
        frame_rate=None,
        options: dict[str, str] | None = None,
        time_base=None,
        stream_format: str | None = None,
        pix_fmt: str | None = None,
    ):
        self.path = Path(path)
        # "-": a stream to stdout in stream_format (nut, mkv, ts, mp4, mov), written as it goes
        self.to_stdout = str(path) == STDIO
        self.kind = "video" if self.to_stdout else output_kind(self.path)
        self.container_format = (pipe_format(stream_format, path) if self.to_stdout
                                 else VIDEO_CONTAINERS.get(self.path.suffix.lower()))
        self.template = template
        self.codec = codec if self.kind == "video" else IMAGE_CODECS[self.path.suffix.lower()]
        self.crf, self.preset = crf, preset
        self.copy_audio, self.copy_subtitles = copy_audio, copy_subtitles
        self.frame_rate = Fraction(frame_rate) if frame_rate else (template.frame_rate if template else FALLBACK_FRAME_RATE)
        self.time_base = Fraction(time_base) if time_base else (
            template.time_base if template is not None else 1 / self.frame_rate)
        self.options = dict(options or {})
        # the encoder's pixel format for a video output (None: 4:2:0, 4:4:4 at odd sizes, 10-bit for deep sources)
        self.pix_fmt = pix_fmt
        self.notices: list[str] = []
        self.frames_written = 0
        # Frames whose pts was missing or not after the previous one, and was moved.
        self.pts_adjusted = 0
        self.temporary_path = Path("pipe:1") if self.to_stdout else temporary_path_for(self.path)
        self._container = None
        self._stream = None
        self._copier: StreamCopier | None = None
        self._last_pts: int | None = None
        self._closed = False
        if codec not in av.codecs_available:
            raise OutputError(f"{self.path}: video codec {codec!r} is not available in this PyAV build")
        # Audio and subtitles are settled now, before any frame: OutputError if one fits in no way.
        self.stream_plan = self._plan_streams()
        note = self.stream_plan.note(self.path)
        if note:
            self.notices.append(note)
        if pix_fmt is not None and self.kind == "video":
            supported = {fmt.name for fmt in (av.codec.Codec(codec, "w").video_formats or ())}
            if supported and pix_fmt not in supported:
                raise OutputError(f"{self.path}: the {codec} encoder cannot write pixel format {pix_fmt!r}")

    def planes_format(self, source: PlaneFormat, height: int, width: int) -> PlaneFormat | None:
        """The planes this writer encodes frames of ``source`` into without swscale, or None when it cannot.

        The output keeps the source's matrix and range, so its luma codes are the
        source's; its subsampling and depth are the encoder's pixel format.
        """
        if self.kind != "video":
            return None
        pix_fmt = self.pix_fmt or _video_pix_fmt(self.codec, width, height, source.bits > 8)
        layout = plane_format(pix_fmt)
        if layout is None:
            return None
        # a yuvj format is full range by name: the source's codes are then mapped onto it
        return layout.with_signal(source.matrix, layout.full_range or source.full_range)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: VideoFrame) -> None:
        """Encode one frame; its pts (in frame.time_base) is kept."""
        if self._closed:
            raise EncodeError(f"{self.path}: write() after close()")
        if self.kind == "image" and self.frames_written:
            raise EncodeError(f"{self.path}: an image output holds one frame; use a video extension for more")
        if self._container is None:
            self._open(frame)
        self._check_size(frame)
        if frame.yuv is not None:
            av_frame = self._planes_frame(frame)
        else:
            av_frame = _to_av_frame(frame)
        if self.kind == "video" and frame.yuv is None:
            av_frame = av_frame.reformat(format=self._stream.pix_fmt, dst_colorspace="ITU601", dst_color_range="MPEG")
        if self.kind == "video":
            av_frame.pts = self._next_pts(frame)
            av_frame.time_base = self.time_base
        try:
            for packet in self._stream.encode(av_frame):
                self._mux_video(packet)
        except (av.FFmpegError, OSError) as error:
            if self.frames_written == 0 and self.codec in HARDWARE_ENCODERS:
                raise EncodeError(f"{self.path}: the {self.codec} encoder could not start; it needs "
                                  f"{HARDWARE_ENCODERS[self.codec]} (use --codec libx264 without one)") from None
            raise EncodeError(f"{self.path}: encoding frame {frame.index} failed ({_reason(error)})") from None
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio, and move the file into place."""
        if self._closed:
            return
        if self._container is None:
            self.abort()
            raise EncodeError(f"{self.path}: no frames were written")
        try:
            for packet in self._stream.encode(None):
                self._mux_video(packet)
            if self._copier is not None:
                self._copier.finish()
            self._container.close()
            if not self.to_stdout:
                os.replace(self.temporary_path, self.path)
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise EncodeError(f"{self.path}: finishing the output failed ({_reason(error)})") from None
        self._closed = True

    def abort(self) -> None:
        """Stop writing and remove the temporary file; path is left as it was."""
        self._closed = True
        for closable in (self._copier, self._container):
            if closable is not None:
                try:
                    closable.close()
                except (av.FFmpegError, OSError):
                    pass  # the file is being thrown away; its trailer does not matter
        if not self.to_stdout:
            self.temporary_path.unlink(missing_ok=True)

    def _planes_frame(self, frame: VideoFrame) -> av.VideoFrame:
        """The frame's planes as they are when they are in the stream's format; else converted (swscale)."""
        av_frame = to_av_frame(frame.yuv)
        if self.kind == "video" and frame.yuv.format.pix_fmt == self._stream.pix_fmt:
            return av_frame
        if self.kind == "video":
            return av_frame.reformat(format=self._stream.pix_fmt, dst_colorspace="ITU601", dst_color_range="MPEG")
        return av_frame.reformat(format="rgb48le" if frame.yuv.format.bits > 8 else "rgb24")

    def _open(self, first: VideoFrame) -> None:
        height, width = first.size
        if self.template is not None:
            width, height = self.template.width, self.template.height
        deep = first.yuv.format.bits > 8 if first.yuv is not None else first.rgb.dtype == np.uint16
        try:
            if self.kind == "image":
                self._open_image(width, height, deep, first.alpha is not None)
            else:
                self._open_video(width, height, deep)
                if first.yuv is not None:
                    self._tag_planes(first.yuv.format)
        except (av.FFmpegError, ValueError, OSError) as error:
            self.abort()
            raise EncodeError(f"{self.path}: cannot start writing ({_reason(error)})") from None

    def _open_image(self, width: int, height: int, deep: bool, alpha: bool) -> None:
        # update=1: a single file, its name taken literally (no %d pattern).
        self._container = av.open(str(self.temporary_path), "w", format="image2", options={"update": "1"})
        self._stream = self._container.add_stream(self.codec, options={**_IMAGE_CODEC_OPTIONS.get(self.codec, {}), **self.options})
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = _image_pix_fmt(self.codec, deep, alpha)

    def _open_video(self, width: int, height: int, deep: bool) -> None:
        container_format = self.container_format
        muxer_options = {**MUXER_OPTIONS.get(container_format, {}),
                         **(PIPE_MUXER_OPTIONS.get(container_format, {}) if self.to_stdout else {})}
        self._container = av.open(str(self.temporary_path), "w", format=container_format, options=muxer_options)
        options = encoder_options(self.codec, self.crf, self.preset)
        stream = self._container.add_stream(self.codec, rate=self.frame_rate, options={**options, **self.options})
        stream.width, stream.height = width, height
        stream.pix_fmt = self.pix_fmt or _video_pix_fmt(self.codec, width, height, deep)
        stream.time_base = stream.codec_context.time_base = self.time_base
        stream.codec_context.colorspace = _AVCOL_SPC_SMPTE170M
        stream.codec_context.color_range = _AVCOL_RANGE_MPEG
        if self.template is not None and self.template.rotation:
            stream.set_display_rotation(self.template.rotation)
        self._stream = stream
        if self.stream_plan.kept:
            self._copier = copier_for(self.template, self._container, self.stream_plan)

    def _plan_streams(self) -> StreamPlan:
        if self.kind == "video":
            check_video_codec(self.container_format, self.codec, self.path)
        if self.kind != "video" or self.template is None or self.template.is_image:
            return StreamPlan([])
        return plan_for(self.template, self.container_format, self.path,
                        self.copy_audio, self.copy_subtitles)

    def _tag_planes(self, layout: PlaneFormat) -> None:
        """Frames given as planes in the stream's format go in as they are: tag their matrix and range."""
        if layout.pix_fmt == self._stream.pix_fmt:
            self._stream.codec_context.colorspace = AVCOL_SPC[layout.matrix]
            self._stream.codec_context.color_range = AVCOL_RANGE_JPEG if layout.full_range else AVCOL_RANGE_MPEG

    def _check_size(self, frame: VideoFrame) -> None:
        height, width = frame.size
        if (width, height) != (self._stream.width, self._stream.height):
            raise EncodeError(
                f"{self.path}: frame {frame.index} is {width}x{height}, the output is {self._stream.width}x{self._stream.height}"
            )

    def _next_pts(self, frame: VideoFrame) -> int:
        """The frame's pts in the writer's time base, strictly after the previous one."""
        if frame.pts is not None:
            source_time_base = frame.time_base or self.time_base
            pts = round(frame.pts * source_time_base / self.time_base)
        else:
            pts = None
        if self._last_pts is not None and (pts is None or pts <= self._last_pts):
            step = max(1, round(1 / (self.frame_rate * self.time_base)))
            pts = self._last_pts + (step if pts is None else 1)
            self.pts_adjusted += 1
        elif pts is None:
            pts = self.template.start_time if self.template is not None else 0
        self._last_pts = pts
        return pts

    def _mux_video(self, packet) -> None:
        if self._copier is not None and packet.dts is not None:
            self._copier.copy_until(packet.dts * packet.time_base)
        self._container.mux(packet)


def plan_for(reader: VideoReader, container_format: str, destination, audio: bool = True,
             subtitles: bool = True) -> StreamPlan:
    """The stream plan for writing reader's audio (and subtitles) into container_format."""
    streams = ([*reader.source_streams("audio")] if audio else []) + \
              ([*reader.source_streams("subtitle")] if subtitles else [])
    indices = [stream.index for stream in streams]
    packets = reader.peek_packets(indices, TRIAL_PACKETS) if reader.is_pipe else read_first_packets(reader.path, indices)
    plan = plan_streams(streams, container_format, destination, packets)
    if reader.is_pipe and plan.kept:
        reader.keep_side_packets = True  # before decoding starts: the one demux must keep them
    return plan


def copier_for(reader: VideoReader, output, plan: StreamPlan) -> StreamCopier:
    """A StreamCopier fed from a second handle on the source file, or from the reader's own demux (a pipe)."""
    indices = [choice.index for choice in plan.kept]
    if reader.is_pipe:
        return StreamCopier(reader.source_streams(), output, plan, reader.next_side_packet)
    streams, next_packet, close = file_packets(reader.path, indices)
    return StreamCopier(streams, output, plan, next_packet, close)
