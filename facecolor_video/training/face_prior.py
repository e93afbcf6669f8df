"""The face prior: the global features every face crop is colorized with.

A face crop's own VGG16 pass costs as much as a frame's (about 150 ms on one
CPU thread) and describes whatever the crop happens to show: hair, a hat, the
backdrop, a film's flicker. The mean of VGG16's global features over many
training face crops describes "a face" instead, costs nothing per face, and
does not change from one crop of the same face to the next. On wide shots it
also colours better (mean CIEDE2000 inside the faces, 20 canvases of five
held-out portraits: 6.9 against 7.8 with each crop's own features).

    python -m facecolor_video.training.face_prior ../shared/data/faces/utkface/train \\
        --count 2048 -o weights/face_prior.pt

A head trained on global vectors of another VGG16 input size needs the
prior at that size too; ``--input-size 112 --update weights/face_prior-....pt``
adds it beside the vectors the file already holds.

The crops are cut the way the film's face stage cuts them (YuNet box,
``CROP_EXPAND``, 128 px), from images with exactly one face found.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..film.face_crops import FaceCrop, crop_lightness
from ..model.backbone import INPUT_SIZE, GlobalFeatures, build_global_features, face_prior_key
from ..model.color import rgb_to_lab
from ..model.face_detector import FaceDetector, load_face_detector
from ..model.weights import load_verified, sha256_of

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def evenly_spaced(paths: list[Path], count: int) -> list[Path]:
    """``count`` of the sorted paths, spread evenly over them (all when there are fewer)."""
    if count >= len(paths):
        return paths
    return [paths[round(i * len(paths) / count)] for i in range(count)]


@torch.no_grad()
def face_crops(detector: FaceDetector, paths: list[Path]) -> torch.Tensor:
    """The face crops' L (K, 1, 128, 128) of the images where the detector finds exactly one face."""
    crops = []
    for path in paths:
        rgb = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
        lightness = rgb_to_lab(rgb.permute(2, 0, 1).float().div(255)[None])[:, :1]
        found = detector.detect(lightness)[0]
        if len(found) == 1:
            crop = FaceCrop.around(found[0].box, *lightness.shape[-2:])
            crops.append(crop_lightness(lightness, [crop], [0])[0])
    if not crops:
        raise ValueError("no image with exactly one face found")
    return torch.stack(crops)


@torch.no_grad()
def compute_face_prior(global_features: GlobalFeatures, paths: list[Path], batch: int = 64) -> tuple[torch.Tensor, int]:
    """The mean VGG16 global features (512,) of the images' face crops (float32), and how many crops it averages."""
    crops = face_crops(load_face_detector(), paths)
    total = torch.zeros(512, dtype=torch.float64)
    for start in range(0, len(crops), batch):
        total += global_features(crops[start:start + batch]).double().sum(0)
    return (total / len(crops)).float(), len(crops)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the face prior: mean VGG16 global features of face crops.")
    parser.add_argument("folders", nargs="+", type=Path, help="folders of face photos (one face each)")
    parser.add_argument("--count", type=int, default=2048, help="photos to use, spread evenly over the sorted list")
    parser.add_argument("--input-size", type=int, default=INPUT_SIZE, help="VGG16's input square")
    parser.add_argument("--update", type=Path, help="a face prior file whose other vectors the output keeps")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = sorted(p for folder in args.folders for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    prior, crops = compute_face_prior(build_global_features(input_size=args.input_size),
                                      evenly_spaced(paths, args.count))
    kept = dict(load_verified(args.update, None)) if args.update else {}
    torch.save({**kept, face_prior_key(args.input_size): prior, "crops": torch.tensor(crops)}, args.output)
    print(f"{args.output}: mean of {crops} face crops, sha256 {sha256_of(args.output)}")


if __name__ == "__main__":
    main()
