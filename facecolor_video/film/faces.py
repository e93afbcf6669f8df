"""Faces get their close-up: each face is colorized from a crop at the model's training scale.

The work is done in two modules; this one gathers their public names, so that
``from facecolor_video.film.faces import ...`` keeps working:

- ``face_crops``: one picture's part: the crop around a face, its colour, the
  feathered ellipse it is pasted through, and the stills path (``refine_stills``);
- ``face_tracks``: faces over a film: tracked between detections, their crops'
  colour kept and blended in (``FaceRefiner``, the pipeline's face stage).
"""

from .face_crops import (
    CLOSE_UP_RENDER_HEIGHT,
    CROP_EXPAND,
    CROP_SIZE,
    ELLIPSE_INNER,
    ELLIPSE_OUTER,
    ELLIPSE_SCALE,
    MIN_FACE,
    FaceCrop,
    colorize_crops,
    crop_lightness,
    ellipse_mask,
    paste_crop_ab,
    refinable,
    refine_stills,
)
from .face_tracks import (
    CONTINUE_SCORE,
    CROP_MEMORY,
    DETECT_EVERY,
    MATCH_IOU,
    MAX_TRACKS,
    MISSES_ALLOWED,
    REACH,
    RECOLOUR_EVERY,
    SIZE_RATIO,
    VELOCITY_SMOOTHING,
    FaceBlender,
    FacePlacement,
    FaceRefiner,
    FaceTracker,
    Track,
    box_iou,
    draw_faces,
)

__all__ = [
    "CLOSE_UP_RENDER_HEIGHT", "CONTINUE_SCORE", "CROP_EXPAND", "CROP_MEMORY", "CROP_SIZE", "DETECT_EVERY",
    "ELLIPSE_INNER", "ELLIPSE_OUTER", "ELLIPSE_SCALE", "MATCH_IOU", "MAX_TRACKS", "MIN_FACE", "MISSES_ALLOWED",
    "REACH", "RECOLOUR_EVERY", "SIZE_RATIO", "VELOCITY_SMOOTHING", "FaceBlender", "FaceCrop", "FacePlacement",
    "FaceRefiner", "FaceTracker", "Track", "box_iou", "colorize_crops", "crop_lightness", "draw_faces",
    "ellipse_mask", "paste_crop_ab", "refinable", "refine_stills",
]
