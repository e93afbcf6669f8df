"""Evaluate a colorizer against reference colour images and simple baselines.

The protocol: each colour image is turned into the gray image the colorizer
would see (:func:`to_gray_rgb`: CIE L kept, a* = b* = 0), the colorizer and the
baselines colour it back, and the outputs are compared with the original
(PSNR, SSIM, CIEDE2000, colourfulness). Baselines run in the same pass on the
same images, so their rows are directly comparable with the model's.

Images are numpy ``uint8`` arrays ``(H, W, 3)``, RGB, 0..255 throughout.
Needs scikit-image (the ``eval`` extra), imported lazily via
:mod:`facecolor_video.training.metrics`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import InputError
from . import metrics

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_BASELINES",
    "BATCH_SIZE",
    "iter_images",
    "load_rgb",
    "to_gray_rgb",
    "constant_ab_baseline",
    "dataset_mean_ab",
    "evaluate",
    "format_table",
    "results_to_json",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

#: Baselines run by default. ``None`` = the gray input returned unchanged;
#: ``"dataset"`` = constant a*b* equal to the mean a*b* of the evaluated
#: reference images (see :func:`evaluate` for every accepted spec).
DEFAULT_BASELINES: Mapping[str, Any] = {"gray": None, "mean_ab": "dataset"}

#: Images handed to ``colorize`` per call: bounds memory while letting a GPU model batch.
BATCH_SIZE = 16

StrPath = Union[str, PathLike]
Colorize = Callable[[list[np.ndarray]], Sequence[np.ndarray]]


# --------------------------------------------------------------------------- files


def iter_images(
    dirs: StrPath | Iterable[StrPath], recursive: bool = True, limit: int | None = None
) -> list[Path]:
    """Image files under ``dirs`` (one path or several), sorted, optionally thinned.

    Files with extensions jpg/jpeg/png/webp/bmp/tif/tiff (any case) are kept;
    a path that is itself such a file is included as is. Hidden files
    (``.name``, e.g. macOS ``._photo.jpg`` resource forks, which are not
    images) are skipped. The result is sorted by path so runs are repeatable.

    ``limit`` keeps ``limit`` evenly spaced files (indices ``i * n // limit``)
    rather than the first ``limit``: sorted folders are often grouped by
    source or subject, and a prefix would represent only the first groups.
    """
    if isinstance(dirs, (str, PathLike)):
        dirs = [dirs]
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit}")

    found: set[Path] = set()
    for d in dirs:
        root = Path(d)
        if root.is_file():
            if root.suffix.lower() in IMAGE_EXTENSIONS:
                found.add(root)
            continue
        if not root.is_dir():
            raise InputError(f"image folder not found: {root}")
        candidates = root.rglob("*") if recursive else root.iterdir()
        for p in candidates:
            if p.name.startswith("."):
                continue
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                found.add(p)

    paths = sorted(found, key=lambda p: p.as_posix())
    n = len(paths)
    if limit is not None and limit < n:
        paths = [paths[i * n // limit] for i in range(limit)]
    return paths


def load_rgb(path: StrPath) -> np.ndarray:
    """Read an image file as ``uint8 (H, W, 3)`` RGB.

    EXIF orientation is applied. Gray, palette, CMYK etc. are converted to RGB;
    transparent images are composited on white (dropping alpha would expose
    whatever colour sits under transparent pixels); 16-bit/float gray is
    scaled to 8 bits instead of being clipped.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(im, dtype=np.float64)
                peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
                gray = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=-1)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, rgba)
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise InputError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc


# --------------------------------------------------------------------------- colour


def to_gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """The gray image a colorizer sees: CIE L of ``rgb`` kept, a* = b* = 0.

    ``uint8 (H, W, 3)`` -> ``uint8 (H, W, 3)`` with R = G = B. Going through
    Lab (rather than e.g. Rec.601 luma) makes "keeps the input's luminance"
    measurable with :func:`metrics.luminance_psnr`; rounding to uint8 costs
    well under 1 L unit.
    """
    lab = metrics.rgb_to_lab(rgb)
    lab[..., 1:] = 0.0
    gray = metrics.lab_to_rgb(lab)
    # lab2rgb of a neutral colour gives R ~= G ~= B up to float error; after
    # rounding a channel may differ by 1. Force exact neutrality so the image
    # has zero chroma and colorfulness exactly 0.
    neutral = np.rint(gray.astype(np.float64).mean(axis=-1)).astype(np.uint8)
    return np.repeat(neutral[..., None], 3, axis=-1)


