"""Soak: memory and open files over a feature film's length, in one process, with --workers 2, and in a batch.

    python examples/soak.py --minutes 120 --out soak/            # the three runs, a JSON and a plot
    python examples/soak.py --minutes 10 --runs single --out soak/

A synthetic film is made first (24 fps, small frames so that two hours fit a
2-core CPU in well under an hour): shots of moving gradients and noise cut
every 4-40 seconds, with a face (the bundled portrait, gray) pasted into
every third shot. Then it is colorized as a user would: ``colorize_file``
(one process), ``colorize_segmented`` with two worker processes, and
``colorize_films`` over twenty short films. A sampler thread reads, once a
second, the resident memory of this process and of its children and the
number of open file descriptors (from /proc). The growth is reported from
the end of the warm-up (the first tenth of the run) to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from facecolor_video.film.pipeline import ColorizeOptions, colorize_file
from facecolor_video.model.colorizer import Colorizer
from facecolor_video.scale.films import colorize_films, colorize_segmented

FRAME_RATE = 24
PORTRAIT = Path(__file__).resolve().parent.parent / "tests" / "data" / "webmorph_neutral_front_002_03.webp"
SETTINGS = {"device": "cpu", "render_size": 64}


def make_film(path: Path, minutes: float, size=(128, 96), seed: int = 0) -> int:
    """Write the synthetic film (H.264, gray, no audio); returns its frame count."""
    rng = np.random.default_rng(seed)
    width, height = size
    face = np.asarray(Image.open(PORTRAIT).convert("L").resize((height // 2, height // 2)))
    total = int(minutes * 60 * FRAME_RATE)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FRAME_RATE, options={"preset": "ultrafast", "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, FRAME_RATE)
        written, shot = 0, 0
        rows, cols = np.mgrid[0:height, 0:width]
        while written < total:
            length = min(total - written, int(rng.integers(4, 40) * FRAME_RATE))
            base, slope, speed = rng.uniform(40, 200), rng.uniform(-1, 1, 2), rng.uniform(0.5, 3)
            texture = rng.normal(0, 12, (height, width))
            for index in range(length):
                luma = base + 60 * np.sin((rows * slope[0] + cols * slope[1] + index * speed) / 17) + texture
                if shot % 3 == 0:  # a face drifts across the shot
                    left = int((width - face.shape[1]) * index / max(length - 1, 1))
                    top = (height - face.shape[0]) // 2
                    luma[top:top + face.shape[0], left:left + face.shape[1]] = face
                gray = np.clip(luma, 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=2), format="rgb24")
                frame.pts = written
                for packet in stream.encode(frame):
                    container.mux(packet)
                written += 1
            shot += 1
        for packet in stream.encode():
            container.mux(packet)
    return total


def _process_tree_memory(pid: int) -> tuple[int, int]:
    """(RSS bytes of pid and all its descendants, open descriptors of pid) from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack += children.get(current, [])
    return total, len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval, self.samples, self.done = interval, [], threading.Event()
        self.frames = 0
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            rss, descriptors = _process_tree_memory(os.getpid())
            self.samples.append((time.monotonic() - self.started, self.frames, rss, descriptors))

    def count(self, frames: int) -> None:
        self.frames += frames

    def stop(self) -> dict:
        self.done.set()
        self.join()
        samples = self.samples
        warm = samples[max(1, len(samples) // 10) - 1] if samples else (0, 0, 0, 0)
        peak_after = max((s[2] for s in samples[len(samples) // 10:]), default=0)
        return {"samples": samples, "seconds": samples[-1][0] if samples else 0,
                "frames": self.frames, "rss_after_warmup_mb": warm[2] / 2**20,
                "rss_end_mb": samples[-1][2] / 2**20 if samples else 0,
                "rss_growth_mb": (samples[-1][2] - warm[2]) / 2**20 if samples else 0,
                "rss_peak_after_warmup_mb": peak_after / 2**20,
                "fds_after_warmup": warm[3], "fds_end": samples[-1][3] if samples else 0,
                "fds_max": max((s[3] for s in samples), default=0)}


def soak_single(film: Path, out: Path) -> dict:
    sampler = Sampler()
    sampler.start()
    report = colorize_file(film, out / "single.mp4", Colorizer(**SETTINGS), ColorizeOptions(preset="ultrafast"),
                           progress=sampler.count)
    result = sampler.stop()
    result["frames_written"] = report.frames_written
    return result


def soak_workers(film: Path, out: Path) -> dict:
    sampler = Sampler()
    sampler.start()
    report = colorize_segmented(film, out / "workers.mp4", SETTINGS, ColorizeOptions(preset="ultrafast"),
                                segment_seconds=120, workers=2, progress=sampler.count)
    result = sampler.stop()
    result["frames_written"] = report.frames_written
    return result


def soak_batch(out: Path, films: int = 20, minutes: float = 1.0) -> dict:
    folder = out / "batch_in"
    folder.mkdir(exist_ok=True)
    pairs = []
    for number in range(films):
        source = folder / f"reel{number:02d}.mp4"
        if not source.exists():
            make_film(source, minutes, seed=number + 1)
        pairs.append((source, out / "batch_out" / source.name))
    (out / "batch_out").mkdir(exist_ok=True)
    for _, target in pairs:
        target.unlink(missing_ok=True)
    sampler = Sampler()
    sampler.start()
    reports = colorize_films(pairs, SETTINGS, ColorizeOptions(preset="ultrafast"), segment_seconds=30,
                             workers=2, progress=sampler.count)
    result = sampler.stop()
    result["frames_written"] = sum(report.frames_written for report in reports)
    return result


def plot(results: dict, path: Path, machine: str) -> None:
    """RSS (MB) and open descriptors over the run's frames, one panel per run."""
    width, panel = 900, 220
    image = Image.new("RGB", (width, 30 + panel * len(results)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), f"soak: resident memory (blue, MB) and open descriptors (red) against frames done; {machine}",
              fill="black")
    for number, (name, result) in enumerate(results.items()):
        top = 30 + number * panel
        samples = result["samples"]
        left, right, bottom = 60, width - 20, top + panel - 30
        draw.rectangle([left, top + 10, right, bottom], outline="black")
        draw.text((left + 5, top + 12), f"{name}: growth after warm-up {result['rss_growth_mb']:+.1f} MB, "
                  f"descriptors {result['fds_after_warmup']} -> {result['fds_end']} (max {result['fds_max']})",
                  fill="black")
        if len(samples) < 2:
            continue
        frames = max(s[1] for s in samples) or 1
        rss_top = max(s[2] for s in samples) / 2**20 * 1.1
        fds_top = max(s[3] for s in samples) * 1.1

        def xy(value, scale, s):
            return (left + (right - left) * s[1] / frames, bottom - (bottom - top - 30) * value / scale)

        draw.line([xy(s[2] / 2**20, rss_top, s) for s in samples], fill=(31, 119, 180), width=2)
        draw.line([xy(s[3], fds_top, s) for s in samples], fill=(214, 39, 40), width=1)
        draw.text((5, top + 28), f"{rss_top:.0f} MB", fill=(31, 119, 180))
        draw.text((5, bottom - 12), "0", fill="black")
        draw.text((right - 120, bottom + 4), f"{frames} frames", fill="black")
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0, help="length of the film for the first two runs")
    parser.add_argument("--runs", default="single,workers,batch")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--machine", default="2-core Intel Xeon (AMX bf16), no GPU")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    film = args.out / f"film_{args.minutes:g}min.mp4"
    if not film.exists():
        started = time.monotonic()
        frames = make_film(film, args.minutes)
        print(f"{film}: {frames} frames made in {time.monotonic() - started:.0f} s", flush=True)
    runs = {"single": lambda: soak_single(film, args.out), "workers": lambda: soak_workers(film, args.out),
            "batch": lambda: soak_batch(args.out)}
    results = {}
    for name in args.runs.split(","):
        results[name] = runs[name]()
        summary = {k: v for k, v in results[name].items() if k != "samples"}
        print(name, json.dumps(summary), flush=True)
        (args.out / "soak.json").write_text(json.dumps(results, indent=1))
        plot(results, args.out / "soak.png", args.machine)


if __name__ == "__main__":
    main()
