"""Which images of the shared research data train the model and which validate it.

Every rule is a pure function of a file's name, so the split is the same on
every machine, in every run, whatever order the files are listed in:

* ``people``: the YouTube Faces persons whose name's sha1 is divisible by 7
  (all frames of one person stay on one side) and the street-fashion photos
  whose number is divisible by 7.
* ``plain_backdrops``: all of ``portraits/webmorph`` (light gray and lavender
  studio walls) and the ``portraits/bundestag`` files whose name's sha1 is
  divisible by 4 (bucket 0 of 4: red, gray and white studio backdrops).
* ``utkface_val`` and ``bsds500_test``: the sets' own validation and test folders.

Training uses everything else: see :data:`TRAINING_SETS`. Paths are relative
to the data root (``../shared/data`` beside the project, or ``FACECOLOR_DATA``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .evaluate import iter_images

DATA_ENV = "FACECOLOR_DATA"
PERSON_BUCKETS = 7
BACKDROP_BUCKETS = 4


def name_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16)


def youtube_person(path: Path) -> str:
    """``training_Kate_Winslet_51.jpg`` -> ``Kate_Winslet``."""
    return re.sub(r"^(training|test)_", "", re.sub(r"_\d+$", "", Path(path).stem))


def held_out_person(path: Path) -> bool:
    return name_hash(youtube_person(path)) % PERSON_BUCKETS == 0


def held_out_street_photo(path: Path) -> bool:
    return int(Path(path).stem) % PERSON_BUCKETS == 0


def held_out_backdrop(path: Path) -> bool:
    return name_hash(Path(path).stem) % BACKDROP_BUCKETS == 0


@dataclass(frozen=True)
class Source:
    """One folder of the data root, with an optional rule choosing part of its files."""

    folder: str
    keep: Callable[[Path], bool] | None = None

    def paths(self, root: Path) -> list[Path]:
        folder = root / self.folder
        if not folder.is_dir():
            raise InputError(f"{folder}: data folder not found (set {DATA_ENV} or --data-root)")
        found = iter_images([folder])
        return [p for p in found if self.keep is None or self.keep(p)]


def _not(rule: Callable[[Path], bool]) -> Callable[[Path], bool]:
    return lambda path: not rule(path)


# name -> the folders (and rules) it is made of; the order is the order of --mix shares
TRAINING_SETS: dict[str, tuple[Source, ...]] = {
    "utkface": (Source("faces/utkface/train"),),
    "youtube_faces": (Source("people/youtube_faces", _not(held_out_person)),),
    "street_fashion": (Source("people/street_fashion", _not(held_out_street_photo)),),
    "imagenette": (Source("scenes/imagenette"),),
    "imagenet_sample": (Source("scenes/imagenet_sample"),),
    "bsds500": (Source("scenes/bsds500/train"), Source("scenes/bsds500/val")),
    "mebeauty": (Source("portraits/mebeauty"),),
    "bundestag": (Source("portraits/bundestag", _not(held_out_backdrop)),),
    "clothing": (Source("objects/clothing"),),
}

VALIDATION_SETS: dict[str, tuple[Source, ...]] = {
    "utkface_val": (Source("faces/utkface/val"),),
    "people": (Source("people/youtube_faces", held_out_person),
               Source("people/street_fashion", held_out_street_photo)),
    "plain_backdrops": (Source("portraits/webmorph"), Source("portraits/bundestag", held_out_backdrop)),
    "bsds500_test": (Source("scenes/bsds500/test"),),
}

# grayed colour clips scored by `eval --suite` next to the photo sets
VALIDATION_CLIPS: tuple[str, ...] = ("video/bikes.mp4", "video/carphone.mp4")


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The shared data folder: the explicit one, else ``FACECOLOR_DATA``, else ``../shared/data``."""
    if explicit:
        root = Path(explicit)
    elif os.environ.get(DATA_ENV):
        root = Path(os.environ[DATA_ENV])
    else:
        root = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not root.is_dir():
        raise InputError(f"{root}: data folder not found (set {DATA_ENV} or pass the folder)")
    return root


def set_paths(sources: tuple[Source, ...], root: Path, limit: int | None = None) -> list[Path]:
    """The files of one set, sorted; ``limit`` keeps that many evenly spaced ones."""
    paths = sorted((p for source in sources for p in source.paths(root)), key=lambda p: p.as_posix())
    if limit is not None and limit < len(paths):
        paths = [paths[i * len(paths) // limit] for i in range(limit)]
    return paths
