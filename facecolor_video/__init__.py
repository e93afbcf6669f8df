"""facecolor-video: colorize black-and-white films and photos, faces first.

The library face::

    from facecolor_video import colorize_video, Colorizer
    colorize_video("old_film.mp4", "film_color.mp4")          # a whole film, audio kept
    colorizer = Colorizer(device="cpu")                        # or feed your own frames:
    rgb_out = colorizer.colorize(frames)                       # (N, H, W, 3) uint8 -> same
"""

from importlib import import_module

from .errors import FacecolorError

# Imported on first use, so that training (``facecolor_video.training``) runs
# where PyAV, which only the film pipeline needs, is not installed.
_LAZY = {
    "ColorizeOptions": "film.pipeline",
    "ColorizeReport": "film.pipeline",
    "colorize_file": "film.pipeline",
    "colorize_video": "film.pipeline",
    "make_preview": "film.preview",
    "Colorizer": "film.stills",
    "load_head": "model.colorizer",
}

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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
