"""A run's record: the per-epoch log (CSV, written atomically), its loss plot, and the progress bar."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from PIL import Image


def progress_bar(enabled: bool, total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", disable=not enabled, leave=False)


def write_log(path: Path, history: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in history for key in row))
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows(history)
    temporary.replace(path)


def plot_history(history: list[dict], path: Path, width: int = 640, height: int = 360) -> None:
    """A small line plot of training loss and validation losses per epoch (PIL only, no plotting library)."""
    from PIL import ImageDraw

    series = {key: [float(row[key]) for row in history if row.get(key) not in (None, "")]
              for key in dict.fromkeys(k for row in history for k in row) if key.endswith("loss")}
    series = {k: v for k, v in series.items() if v and all(math.isfinite(x) for x in v)}
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    margin = 40
    values = [x for v in series.values() for x in v]
    if not values:
        image.save(path)
        return
    low, high = min(values), max(values)
    high = high if high > low else low + 1e-9
    epochs = max(len(v) for v in series.values())
    palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    draw.rectangle([margin, margin // 2, width - 10, height - margin], outline="black")
    for number, (name, points) in enumerate(series.items()):
        colour = palette[number % len(palette)]
        xy = [(margin + (width - margin - 10) * i / max(epochs - 1, 1),
               height - margin - (height - 1.5 * margin) * (v - low) / (high - low)) for i, v in enumerate(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((margin + 5, margin // 2 + 4 + 12 * number), name, fill=colour)
    draw.text((margin, height - margin + 5), f"epochs 1..{epochs}", fill="black")
    draw.text((2, margin // 2), f"{high:.4f}", fill="black")
    draw.text((2, height - margin - 10), f"{low:.4f}", fill="black")
    image.save(path)
