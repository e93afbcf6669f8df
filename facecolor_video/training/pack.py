"""Training data packed at the training scale: WebP images in shards of a fixed byte budget.

``facecolor-video pack DATA_ROOT OUT_DIR`` reads the training and validation
sets of :mod:`.splits`, scales every image to the training scale (short side
128, never enlarged), encodes it as WebP and writes:

* ``train-NNN.webps`` shards, each at most ``shard_bytes`` long; the training
  images are shuffled (fixed seed) before they are cut into shards, so every
  shard is a random sample of all sets and any subset of shards trains on the
  same mix, only less of it. That is what lets the data travel in parts.
* ``val-NNN.webps`` shards with up to ``val_limit`` evenly spaced images of
  each validation set;
* ``manifest.json``: per set its split, image count and folders; per shard its
  bytes, sha256, image count and count per set.

A shard is the WebP files one after the other, then a JSON index (set,
offset, length, source name of each image), then the index's length as 8
little-endian bytes and the 8-byte magic ``FCPACK01``: a shard describes
itself, and a reader needs no file outside it to find its images.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from . import splits

MAGIC = b"FCPACK01"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
DEFAULT_SCALE = 128  # the training scale: the short side images are stored at
DEFAULT_QUALITY = 75
DEFAULT_SHARD_MB = 6.0
DEFAULT_VAL_LIMIT = 300
SHUFFLE_SEED = 20261129


# --------------------------------------------------------------------------- writing


def encode_webp(path: Path, scale: int, quality: int) -> bytes:
    """One image file -> WebP bytes, short side ``scale`` (smaller images keep their size)."""
    from PIL import Image

    from .evaluate import load_rgb

    image = Image.fromarray(load_rgb(path))  # EXIF orientation applied
    width, height = image.size
    factor = scale / min(width, height)
    if factor < 1:
        image = image.resize((max(1, round(width * factor)), max(1, round(height * factor))),
                             Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality, method=6)
    return buffer.getvalue()


def _encode_job(job: tuple[str, int, int]) -> bytes:
    path, scale, quality = job
    return encode_webp(Path(path), scale, quality)


@dataclass(frozen=True)
class _Entry:
    set_name: str
    source: str  # path relative to the data root: where the image came from
    path: Path


def _write_shard(path: Path, entries: list[tuple[_Entry, bytes]]) -> dict:
    index, offset = [], 0
    temporary = path.with_suffix(".partial")
    with open(temporary, "wb") as stream:
        for entry, blob in entries:
            stream.write(blob)
            index.append([entry.set_name, offset, len(blob), entry.source])
            offset += len(blob)
        index_bytes = json.dumps(index, separators=(",", ":")).encode()
        stream.write(index_bytes)
        stream.write(struct.pack("<Q", len(index_bytes)) + MAGIC)
    temporary.replace(path)
    counts = Counter(entry.set_name for entry, _ in entries)
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path),
            "images": len(entries), "sets": dict(sorted(counts.items()))}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _index_bytes(entry: _Entry, offset: int, length: int) -> int:
    return len(json.dumps([entry.set_name, offset, length, entry.source], separators=(",", ":"))) + 1


def _shards(split: str, encoded: list[tuple[_Entry, bytes]], out_dir: Path, shard_bytes: int) -> list[dict]:
    """Cut ``encoded`` (in its order) into shards of at most ``shard_bytes``, index and trailer included."""
    shards, current = [], []
    data_size, index_size = 0, 2 + 16  # the index's brackets and the trailer
    for entry, blob in encoded:
        needed = len(blob) + _index_bytes(entry, data_size, len(blob))
        if current and data_size + index_size + needed > shard_bytes:
            shards.append(_write_shard(out_dir / f"{split}-{len(shards):03d}.webps", current))
            current, data_size, index_size = [], 0, 2 + 16
            needed = len(blob) + _index_bytes(entry, 0, len(blob))
        if not current and index_size + needed > shard_bytes:
            raise InputError(f"{entry.path}: {len(blob)} bytes as WebP, larger than the shard budget")
        current.append((entry, blob))
        data_size += len(blob)
        index_size += needed - len(blob)
    if current:
        shards.append(_write_shard(out_dir / f"{split}-{len(shards):03d}.webps", current))
    return [dict(shard, split=split) for shard in shards]


def pack(
    root: str | Path,
    out_dir: str | Path,
    training_sets: dict[str, tuple[splits.Source, ...]] | None = None,
    validation_sets: dict[str, tuple[splits.Source, ...]] | None = None,
    scale: int = DEFAULT_SCALE,
    quality: int = DEFAULT_QUALITY,
    shard_mb: float = DEFAULT_SHARD_MB,
    val_limit: int | None = DEFAULT_VAL_LIMIT,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Pack the training and validation sets under ``root`` into ``out_dir``; returns the manifest's path."""
    root, out_dir = Path(root), Path(out_dir)
    training_sets = splits.TRAINING_SETS if training_sets is None else training_sets
    validation_sets = splits.VALIDATION_SETS if validation_sets is None else validation_sets
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists() and not overwrite:
        raise InputError(f"{manifest_path}: a pack is already there (use --overwrite to replace it)")
    shard_bytes = int(shard_mb * 1024 * 1024)
    # every folder is listed before any image is encoded: a missing one fails at once
    chosen = {"train": _entries(training_sets, root, None), "val": _entries(validation_sets, root, val_limit)}
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in list(out_dir.glob("train-*.webps")) + list(out_dir.glob("val-*.webps")):
        old.unlink()
    manifest = {"format": FORMAT_VERSION, "scale": scale, "quality": quality, "shard_bytes": shard_bytes,
                "shuffle_seed": SHUFFLE_SEED, "sets": {}, "shards": []}
    for split, entries in chosen.items():
        if split == "train":
            random.Random(SHUFFLE_SEED).shuffle(entries)
        encoded = _encode_all(entries, scale, quality, jobs, progress, split)
        manifest["shards"] += _shards(split, encoded, out_dir, shard_bytes)
        sets = training_sets if split == "train" else validation_sets
        for name, sources in sets.items():
            manifest["sets"][name] = {
                "split": split,
                "images": sum(1 for entry in entries if entry.set_name == name),
                "folders": [s.folder for s in sources],
                "bytes": sum(len(blob) for entry, blob in encoded if entry.set_name == name),
            }
    temporary = manifest_path.with_suffix(".partial")
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    temporary.replace(manifest_path)
    return manifest_path


