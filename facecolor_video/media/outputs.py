"""Output paths: which extensions we write, and checks made before any work starts."""

from __future__ import annotations

import json
import os
import secrets
import shutil
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


# Bits per pixel of H.264 at CRF 18 on film (measured on the test clips and Chaplin: 0.05-0.2); each 6 CRF
# steps halve it. The larger figure: the estimate is for a warning, which should not come too late.
BITS_PER_PIXEL_AT_CRF_18 = 0.2


def estimate_output_bytes(width: int, height: int, frame_rate: float, seconds: float, source_bytes: int = 0,
                          crf: int = 18) -> int:
    """A generous estimate of a colorized film's size: the larger of the source's size and what H.264 at ``crf`` gives.

    The audio is copied, so a source's own size is a floor; a gray source that
    was coded very small grows by its colour, hence the per-pixel estimate.
    """
    bits_per_pixel = BITS_PER_PIXEL_AT_CRF_18 * 2 ** ((18 - crf) / 6)
    return int(max(source_bytes, width * height * frame_rate * seconds * bits_per_pixel / 8))


def space_shortfall(destination: str | os.PathLike, needed_bytes: int) -> str | None:
    """A line saying the output's folder is short of space for ``needed_bytes``, or None when it has room."""
    destination = Path(destination)
    folder = destination.parent if str(destination.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= needed_bytes:
        return None
    return (f"{destination}: about {_size(needed_bytes)} is needed but {folder} has {_size(free)} free; "
            "the run may stop when the disk is full (free space, or write elsewhere)")


def space_warning(reader, destination, crf: int = 18, copies: int = 1) -> str | None:
    """Before decoding: a line when the output's folder clearly lacks room for the film ``reader`` opened.

    ``copies``: how many times the output's size is on disk at the peak (2 for
    a segmented run: its segments and the joined film). None for stdout,
    stills and sources of unknown length (a pipe, mostly).
    """
    if str(destination) == "-" or reader.is_image or not reader.duration:
        return None
    source_bytes = 0 if str(reader.path) == "-" else reader.path.stat().st_size
    needed = estimate_output_bytes(reader.width, reader.height, float(reader.frame_rate), float(reader.duration),
                                   source_bytes, crf)
    return space_shortfall(destination, needed * copies)


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def temporary_path_for(destination: Path) -> Path:
    """Where a file is written before it is renamed to ``destination``.

    Same folder (so os.replace is atomic) and same extension (so the muxer is
    chosen right); hidden, and marked so a leftover is recognisable.
    """
    token = secrets.token_hex(4)
    return destination.with_name(f".{destination.stem}.partial-{token}{destination.suffix}")


def write_json_atomic(path: Path, value) -> None:
    """``value`` as JSON at ``path``, through a temporary file: a reader sees the old file or the new, whole."""
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(value, indent=1, default=str))
    os.replace(temporary, path)


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


class OutputLock:
    """One run at a time per output: an exclusive lock on ``.<name>.lock`` beside it.

    The lock is held by an open file, so the system drops it when the process
    ends, however it ends: a crashed run never leaves a stale lock. Where the
    system has no ``flock`` (Windows), there is no lock.
    """

    def __init__(self, destination: str | os.PathLike):
        destination = Path(destination)
        self.destination = destination
        self.path = destination.with_name(f".{destination.name}.lock")
        self._file = None

    def acquire(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:
            return self
        while True:
            stream = open(self.path, "a+")
            try:
                fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stream.close()
                raise OutputError(f"{self.destination}: another run is writing this output now ({self.path} is "
                                  "locked); let it finish, or stop it first") from None
            try:  # the holder before us may have removed the file as it let go: lock the one on disk
                current = os.stat(self.path).st_ino == os.fstat(stream.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                self._file = stream
                return self
            stream.close()

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)  # while still held: a waiting run then takes a new file
            self._file.close()
            self._file = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
