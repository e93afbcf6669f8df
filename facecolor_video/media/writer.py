"""Writing frames to a video or an image file, atomically, with the source's timestamps, audio and subtitles.

An image output goes through the image2 muxer as a single file.
"""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import EncodeError, OutputError
from .encoders import HARDWARE_ENCODERS, IMAGE_CODEC_OPTIONS, encoder_options, image_pix_fmt, video_pix_fmt
from .frames import VideoFrame
from .outputs import (
    IMAGE_CODECS,
    MUXER_OPTIONS,
    PIPE_MUXER_OPTIONS,
    VIDEO_CONTAINERS,
    output_kind,
    pipe_format,
    temporary_path_for,
)
from .planes import AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG, AVCOL_SPC, PlaneFormat, plane_format, to_av_frame
from .reader import FALLBACK_FRAME_RATE, STDIO, VideoReader
from .remux import copier_for, plan_for
from .streams import StreamCopier, StreamPlan, check_video_codec


def _reason(error: BaseException) -> str:
    """Why a write failed, in words: a full disk says so plainly."""
    if getattr(error, "errno", None) == errno.ENOSPC:
        return "disk full: no space left on device"
    return str(error)


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
        pix_fmt = self.pix_fmt or video_pix_fmt(self.codec, width, height, source.bits > 8)
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
        self._stream = self._container.add_stream(self.codec, options={**IMAGE_CODEC_OPTIONS.get(self.codec, {}), **self.options})
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = image_pix_fmt(self.codec, deep, alpha)

    def _open_video(self, width: int, height: int, deep: bool) -> None:
        container_format = self.container_format
        muxer_options = {**MUXER_OPTIONS.get(container_format, {}),
                         **(PIPE_MUXER_OPTIONS.get(container_format, {}) if self.to_stdout else {})}
        self._container = av.open(str(self.temporary_path), "w", format=container_format, options=muxer_options)
        options = encoder_options(self.codec, self.crf, self.preset)
        stream = self._container.add_stream(self.codec, rate=self.frame_rate, options={**options, **self.options})
        stream.width, stream.height = width, height
        stream.pix_fmt = self.pix_fmt or video_pix_fmt(self.codec, width, height, deep)
        stream.time_base = stream.codec_context.time_base = self.time_base
        # what the writer's swscale conversion from RGB produces: BT.601 (SMPTE 170M), limited range
        stream.codec_context.colorspace = AVCOL_SPC["bt601"]
        stream.codec_context.color_range = AVCOL_RANGE_MPEG
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