def _entries(sets: dict[str, tuple[splits.Source, ...]], root: Path, limit: int | None) -> list[_Entry]:
    entries = []
    for name, sources in sets.items():
        paths = splits.set_paths(sources, root, limit)
        if not paths:
            raise InputError(f"{name}: no images under {', '.join(str(root / s.folder) for s in sources)}")
        entries += [_Entry(name, p.relative_to(root).as_posix(), p) for p in paths]
    return entries


def _encode_all(entries: list[_Entry], scale: int, quality: int, jobs: int, progress: bool,
                label: str) -> list[tuple[_Entry, bytes]]:
    from tqdm import tqdm

    work = [(str(entry.path), scale, quality) for entry in entries]
    bar = tqdm(total=len(work), desc=f"pack {label}", unit="image", disable=not progress, file=sys.stderr)
    blobs = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for blob in pool.map(_encode_job, work, chunksize=32):
                blobs.append(blob)
                bar.update(1)
    else:
        for job in work:
            blobs.append(_encode_job(job))
            bar.update(1)
    bar.close()
    return list(zip(entries, blobs))


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class PackedImage:
    """Where one image lies: shard file, byte range; and which set it belongs to."""

    shard: str
    offset: int
    length: int
    set_name: str
    source: str
    scale: int  # the short side the pack stores images at


def read_shard_index(path: Path) -> list[list]:
    with open(path, "rb") as stream:
        stream.seek(-16, 2)
        trailer = stream.read(16)
        if trailer[8:] != MAGIC:
            raise InputError(f"{path}: not a packed shard (no {MAGIC.decode()} trailer)")
        (length,) = struct.unpack("<Q", trailer[:8])
        stream.seek(-16 - length, 2)
        return json.loads(stream.read(length))


