"""``facecolor-video eval``: the model against colour originals, next to baselines, for photos and clips.

Photos: each colour image is turned gray (L kept, a*b* = 0), colorized, and
compared with its original (PSNR, SSIM, CIEDE2000, colourfulness ratio), next
to two baselines from the same run: gray itself and the constant mean a*b* of
the training faces. Clips: every frame the same way through the film pipeline
(temporal smoothing included), plus the excess flicker: how much more a*b*
changes between consecutive frames at pixels whose luminance barely changes
than it does in the colour original, and the CDC (colour distribution
consistency) of the output and of the original.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..film.pipeline import FrameColorizer, batched
from ..film.reference import ReferenceColorizer
from ..film import stills
from ..film.temporal import flicker
from ..media.video import VideoFrame, VideoReader
from ..model.color import rgb_to_lab
from ..model.colorizer import Colorizer
from .evaluate import constant_ab_baseline, evaluate, format_table, iter_images, results_to_json, to_gray_rgb
from .metrics import color_distribution_consistency

# Mean a*b* of the training face crops (utkface/train, 400 evenly spaced images):
# the "constant colour" baseline a model has to beat.
TRAINING_FACES_MEAN_AB = (12.66, 15.33)


@dataclass
class EvalResult:
    title: str
    results: dict
    extra: dict = field(default_factory=dict)

    def to_text(self) -> str:
        lines = [self.title, format_table(self.results)]
        lines += [f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}"
                  for key, value in self.extra.items()]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        merged = {"title": self.title, "results": json.loads(results_to_json(self.results)), **self.extra}
        return json.dumps(merged, indent=2, default=str)


def colorize_stills(colorizer: Colorizer):
    """An ``evaluate``-style callable: each image on its own (sizes differ), no temporal state.

    A library Colorizer goes through the whole stills path (faces, as a photo
    would); any other object with ``colorize(frames)`` is asked as it is.
    """
    def one(image: np.ndarray) -> np.ndarray:
        if isinstance(colorizer, Colorizer):
            return stills.colorize_stills(colorizer, image[None])[0]
        return colorizer.colorize(image[None])[0]

    def colorize(images: list[np.ndarray]) -> list[np.ndarray]:
        colorizer.reset()
        return [one(image) for image in images]

    return colorize


def evaluate_images(colorizer: Colorizer, folders, limit: int | None = None) -> EvalResult:
    paths = []
    for folder in folders:
        paths += iter_images([folder], limit=limit)
    results = evaluate(colorize_stills(colorizer), paths,
                       baselines={"gray": None, "mean_ab": TRAINING_FACES_MEAN_AB})
    names = ", ".join(str(f) for f in folders)
    return EvalResult(f"images: {names} ({len(paths)} images, render size {colorizer.render_size})", results)


def _frame_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _lab_frames(frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    rgb = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    lab = rgb_to_lab(rgb)
    return lab[:, :1], lab[:, 1:]


def colour_clip_and_gray(video: Path, limit: int | None = None) -> tuple[list[np.ndarray], list[VideoFrame]]:
    """A colour clip's first ``limit`` frames (8-bit RGB) and their gray copies (CIE L kept) as a film would hold them."""
    originals, grays = [], []
    with VideoReader(video) as reader:
        for frame in reader.frames():
            rgb = frame.rgb if frame.rgb.dtype == np.uint8 else (frame.rgb >> 8).astype(np.uint8)
            originals.append(rgb)
            grays.append(VideoFrame(rgb=to_gray_rgb(rgb), pts=frame.pts, time_base=frame.time_base, index=frame.index))
            if limit and len(originals) >= limit:
                break
    return originals, grays


def evaluate_videos(colorizer: Colorizer, video: Path, smooth: str, radius: int, batch_size: int,
                    limit: int | None = None, global_blend: str = "interpolate",
                    reference_first_frame: bool = False, mean_ab: tuple[float, float] | None = None,
                    keep_frames: int = 0) -> EvalResult:
    """One colour clip: gray it, colorize it as a film, compare frame by frame; flicker and CDC too.

    reference_first_frame: the standard protocol of reference-based colorization,
    the clip's first colour frame as the reference for the whole clip.
    ``mean_ab`` adds the constant-colour baseline's row; ``keep_frames`` > 0 puts that many
    evenly spaced (gray, model, original) frames into ``extra["sheet_rows"]``.
    """
    started = time.perf_counter()
    originals, grays = colour_clip_and_gray(video, limit)
    reference = ReferenceColorizer.from_images(colorizer, [(0.0, originals[0])]) if reference_first_frame else None
    stream = FrameColorizer(colorizer, smooth, radius, global_blend=global_blend, reference=reference)
    outputs = []
    for batch in batched(grays, batch_size):
        outputs += [frame.rgb for frame in stream.process(batch)]
    outputs += [frame.rgb for frame in stream.finish()]
    seconds = time.perf_counter() - started
    model_psnr = float(np.mean([_frame_psnr(o, c) for o, c in zip(originals, outputs)]))
    gray_psnr = float(np.mean([_frame_psnr(o, g.rgb) for o, g in zip(originals, grays)]))
    original_l, original_ab = _lab_frames(originals)
    output_l, output_ab = _lab_frames(outputs)
    excess_flicker = flicker(original_l, output_ab) - flicker(original_l, original_ab)
    results = {
        "model": {"psnr": model_psnr, "n_images": len(outputs), "seconds": seconds},
        "gray": {"psnr": gray_psnr, "n_images": len(outputs)},
    }
    if mean_ab is not None:
        results["mean_ab"] = {"psnr": float(np.mean([_frame_psnr(o, constant_ab_baseline(g.rgb, mean_ab))
                                                     for o, g in zip(originals, grays)])),
                              "n_images": len(outputs)}
    extra = {"smooth": smooth, "smooth_radius": radius, "reference_first_frame": reference_first_frame,
             "frames": len(outputs),
             "model_psnr": model_psnr, "gray_psnr": gray_psnr, "excess_flicker": float(excess_flicker),
             "cdc": color_distribution_consistency(outputs), "original_cdc": color_distribution_consistency(originals),
             "scene_cuts": stream.scene_cuts}
    if keep_frames:
        picked = [i * len(outputs) // keep_frames for i in range(min(keep_frames, len(outputs)))]
        extra["sheet_rows"] = [(grays[i].rgb, outputs[i], originals[i]) for i in picked]
    return EvalResult(f"video: {video} ({len(outputs)} frames, --smooth {smooth})", _fill(results), extra)


def _fill(results: dict) -> dict:
    """Rows for format_table: the metrics a clip does not report show as n/a."""
    for row in results.values():
        for key in ("ssim", "ciede2000", "colorfulness_ratio"):
            row.setdefault(key, float("nan"))
    return results
