"""Choosing the encoder's settings: its options for a quality and a speed, and its pixel format."""

from __future__ import annotations

import av

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


def video_pix_fmt(codec_name: str, width: int, height: int, deep: bool) -> str:
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


def image_pix_fmt(codec_name: str, deep: bool, alpha: bool) -> str:
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


IMAGE_CODEC_OPTIONS = {
    "mjpeg": {"qmin": "1", "qmax": "2"},
    "libwebp": {"quality": "95"},
}
