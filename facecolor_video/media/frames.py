"""The decoded picture the pipeline passes along, and its conversion from PyAV's frames."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .planes import YuvPlanes


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


def is_deep(video_format) -> bool:
    """True when a pixel format holds more than 8 bits in a colour channel."""
    return any(component.bits > 8 for component in video_format.components if not component.is_alpha)


def has_alpha(video_format) -> bool:
    return any(component.is_alpha for component in video_format.components)


def decoded_to_video_frame(frame: av.VideoFrame, index: int) -> VideoFrame:
    """Convert a decoded frame to RGB, keeping its depth, range and alpha.

    swscale reads the frame's own colour range and matrix, so full-range
    (yuvj) and 10-bit sources come out right.
    """
    deep = is_deep(frame.format)
    alpha = None
    if has_alpha(frame.format):
        rgba = frame.to_ndarray(format="rgba64le" if deep else "rgba")
        rgb, alpha = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    else:
        rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))
    return VideoFrame(rgb=rgb, pts=frame.pts, time_base=frame.time_base, alpha=alpha, index=index)