class Pack:
    """A pack's manifest and the shards of it present beside the manifest.

    Shards may be missing (a pack travels in parts): ``images()`` uses the ones
    present, each checked against the manifest's size and sha256 first.
    """

    def __init__(self, manifest_path: str | Path):
        self.manifest_path = Path(manifest_path)
        try:
            self.manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"{self.manifest_path}: cannot read the pack's manifest ({error})") from None
        if self.manifest.get("format") != FORMAT_VERSION:
            raise InputError(f"{self.manifest_path}: not a pack manifest of format {FORMAT_VERSION}")
        self.folder = self.manifest_path.parent

    def set_names(self, split: str) -> list[str]:
        return [name for name, info in self.manifest["sets"].items() if info["split"] == split]

    def present_shards(self, split: str) -> tuple[list[dict], list[dict]]:
        """(present, missing) shards of ``split``; a present one that differs from the manifest is an error."""
        present, missing = [], []
        for shard in self.manifest["shards"]:
            if shard["split"] != split:
                continue
            path = self.folder / shard["file"]
            if not path.is_file():
                missing.append(shard)
                continue
            if path.stat().st_size != shard["bytes"] or _sha256(path) != shard["sha256"]:
                raise InputError(f"{path}: size or sha256 differs from {self.manifest_path.name} "
                                 "(a truncated copy, or a shard of another pack)")
            present.append(shard)
        return present, missing

    def images(self, split: str) -> dict[str, list[PackedImage]]:
        """Set name -> its images in the present shards (sets in manifest order)."""
        present, missing = self.present_shards(split)
        if not present:
            raise InputError(f"{self.folder}: none of the {len(missing)} {split} shards of the pack is here")
        if missing:
            print(f"pack: {len(present)} of {len(present) + len(missing)} {split} shards present; "
                  f"using {sum(s['images'] for s in present)} of "
                  f"{sum(s['images'] for s in present + missing)} images", file=sys.stderr, flush=True)
        by_set: dict[str, list[PackedImage]] = {name: [] for name in self.set_names(split)}
        for shard in present:
            path = str(self.folder / shard["file"])
            for set_name, offset, length, source in read_shard_index(Path(path)):
                by_set.setdefault(set_name, []).append(
                    PackedImage(path, offset, length, set_name, source, self.manifest["scale"]))
        return {name: images for name, images in by_set.items() if images}


def is_pack(path: str | Path) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix == ".json"


_open_shards: dict[str, np.memmap] = {}


def decode(image: PackedImage) -> torch.Tensor:
    """The packed image as uint8 RGB (3, H, W)."""
    # Pillow's libwebp, as `pack` wrote it (torchvision's decode_webp is deprecated from 0.29 on)
    from PIL import Image

    shard = _open_shards.get(image.shard)
    if shard is None:  # one map per shard and process (DataLoader workers map their own)
        shard = _open_shards[image.shard] = np.memmap(image.shard, dtype=np.uint8, mode="r")
    with Image.open(io.BytesIO(shard[image.offset:image.offset + image.length].tobytes())) as webp:
        rgb = np.asarray(webp.convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def summary(manifest_path: str | Path) -> str:
    """A short text of a pack: images and bytes per set, shards and their sizes."""
    manifest = json.loads(Path(manifest_path).read_text())
    lines = [f"{'set':<16} {'split':<5} {'images':>7} {'MB':>7}"]
    for name, info in manifest["sets"].items():
        lines.append(f"{name:<16} {info['split']:<5} {info['images']:>7} {info['bytes'] / 1e6:>7.2f}")
    for split in ("train", "val"):
        shards = [s for s in manifest["shards"] if s["split"] == split]
        total = sum(s["bytes"] for s in shards)
        lines.append(f"{split}: {len(shards)} shards, {total / 2**20:.1f} MiB "
                     f"(largest {max((s['bytes'] for s in shards), default=0) / 2**20:.2f} MiB)")
    return "\n".join(lines)
