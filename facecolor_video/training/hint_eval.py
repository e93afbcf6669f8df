"""``eval --hint-patches``: colour hints drawn from the truth, as in Zhang et al. 2017's protocol.

Each hint is ``count`` square patches of ``PATCH`` x ``PATCH`` pixels at random
places (seeded per image, so every run and every count draws the same places:
the first 5 of the 20 are the 5), carrying the colour original's own pixels.
Photos: the gray image colorized automatically and with the hints, compared
with the original (PSNR, colourfulness ratio) for each count. Clips: hints on
the first frame only, the whole clip colorized as a film (temporal smoothing
and the hint's carry through the shot included), PSNR over every frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..film.hint_preview import strokes_over
from ..film.hints import Hint, HintColorizer
from ..film.pipeline import FrameColorizer, batched
from ..film.stills import colorize_stills
from ..media.video import VideoFrame
from ..model.colorizer import Colorizer
from . import metrics
from .evaluate import iter_images, load_rgb, to_gray_rgb
from .quality import EvalResult, colour_clip_and_gray

PATCH = 9
SEED = 0


def hint_patches(rgb: np.ndarray, count: int, seed: int = SEED, size: int = PATCH) -> np.ndarray:
    """A colour original (H, W, 3) uint8 -> an RGBA hint (H, W, 4): ``count`` seeded size x size patches of its pixels."""
    height, width = rgb.shape[:2]
    hint = np.zeros((height, width, 4), np.uint8)
    generator = np.random.default_rng(seed)
    size = min(size, height, width)
    tops = generator.integers(0, height - size + 1, size=max(count, 1))
    lefts = generator.integers(0, width - size + 1, size=max(count, 1))
    for top, left in list(zip(tops, lefts))[:count]:
        hint[top:top + size, left:left + size, :3] = rgb[top:top + size, left:left + size]
        hint[top:top + size, left:left + size, 3] = 255
    return hint


def evaluate_image_hints(colorizer: Colorizer, folders, counts: Sequence[int], limit: int | None = None,
                         seed: int = SEED, keep: int = 0) -> EvalResult:
    """PSNR and colourfulness ratio against the number of hint patches, on the photos of ``folders``."""
    paths = []
    for folder in folders:
        paths += iter_images([folder], limit=limit)
    counts = sorted(set(int(count) for count in counts) | {0})
    psnr = {count: [] for count in counts}
    colourful = {count: [] for count in counts}
    seconds = {count: 0.0 for count in counts}
    truth_colourful, gray_psnr, rows = [], [], []
    for number, path in enumerate(paths):
        original = load_rgb(path)
        gray = to_gray_rgb(original)
        truth_colourful.append(metrics.colorfulness(original))
        gray_psnr.append(metrics.psnr(original, gray))
        outputs = {}
        for count in counts:
            colorizer.reset()
            hint = hint_patches(original, count, seed + number) if count else None
            started = time.perf_counter()
            output = colorize_stills(colorizer, gray[None], hints=None if hint is None else [hint])[0]
            seconds[count] += time.perf_counter() - started
            psnr[count].append(metrics.psnr(original, output))
            colourful[count].append(metrics.colorfulness(output))
            outputs[count] = (output, hint)
        if keep and number % max(1, len(paths) // keep) == 0 and len(rows) < keep:
            rows.append((gray, outputs[0][0], strokes_over(gray, outputs[max(counts)][1]), outputs[max(counts)][0],
                         original))
    truth = float(np.mean(truth_colourful))
    results = {}
    for count in counts:
        name = "automatic" if count == 0 else f"{count} patches"
        results[name] = {"psnr": float(np.mean(psnr[count])), "psnr_gain": float(np.mean(psnr[count]) - np.mean(psnr[0])),
                         "colorfulness_ratio": float(np.mean(colourful[count])) / truth if truth else math.nan,
                         "n_images": len(paths), "seconds": seconds[count]}
    results["gray"] = {"psnr": float(np.mean(gray_psnr)), "psnr_gain": float(np.mean(gray_psnr) - np.mean(psnr[0])),
                       "n_images": len(paths)}
    names = ", ".join(str(folder) for folder in folders)
    extra = {"patch": PATCH, "seed": seed}
    if rows:
        extra["sheet_rows"] = rows
    return EvalResult(f"images with hints: {names} ({len(paths)} images, {PATCH}x{PATCH} patches of the true "
                      f"colour, render size {colorizer.render_size})", results, extra)


def _frame_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _run_clip(colorizer: Colorizer, grays: list[VideoFrame], hints: HintColorizer | None, smooth: str, radius: int,
              batch_size: int) -> list[np.ndarray]:
    stream = FrameColorizer(colorizer, smooth, radius, hints=hints)
    outputs = []
    for batch in batched(grays, batch_size):
        outputs += [frame.rgb for frame in stream.process(batch)]
    return outputs + [frame.rgb for frame in stream.finish()]


def evaluate_video_hints(colorizer: Colorizer, video: Path, counts: Sequence[int], smooth: str, radius: int,
                         batch_size: int, limit: int | None = None, seed: int = SEED, keep: int = 0) -> EvalResult:
    """A colour clip grayed and colorized as a film, automatically and with hints drawn on its first frame only."""
    originals, grays = colour_clip_and_gray(video, limit)
    counts = sorted(set(int(count) for count in counts) | {0})
    truth = float(np.mean([metrics.colorfulness(frame) for frame in originals]))
    results, extra, first_shot = {}, {"patch": PATCH, "seed": seed, "frames": len(originals)}, None
    automatic = None
    for count in counts:
        started = time.perf_counter()
        hints = None
        if count:
            hint = Hint(hint_patches(originals[0], count, seed), index=grays[0].index, name=f"{count} patches")
            hints = HintColorizer.from_frames(colorizer, grays, [hint])
            first_shot = hints.hinted[0].shot
        outputs = _run_clip(colorizer, grays, hints, smooth, radius, batch_size)
        seconds = time.perf_counter() - started
        frame_psnr = [_frame_psnr(o, c) for o, c in zip(originals, outputs)]
        if count == 0:
            automatic = frame_psnr
        name = "automatic" if count == 0 else f"{count} patches"
        row = {"psnr": float(np.mean(frame_psnr)), "psnr_gain": float(np.mean(frame_psnr) - np.mean(automatic)),
               "colorfulness_ratio": float(np.mean([metrics.colorfulness(o) for o in outputs])) / truth,
               "n_images": len(outputs), "seconds": seconds, "fps": len(outputs) / seconds}
        if first_shot is not None and count:
            stop = int(min(first_shot[1], len(outputs)))
            row["first_shot_gain"] = float(np.mean(frame_psnr[:stop]) - np.mean(automatic[:stop]))
            extra["first_shot_frames"] = stop
        results[name] = row
        if count == 0:
            automatic_outputs = outputs
        if keep and count == max(counts):
            picked = [i * len(outputs) // keep for i in range(min(keep, len(outputs)))]
            extra["sheet_rows"] = [(grays[i].rgb, automatic_outputs[i],
                                    strokes_over(grays[i].rgb, hint_patches(originals[0], count, seed)) if i == 0
                                    else grays[i].rgb, outputs[i], originals[i]) for i in picked]
    return EvalResult(f"video with hints on its first frame: {video} ({len(originals)} frames, --smooth {smooth})",
                      results, extra)


def format_hint_table(result: EvalResult) -> str:
    """The curve: one row per number of patches."""
    lines = [result.title, f"{'hints':<12} {'PSNR dB':>8} {'gain dB':>8} {'colourfulness ratio':>20} {'s':>7}"]
    for name, row in result.results.items():
        ratio = row.get("colorfulness_ratio", math.nan)
        line = (f"{name:<12} {row['psnr']:>8.2f} {row.get('psnr_gain', math.nan):>+8.2f} "
                f"{'n/a' if math.isnan(ratio) else f'{ratio:.3f}':>20} {row.get('seconds', math.nan):>7.1f}")
        if "first_shot_gain" in row:
            line += f"   first shot {row['first_shot_gain']:+.2f} dB"
        lines.append(line)
    return "\n".join(lines) + "\n"


def parse_counts(text: str) -> list[int]:
    """``20`` or ``0,5,10,20,50`` -> the numbers of patches; InputError when it is neither."""
    try:
        counts = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 0:
        raise InputError(f"--hint-patches {text!r}: give a number of patches, or a list such as 0,5,10,20,50")
    return counts


def write_hint_sheet(rows: Sequence[tuple], path: str | Path, width: int = 200) -> Path:
    """Rows of (gray, automatic, hints drawn, result, truth) pictures -> one contact sheet image."""
    from PIL import Image, ImageDraw

    titles = ("gray", "automatic", "hints", "with hints", "truth")
    cells = []
    for row in rows:
        height = max(1, round(row[0].shape[0] * width / row[0].shape[1]))
        cells.append([Image.fromarray(picture).resize((width, height), Image.LANCZOS) for picture in row])
    top = 18
    sheet = Image.new("RGB", (width * len(titles) + 4 * (len(titles) - 1),
                              top + sum(row[0].height + 4 for row in cells)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(titles):
        draw.text((column * (width + 4) + 4, 3), title, fill="black")
    y = top
    for row in cells:
        for column, picture in enumerate(row):
            sheet.paste(picture, (column * (width + 4), y))
        y += row[0].height + 4
    path = Path(path)
    sheet.save(path, quality=88) if path.suffix.lower() in (".jpg", ".jpeg") else sheet.save(path)
    return path


def run_hint_eval(colorizer: Colorizer, image_dirs, videos, counts_text: str, limit: int | None, smooth: str,
                  radius: int, batch_size: int, sheet: Path | None = None, as_json: bool = False) -> list[str]:
    """``eval --hint-patches``: the curve for the photos and each clip; texts to print."""
    counts = parse_counts(counts_text)
    keep = 6 if sheet is not None else 0
    results = []
    if image_dirs:
        results.append(evaluate_image_hints(colorizer, image_dirs, counts, limit=limit, keep=keep))
    for video in videos:
        results.append(evaluate_video_hints(colorizer, video, counts, smooth, radius, batch_size, limit=limit,
                                            keep=min(keep, 3)))
    if not results:
        raise InputError("--hint-patches: give --images DIR or --video FILE")
    if sheet is not None:
        rows = [row for result in results for row in result.extra.get("sheet_rows", [])]
        write_hint_sheet(rows, sheet)
    for result in results:
        result.extra.pop("sheet_rows", None)
    return [result.to_json() if as_json else format_hint_table(result) for result in results]
