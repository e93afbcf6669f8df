"""facecolor-video: colorize black-and-white films and photos, faces first.

The library face::

    from facecolor_video import colorize_video, Colorizer
    colorize_video("old_film.mp4", "film_color.mp4")          # a whole film, audio kept
    colorizer = Colorizer(device="cpu")                        # or feed your own frames:
    rgb_out = colorizer.colorize(frames)                       # (N, H, W, 3) uint8 -> same
"""

from .errors import FacecolorError
from .film.pipeline import (
    ColorizeOptions,
    ColorizeReport,
    colorize_file,
    colorize_video,
)
from .film.preview import make_preview
from .model.colorizer import Colorizer, load_head

__all__ = [
    "Colorizer",
    "ColorizeOptions",
    "ColorizeReport",
    "FacecolorError",
    "colorize_file",
    "colorize_video",
    "load_head",
    "make_preview",
]
__version__ = "0.1.0"