def constant_ab_baseline(rgb: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    """L of ``rgb`` with one constant ``(a*, b*)`` pair everywhere -> ``uint8 (H, W, 3)``.

    Out-of-gamut colours (e.g. strong chroma near black or white) are clipped
    to sRGB.
    """
    a, b = (float(v) for v in ab)
    lab = metrics.rgb_to_lab(rgb)
    lab[..., 1] = a
    lab[..., 2] = b
    return metrics.lab_to_rgb(lab)


def dataset_mean_ab(paths: Iterable[StrPath]) -> tuple[float, float]:
    """Pixel-weighted mean ``(a*, b*)`` over images (the classic "mean colour" guess)."""
    sum_a = sum_b = 0.0
    count = 0
    for p in paths:
        lab = metrics.rgb_to_lab(load_rgb(p))
        sum_a += float(lab[..., 1].sum())
        sum_b += float(lab[..., 2].sum())
        count += lab.shape[0] * lab.shape[1]
    if count == 0:
        raise InputError("no images to compute a mean a*b* from")
    return (sum_a / count, sum_b / count)


# --------------------------------------------------------------------------- evaluation


def _baseline_fn(name: str, spec: Any, paths: Sequence[Path]) -> Colorize:
    """Turn a baseline spec into a per-batch function ``list[gray] -> list[rgb]``."""
    if spec is None or spec == "gray":
        return lambda grays: [g.copy() for g in grays]
    if spec == "dataset":
        ab = dataset_mean_ab(paths)
        return lambda grays: [constant_ab_baseline(g, ab) for g in grays]
    if callable(spec):
        return spec
    try:
        a, b = spec
        ab = (float(a), float(b))
    except (TypeError, ValueError):
        raise ValueError(
            f"baseline {name!r}: expected None/'gray', 'dataset', an (a, b) pair "
            f"or a callable, got {spec!r}"
        ) from None
    return lambda grays: [constant_ab_baseline(g, ab) for g in grays]


def _check_outputs(name: str, grays: list[np.ndarray], outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    outputs = list(outputs)
    if len(outputs) != len(grays):
        raise ValueError(f"{name}: returned {len(outputs)} images for {len(grays)} inputs")
    for i, (g, o) in enumerate(zip(grays, outputs)):
        o = np.asarray(o)
        if o.shape != g.shape or o.dtype != np.uint8:
            raise ValueError(
                f"{name}: output {i} must be uint8 {g.shape}, got {o.dtype} {o.shape}"
            )
        outputs[i] = o
    return outputs


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def evaluate(
    colorize: Colorize,
    paths: Sequence[StrPath],
    baselines: Mapping[str, Any] | None = None,
    progress: bool = False,
    batch_size: int = BATCH_SIZE,
) -> dict[str, dict[str, float | int]]:
    """Score ``colorize`` and baselines on the colour images at ``paths``.

    ``colorize(grays) -> colours``: takes a list of ``uint8 (H, W, 3)`` gray
    images (R = G = B, from :func:`to_gray_rgb`; sizes may differ within a
    list) and returns a list of ``uint8`` RGB images of the same sizes. It is
    called with up to ``batch_size`` images at a time.

    ``baselines`` maps a row name to a spec (default :data:`DEFAULT_BASELINES`):
      * ``None`` or ``"gray"``: the gray input unchanged (what "no colour" scores);
      * ``(a, b)``: constant a*b* on the input's L (:func:`constant_ab_baseline`);
      * ``"dataset"``: the same with the mean a*b* of these very images
        (:func:`dataset_mean_ab`; an extra read pass, and it peeks at the
        references, so it is a slightly optimistic constant-colour baseline);
      * a callable with ``colorize``'s signature.

    Returns ``{"model": row, <baseline name>: row, ...}`` where each row holds
    means over images of ``psnr`` (dB over RGB; ``inf`` if every output is
    exact), ``ssim``, ``ciede2000`` and ``colorfulness`` (of outputs), plus
    ``colorfulness_ratio`` = mean output colourfulness / mean original
    colourfulness (``nan`` if the originals are all gray), ``n_images`` and
    ``seconds`` (wall time spent producing that row's outputs, metrics
    excluded). Values are plain floats/ints; see :func:`results_to_json`.
    """
    baselines = DEFAULT_BASELINES if baselines is None else baselines
    if "model" in baselines:
        raise ValueError("'model' is reserved for the colorizer's row; rename the baseline")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no images to evaluate")

    methods: dict[str, Colorize] = {"model": colorize}
    for name, spec in baselines.items():
        methods[name] = _baseline_fn(name, spec, paths)

    scores = {name: {"psnr": [], "ssim": [], "ciede2000": [], "colorfulness": [], "false_colour": []}
              for name in methods}
    seconds = {name: 0.0 for name in methods}
    reference_colorfulness: list[float] = []

    n = len(paths)
    for start in range(0, n, batch_size):
        originals = [load_rgb(p) for p in paths[start : start + batch_size]]
        grays = [to_gray_rgb(img) for img in originals]
        reference_colorfulness.extend(metrics.colorfulness(img) for img in originals)

        for name, fn in methods.items():
            t0 = time.perf_counter()
            # Hand out copies so a colorizer that edits its inputs in place
            # cannot change what the next method sees.
            outputs = fn([g.copy() for g in grays])
            seconds[name] += time.perf_counter() - t0
            outputs = _check_outputs(name, grays, outputs)
            s = scores[name]
            for ref, out in zip(originals, outputs):
                s["psnr"].append(metrics.psnr(ref, out))
                s["ssim"].append(metrics.ssim(ref, out))
                s["ciede2000"].append(metrics.ciede2000(ref, out))
                s["colorfulness"].append(metrics.colorfulness(out))
                s["false_colour"].append(metrics.false_colour(ref, out))

        if progress:
            done = min(start + batch_size, n)
            print(f"evaluate: {done}/{n} images", file=sys.stderr, flush=True)

    ref_mean = _mean(reference_colorfulness)
    results: dict[str, dict[str, float | int]] = {}
    for name, s in scores.items():
        out_mean = _mean(s["colorfulness"])
        results[name] = {
            "psnr": _mean(s["psnr"]),
            "ssim": _mean(s["ssim"]),
            "ciede2000": _mean(s["ciede2000"]),
            "colorfulness": out_mean,
            "colorfulness_ratio": out_mean / ref_mean if ref_mean > 0 else math.nan,
            # over the images that have neutral pixels at all
            "false_colour": _mean([value for value in s["false_colour"] if not math.isnan(value)]),
            "n_images": len(s["psnr"]),
            "seconds": float(seconds[name]),
        }
    return results


# --------------------------------------------------------------------------- reporting

_COLUMNS = (
    ("PSNR dB", "psnr", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("CIEDE2000", "ciede2000", "{:.2f}"),
    ("colorfulness ratio", "colorfulness_ratio", "{:.3f}"),
    ("false colour", "false_colour", "{:.2f}"),
)


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return pattern.format(value)


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Plain-text table of :func:`evaluate` results, one row per method.

    Rows: ``model`` first, then the baselines in their order. Columns: PSNR dB
    (higher is better), SSIM (higher), CIEDE2000 (lower), colorfulness ratio
    (1 = as colourful as the originals). Ends with a line giving the image
    count and the model's time.
    """
    names = [n for n in results if n == "model"] + [n for n in results if n != "model"]
    header = ["method"] + [title for title, _, _ in _COLUMNS]
    rows = [
        [name] + [_fmt(results[name].get(key), pat) for _, key, pat in _COLUMNS] for name in names
    ]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # Method names left-aligned, numbers right-aligned so decimals line up.
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if "model" in results:
        m = results["model"]
        out.append(f"{m.get('n_images', 0)} images; model took {m.get('seconds', 0.0):.1f} s")
    return "\n".join(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def results_to_json(results: Mapping[str, Any], indent: int | None = 2) -> str:
    """Strict JSON text for ``--json``.

    The results dict is already plain floats/ints, but ``inf`` PSNR (perfect
    output) or ``nan`` ratio are not valid JSON; they are written as ``null``.
    """
    return json.dumps(_json_safe(results), indent=indent, allow_nan=False)
