"""Deprecated: joining segment files moved to ``facecolor_video.media.segment_files``."""

import warnings

from ..media.segment_files import join_segments

__all__ = ["join_segments"]

warnings.warn("facecolor_video.scale.join is deprecated; import join_segments from "
              "facecolor_video.media.segment_files", DeprecationWarning, stacklevel=2)
