"""One table of defaults with their ranges, shared by the click options and the library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    default: object
    minimum: int | float | None = None
    maximum: int | float | None = None
    help: str = ""


SETTINGS: dict[str, Setting] = {
    "model": Setting("general", help="model name (general) or a head file from `train`"),
    "batch_size": Setting(8, 1, 1024, "frames per batch through the network"),
    "render_size": Setting(128, 32, 8192, "short side, in pixels, at which a*b* is predicted (luminance stays full size)"),
    "global_every": Setting(48, 1, 10000, "compute VGG16 global features every Nth frame (and at each scene cut)"),
    "threads": Setting(0, 0, 256, "torch intra-op threads while colorizing (0: auto, on a CPU one less than the cores)"),
    "smooth": Setting("window", help="temporal smoothing of a*b*: window, ema or none"),
    "smooth_radius": Setting(4, 0, 16, "frames on each side averaged by --smooth window"),
    "crf": Setting(18, 0, 51, "encoder quality (lower is better, larger files)"),
    "preset": Setting("medium", help="encoder speed/size preset (libx264: ultrafast ... veryslow)"),
    "codec": Setting("libx264", help="video encoder"),
    "pix_fmt": Setting(None, help="video pixel format (yuv420p, yuv422p, yuv444p, yuv420p10le, ...; "
                                  "default: 4:2:0, 4:4:4 at odd sizes, 10-bit for deep sources)"),
    "every": Setting(240, 1, None, "preview: take every Nth frame"),
    "faces": Setting("auto", help="auto: each face found is colorized from a close-up crop of its own; off: not"),
}

SMOOTH_MODES = ("window", "ema", "none")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
FACE_MODES = ("auto", "off")


def default(name: str):
    return SETTINGS[name].default
