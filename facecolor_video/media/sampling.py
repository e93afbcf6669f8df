"""Picking every Nth frame of a film without decoding all of it.

Only the frames asked for are decoded when the film allows it: between two
picked frames the sampler either decodes on (cheap when they sit in the same
keyframe interval) or seeks to the keyframe before the next one (cheap when a
keyframe lies between them). It learns the keyframe interval from the packets
it reads, so a long-GOP film is decoded once, linearly, and a film with short
GOPs is visited keyframe by keyframe.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from ..errors import DecodeError
from .frames import VideoFrame, decoded_to_video_frame
from .reader import VideoReader

# Never seek across less than this: a keyframe that close is rare, and the
# decoder flush costs more than the few frames it saves.
MIN_SEEK_SECONDS = Fraction(1)


@dataclass
class PickedFrame:
    """One frame of the sheet: the source picture, its time and its number in the film."""

    frame: VideoFrame
    time: Fraction  # seconds, pts * time_base (absolute, as the file says)
    number: int  # (time - start) * frame_rate, rounded: the frame's index in a constant-rate film


def format_timestamp(seconds) -> str:
    """Seconds (Fraction, float or int) -> ``HH:MM:SS.mmm``, rounded to the millisecond."""
    millis = math.floor(Fraction(seconds) * 1000 + Fraction(1, 2))
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


class FrameSampler:
    """Yields the first frame at or after each target time ``k * every / frame_rate`` from the start.

    seek: None decides per gap (seek when the gap is longer than any keyframe
    interval seen so far, and than MIN_SEEK_SECONDS); False always decodes on;
    True seeks whenever the gap exceeds MIN_SEEK_SECONDS.
    A frame whose time is within half a frame period before a target counts as
    at the target (pts are often rounded), and each frame is picked at most once.
    Targets at or past the end of the duration the file declares are not
    looked for (no frame can start there).
    """

    def __init__(self, reader: VideoReader, every: int, seek: bool | None = None):
        self.reader = reader
        self.every = every
        self.seek_mode = seek
        self.frame_rate = reader.frame_rate
        self.time_base = reader.time_base
        self.start = reader.start_time * self.time_base
        self.tolerance = 1 / (2 * self.frame_rate)
        # past the end the file declares, a target is not looked for: seeking
        # there would decode the last keyframe interval for nothing
        duration = reader.duration
        self.end = self.start + duration if duration and not reader.is_image else None
        self.frames_decoded = 0
        self.seeks = 0
        self.decode_errors = 0
        self._container = av.open(str(reader.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._packets: Iterator | None = None
        self._pending: list[av.VideoFrame] = []
        self._position: Fraction | None = None  # time of the last frame decoded
        # what the packets read so far tell about keyframes (times in seconds)
        self._last_keyframe: Fraction | None = None
        self._latest_packet: Fraction | None = None
        self._keyframe_interval = Fraction(0)
        self._missing_pts = False

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> FrameSampler:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def target(self, k: int) -> Fraction:
        return self.start + Fraction(k * self.every) / self.frame_rate

    def __iter__(self) -> Iterator[PickedFrame]:
        k = 0
        while True:
            target = self.target(k)
            if self.end is not None and target >= self.end and self.frames_decoded:
                return
            if self._packets is None:
                self._restart(None)
            elif self._should_seek(target):
                self._restart(target)
            picked = self._next_at_or_after(target)
            if picked is None:
                if self.frames_decoded == 0 and self.decode_errors:
                    raise DecodeError(f"{self.reader.path}: no frame could be decoded ({self.decode_errors} packets rejected)")
                return
            frame, seconds = picked
            number = round((seconds - self.start) * self.frame_rate)
            yield PickedFrame(decoded_to_video_frame(frame, number), seconds, number)
            # the next target after this frame (a long VFR frame can cover several)
            while self.target(k) <= seconds + self.tolerance:
                k += 1

    def _should_seek(self, target: Fraction) -> bool:
        if self.seek_mode is False or self._missing_pts or self._position is None:
            return False
        gap = target - self._position
        if gap <= MIN_SEEK_SECONDS:
            return False
        if self.seek_mode:
            return True
        return gap > self._keyframe_estimate()

    def _keyframe_estimate(self) -> Fraction:
        """The longest stretch known to hold no keyframe: seeking across less rarely lands later."""
        estimate = self._keyframe_interval
        if self._last_keyframe is not None and self._latest_packet is not None:
            estimate = max(estimate, self._latest_packet - self._last_keyframe)
        return estimate

    def _restart(self, target: Fraction | None) -> None:
        if self._packets is not None:
            self._packets.close()
        self._pending = []
        self._last_keyframe = None
        self._latest_packet = None
        if target is not None:
            # to the target itself, not target - tolerance: a keyframe right on the
            # target (N a multiple of the GOP) must not send the seek one GOP back
            pts = math.floor(target / self.time_base)
            try:
                self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
            except av.FFmpegError as error:
                raise DecodeError(f"{self.reader.path}: cannot seek to {format_timestamp(target)} ({error})") from None
            self.seeks += 1
        self._packets = self._container.demux(self._stream)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        while True:
            if self._pending:
                yield self._pending.pop(0)
                continue
            try:
                packet = next(self._packets, None)
            except av.FFmpegError as error:
                raise DecodeError(f"{self.reader.path}: reading the file failed ({error})") from None
            if packet is None:
                return
            self._note_packet(packet)
            try:
                self._pending = list(packet.decode())
            except av.FFmpegError:
                self.decode_errors += 1
            self.frames_decoded += len(self._pending)

    def _note_packet(self, packet) -> None:
        if packet.pts is None:
            return
        seconds = packet.pts * self.time_base
        if packet.is_keyframe:
            if self._last_keyframe is not None and seconds > self._last_keyframe:
                self._keyframe_interval = max(self._keyframe_interval, seconds - self._last_keyframe)
            self._last_keyframe = seconds
        if self._latest_packet is None or seconds > self._latest_packet:
            self._latest_packet = seconds

    def _next_at_or_after(self, target: Fraction) -> tuple[av.VideoFrame, Fraction] | None:
        for frame in self._decoded():
            if frame.pts is None:
                # no timestamps: count frames instead, and never seek
                self._missing_pts = True
                seconds = self.start if self._position is None else self._position + 1 / self.frame_rate
            else:
                seconds = frame.pts * self.time_base
            self._position = seconds
            if seconds >= target - self.tolerance:
                return frame, seconds
        return None
