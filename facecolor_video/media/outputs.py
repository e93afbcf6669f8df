"""Output paths: which extensions we write, and checks made before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputError

# Extension -> the image encoder that writes it (through PyAV's image2 muxer).
IMAGE_CODECS = {
    ".png": "png",
    ".jpg": "mjpeg",
    ".jpeg": "mjpeg",
    ".webp": "libwebp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}
# Extension -> the muxer that writes it. All of them take H.264 video with any
# pts (so VFR survives) and AAC audio.
VIDEO_CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
}
# Options each muxer is opened with. Matroska stores only pts, so the encoder's negative
# start dts (B-frames) must not shift the whole film later (FFmpeg's default would).
MUXER_OPTIONS = {"matroska": {"avoid_negative_ts": "disabled"}}
# --format NAME -> the muxer that writes a stream to stdout ("-"), and the options it needs there:
# MP4 and MOV cannot seek back on a pipe to write their index, so they are written fragmented.
PIPE_FORMATS = {"nut": "nut", "mkv": "matroska", "matroska": "matroska", "ts": "mpegts", "mpegts": "mpegts",
                "mp4": "mp4", "mov": "mov"}
PIPE_MUXER_OPTIONS = {"mp4": {"movflags": "frag_keyframe+empty_moov"}, "mov": {"movflags": "frag_keyframe+empty_moov"}}
IMAGE_EXTENSIONS = frozenset(IMAGE_CODECS)
VIDEO_EXTENSIONS = frozenset(VIDEO_CONTAINERS)


def pipe_format(name: str | None, destination="-") -> str:
    """The muxer for --format NAME on stdout; OutputError for a missing or unknown name."""
    key = (name or "").lower().lstrip(".")
    if key not in PIPE_FORMATS:
        raise OutputError(f"{destination}: writing to stdout needs --format, one of {', '.join(sorted(PIPE_FORMATS))}")
    return PIPE_FORMATS[key]


def output_kind(path) -> str:
    """'image' or 'video' from the extension; OutputError for any other extension."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    known = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
    raise OutputError(f"{path}: unknown output extension {suffix or '(none)'!r}; use one of {known}")


def check_output_path(src, dst, overwrite: bool = False) -> Path:
    """Check that dst can be written without harming src; return dst as a Path.

    Raises OutputError when dst has an unknown extension, is src itself (by any
    path, symlink or hard link), exists and overwrite is False, or sits in a
    folder that is missing or not writable.
    """
    if str(dst) == "-":
        return Path(dst)  # stdout: nothing to overwrite, nothing of the input's to harm
    dst = Path(dst)
    output_kind(dst)
    if _same_file(src, dst):
        raise OutputError(f"{dst}: output is the same file as the input {src}; choose another name")
    if dst.is_dir():
        raise OutputError(f"{dst}: output is a directory; give a file name")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: output exists; pass --overwrite to replace it")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{dst}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{dst}: output folder {parent} is not writable")
    return dst


def _same_file(src, dst: Path) -> bool:
    # An existing dst may be a symlink or a hard link to src: compare inodes.
    # A dst that does not exist yet can still name src through a symlinked folder.
    if src is None:
        return False
    src = Path(src)
    if dst.exists() and src.exists():
        return os.path.samefile(src, dst)
    return os.path.realpath(src) == os.path.realpath(dst)
