"""Reading frames from a video or image, and writing them back with the source's
timestamps, audio and subtitles.

The work is done in the modules named after PyAV's roles; this module gathers
their public names, so that ``from facecolor_video.media.video import ...``
keeps working:

- ``frames``: ``VideoFrame``, the decoded picture, and its conversion from PyAV;
- ``reader``: ``VideoReader``, frames with their timestamps, and the source's other streams;
- ``encoders``: the encoder's options and pixel format;
- ``writer``: ``VideoWriter``, atomic output with timestamps, audio and subtitles kept;
- ``remux``: the plan for the source's audio and subtitles, and their copier.
"""

from .encoders import HARDWARE_ENCODERS, encoder_options
from .frames import VideoFrame, decoded_to_video_frame
from .reader import FALLBACK_FRAME_RATE, STDIO, StreamInfo, VideoReader
from .remux import copier_for, plan_for
from .writer import VideoWriter

__all__ = [
    "FALLBACK_FRAME_RATE",
    "HARDWARE_ENCODERS",
    "STDIO",
    "StreamInfo",
    "VideoFrame",
    "VideoReader",
    "VideoWriter",
    "copier_for",
    "decoded_to_video_frame",
    "encoder_options",
    "plan_for",
]
