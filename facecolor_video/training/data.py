"""Training data: image folders or packed sets as augmented crops, the sampling mix, cached global vectors.

A data source is an image folder (recursive) or one set of a pack (see
:mod:`.pack`). ``--mix`` gives each source its share of every epoch whatever
its size. With ``--cache-global-features`` each image's VGG16 global vector is
computed once, from the whole image as a film's frame gets it, and kept in
the run folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, WeightedRandomSampler
from torchvision.transforms import v2 as transforms

from ..errors import InputError
from ..model.backbone import INPUT_SIZE, to_input_size
from ..model.color import rgb_to_lab
from . import pack as packs
from .evaluate import iter_images


def lab_batch(rgb_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB (N, 3, H, W) -> L (N, 1, H, W) and a*b* (N, 2, H, W), float32."""
    lab = rgb_to_lab(rgb_uint8.float() / 255.0)
    return lab[:, :1], lab[:, 1:]


def load_uint8(item: Path | packs.PackedImage) -> torch.Tensor:
    """An image file or a packed image as uint8 RGB (3, H, W)."""
    if isinstance(item, packs.PackedImage):
        return packs.decode(item)
    with Image.open(item) as image:
        return transforms.functional.pil_to_tensor(image.convert("RGB"))


class ImageFolders(Dataset):
    """Image files or packed images, as augmented uint8 crops (3, S, S).

    With ``global_vectors`` (one row per image) an item is (crop, its image's global vector).
    """

    def __init__(self, paths: list[Path | packs.PackedImage], crop_size: int, min_scale: float,
                 augment: bool = True, global_vectors: torch.Tensor | None = None):
        self.paths = paths
        self.global_vectors = global_vectors
        if augment:
            self.transform = transforms.Compose([
                transforms.RandomResizedCrop(crop_size, scale=(min_scale, 1.0), antialias=True),
                transforms.RandomHorizontalFlip(),
            ])
        else:
            self.transform = transforms.Compose([
                transforms.Resize(crop_size, antialias=True),
                transforms.CenterCrop(crop_size),
            ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        crop = self.transform(load_uint8(self.paths[index]))
        if self.global_vectors is None:
            return crop
        return crop, self.global_vectors[index]


def evenly_spaced(items: list, limit: int | None) -> list:
    """At most ``limit`` items spread evenly over the list (all of them when it is shorter)."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


GLOBAL_FEATURES_NAME = "global_features.pt"
_FEATURES_BATCH = 16
_FEATURES_SAVE_EVERY = 16  # batches between saves: a killed run loses at most 256 images' work


def _image_key(item: Path | packs.PackedImage) -> str:
    if isinstance(item, packs.PackedImage):
        return f"{Path(item.shard).name}:{item.offset}:{item.length}"
    return str(Path(item).resolve())


@torch.no_grad()
def whole_image_global_features(images: list, global_features: torch.nn.Module, cache_path: Path,
                                device: torch.device, autocast, progress: bool = True) -> torch.Tensor:
    """(N, C) float16: the global vector of each whole image, as a film's frame gets it.

    Computed once per image and kept in ``cache_path`` (saved as it grows, so
    an interrupted run resumes where it stopped).
    """
    from tqdm import tqdm

    cache = torch.load(cache_path, weights_only=True) if cache_path.is_file() else {"keys": [], "vectors": []}
    known = dict(zip(cache["keys"], cache["vectors"]))
    size = getattr(global_features, "input_size", INPUT_SIZE)
    # vectors of another input size are other vectors: they never answer for this one
    keys = [_image_key(item) + ("" if size == INPUT_SIZE else f"@{size}") for item in images]
    missing = [index for index, key in enumerate(keys) if key not in known]

    def save():
        temporary = cache_path.with_suffix(".tmp")
        torch.save({"keys": list(known), "vectors": torch.stack(list(known.values()))}, temporary)
        temporary.replace(cache_path)

    bar = tqdm(total=len(missing), desc="global features of whole images", unit="image",
               disable=not progress or not missing, leave=False)
    for number, start in enumerate(range(0, len(missing), _FEATURES_BATCH), 1):
        batch = missing[start:start + _FEATURES_BATCH]
        lightness = torch.cat([to_input_size(lab_batch(load_uint8(images[index])[None])[0], size) for index in batch])
        with autocast():
            vectors = global_features(lightness.to(device)).float().half().cpu()
        known.update((keys[index], vector) for index, vector in zip(batch, vectors))
        bar.update(len(batch))
        if number % _FEATURES_SAVE_EVERY == 0:
            save()
    bar.close()
    if missing:
        save()
    return torch.stack([known[key] for key in keys])


def training_sources(data: list[str], split: str = "train") -> dict[str, list]:
    """Source name -> its images: a folder is one source (its name), a pack manifest one per set."""
    sources: dict[str, list] = {}
    for entry in data:
        if packs.is_pack(entry):
            for name, images in packs.Pack(entry).images(split).items():
                sources[_unique(name, sources)] = images
            continue
        paths = iter_images([entry])
        if not paths:
            raise InputError(f"{entry}: no images (jpg, png, webp, bmp, tiff) found")
        sources[_unique(Path(entry).name, sources)] = paths
    return sources


def _unique(name: str, taken: dict) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    return candidate


def mix_shares(mix: list[float] | dict[str, float] | None, names: list[str]) -> list[float] | None:
    """--mix as one share per source: a list in source order, or {name: share} (unnamed sources: 0)."""
    if mix is None:
        return None
    if isinstance(mix, dict):
        unknown = sorted(set(mix) - set(names))
        if unknown:
            raise InputError(f"--mix names {', '.join(unknown)}, which is no data source (sources: {', '.join(names)})")
        shares = [float(mix.get(name, 0.0)) for name in names]
    else:
        if len(mix) != len(names):
            raise InputError(f"--mix has {len(mix)} values for {len(names)} data sources ({', '.join(names)})")
        shares = [float(share) for share in mix]
    if any(share < 0 for share in shares) or sum(shares) <= 0:
        raise InputError("--mix shares must be >= 0 and not all 0")
    return shares


def weighted_sampler(per_source: list[list], mix: list[float] | None, epoch_size: int, seed: int):
    """Each source gets its share of the samples whatever its size (a small source repeats)."""
    if mix is None:
        return None
    weights = torch.cat([torch.full((len(items),), share / len(items)) for share, items in zip(mix, per_source)])
    return WeightedRandomSampler(weights, epoch_size, replacement=True, generator=torch.Generator().manual_seed(seed))
