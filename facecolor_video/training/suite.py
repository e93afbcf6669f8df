"""``facecolor-video eval --suite``: every validation set in one table, with contact sheets.

The sets are those of :mod:`.splits` (utkface/val, held-out people, plain
backdrops, bsds500/test) plus the grayed colour clips (bikes, carphone). Each
photo set is scored as ``eval --images`` scores a folder (model, gray and the
constant mean a*b* of the training faces, in the same pass); each clip as
``eval --video`` does, with the mean-a*b* baseline added. A contact sheet per
set shows a fixed sample (evenly spaced, the same for every model) as rows of
gray | model | original.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import splits
from .evaluate import evaluate, load_rgb, results_to_json, to_gray_rgb

SHEET_IMAGES = 8  # rows of a photo set's contact sheet
SHEET_FRAMES = 6  # rows of a clip's contact sheet
SHEET_HEIGHT = 128  # pixels, each picture on a sheet
DEFAULT_LIMIT = 300  # images per photo set (evenly spaced)


@dataclass
class SuiteResult:
    rows: dict[str, dict] = field(default_factory=dict)  # set -> {"model": ..., "gray": ..., "mean_ab": ...}
    sheets: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, dict] = field(default_factory=dict)  # set -> e.g. the clip's flicker

    def to_text(self) -> str:
        header = ["set", "images", "method", "PSNR dB", "SSIM", "CIEDE2000", "colourfulness", "false colour"]
        lines = []
        for name, results in self.rows.items():
            for number, (method, row) in enumerate(results.items()):
                lines.append([name if number == 0 else "", str(row.get("n_images", "")) if number == 0 else "",
                              method, _fmt(row.get("psnr"), "{:.2f}"), _fmt(row.get("ssim"), "{:.4f}"),
                              _fmt(row.get("ciede2000"), "{:.2f}"), _fmt(row.get("colorfulness_ratio"), "{:.3f}"),
                              _fmt(row.get("false_colour"), "{:.2f}")])
        widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
        text = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                for r in [header] + lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        for name, extra in self.extra.items():
            text.append(f"{name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in extra.items()))
        for name, path in self.sheets.items():
            text.append(f"contact sheet {name}: {path}")
        return "\n".join(text) + "\n"

    def to_json(self) -> str:
        merged = {"sets": json.loads(results_to_json(self.rows)), "extra": self.extra,
                  "sheets": {k: str(v) for k, v in self.sheets.items()}}
        return json.dumps(merged, indent=2, default=str)


def _fmt(value, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return pattern.format(value)


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str,
                  height: int = SHEET_HEIGHT) -> Path:
    """Rows of gray | model | original (uint8 RGB, any sizes), each scaled to ``height``, as one PNG."""
    from PIL import Image, ImageDraw

    scaled = []
    for triple in rows:
        pictures = []
        for image in triple:
            h, w = image.shape[:2]
            pictures.append(Image.fromarray(image).resize((max(1, round(w * height / h)), height),
                                                          Image.Resampling.LANCZOS))
        scaled.append(pictures)
    gap, top = 4, 18
    width = max(sum(p.width for p in pictures) + gap * 4 for pictures in scaled)
    sheet = Image.new("RGB", (width, top + len(scaled) * (height + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 3), f"{title}: gray | model | original", fill="black")
    for number, pictures in enumerate(scaled):
        x, y = gap, top + number * (height + gap)
        for picture in pictures:
            sheet.paste(picture, (x, y))
            x += picture.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".partial.png")
    sheet.save(temporary)
    temporary.replace(path)
    return path


def evaluate_suite(colorizer, root: str | Path | None = None, limit: int | None = DEFAULT_LIMIT,
                   sheets_dir: str | Path | None = None, clip_frames: int | None = None,
                   smooth: str = "window", radius: int = 4, batch_size: int = 8,
                   sets: list[str] | None = None) -> SuiteResult:
    """Score ``colorizer`` on every validation set under the data root; write contact sheets to ``sheets_dir``."""
    from .quality import TRAINING_FACES_MEAN_AB, colorize_stills, evaluate_videos

    root = splits.data_root(root)
    known = list(splits.VALIDATION_SETS) + [Path(c).stem for c in splits.VALIDATION_CLIPS]
    chosen = known if sets is None else sets
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise InputError(f"no validation set named {', '.join(unknown)} (sets: {', '.join(known)})")
    result = SuiteResult()
    colorize = colorize_stills(colorizer)
    for name, sources in splits.VALIDATION_SETS.items():
        if name not in chosen:
            continue
        paths = splits.set_paths(sources, root, limit)
        result.rows[name] = evaluate(colorize, paths, baselines={"gray": None, "mean_ab": TRAINING_FACES_MEAN_AB})
        if sheets_dir is not None:
            sample = splits.set_paths(sources, root, SHEET_IMAGES)
            originals = [load_rgb(p) for p in sample]
            grays = [to_gray_rgb(image) for image in originals]
            outputs = colorize([g.copy() for g in grays])
            result.sheets[name] = contact_sheet(list(zip(grays, outputs, originals)),
                                                Path(sheets_dir) / f"{name}.png", name)
    for clip in splits.VALIDATION_CLIPS:
        name = Path(clip).stem
        if name not in chosen:
            continue
        evaluated = evaluate_videos(colorizer, root / clip, smooth=smooth, radius=radius, batch_size=batch_size,
                                    limit=clip_frames, mean_ab=TRAINING_FACES_MEAN_AB,
                                    keep_frames=SHEET_FRAMES if sheets_dir is not None else 0)
        result.rows[name] = evaluated.results
        result.extra[name] = {"excess_flicker": evaluated.extra["excess_flicker"]}
        if sheets_dir is not None:
            result.sheets[name] = contact_sheet(evaluated.extra.pop("sheet_rows"),
                                                Path(sheets_dir) / f"{name}.png", name)
    return result
