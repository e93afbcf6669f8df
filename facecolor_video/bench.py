"""How fast the pipeline runs, stage by stage, against the transcode floor.

``run_benchmark`` times, over the first N frames of a clip:

* the whole pipeline end to end (``colorize_file``, threads and all), with
  each thread's busy share: the seconds it worked over the wall time, so the
  stage overlap is what was measured, not what was hoped for; and the
  process's peak memory at that point;
* the transcode floor: the same frames decoded and re-encoded with the same
  encoder settings and no model -- no colorizer can beat it -- and the
  encode-only floor: the encoder alone on frames already decoded;
* each stage on its own, one after the other: decode, lightness (L at render
  size, detector thumbnails), global features (VGG16), head, smoothing (scene
  cuts and the temporal smoother), compose and encode.

A film written as a video goes through the planes path (decode to the
source's YUV planes, chroma composed beside its luma, no RGB frame): the
decode, compose, encode and floors are then timed on planes too. ``exact_lab``
(or an image source) times the Lab path: RGB frames, Lab -> RGB composition.

``run_model_sweep`` times the network alone (global features every K frames
plus the head) at the clip's render size for several batch sizes, with FLOPs
per frame counted by ``torch.utils.flop_counter.FlopCounterMode``: the
numbers to size a GPU run by.

Everything written goes to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .film.pipeline import (
    QUEUE_BYTES,
    ColorizeOptions,
    FrameColorizer,
    auto_threads,
    colorize_file,
    keeps_luma_planes,
    run_stream,
    torch_threads,
)
from .media.video import VideoFrame, VideoReader, VideoWriter
from .model.colorizer import Colorizer, render_shape

STAGES = ("decode", "lightness", "global_features", "head", "faces", "smoothing", "compose", "encode")
DEFAULT_FRAMES = 64
# Container for the benchmark's outputs: Matroska takes every codec.
_SUFFIX = ".mkv"


class StageTimer:
    """Adds up wall time per stage name; ``stage(name)`` is the context manager ``Colorizer.stage`` takes.

    On CUDA the device is synchronised at both ends of a stage, so queued
    kernels are charged to the stage that queued them.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def _precision_name(colorizer: Colorizer) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[colorizer.amp_dtype]


def _environment(colorizer: Colorizer, reader: VideoReader, options: ColorizeOptions) -> dict:
    height, width = reader.height, reader.width
    render_height, render_width = render_shape(height, width, colorizer.render_size)
    device = colorizer.device
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = platform.processor() or platform.machine()
    return {
        "source": str(reader.path),
        "resolution": f"{width}x{height}",
        "render_size": colorizer.render_size,
        "render_resolution": f"{render_width}x{render_height}",
        "device": str(device),
        "device_name": device_name,
        "precision": _precision_name(colorizer),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "global_every": colorizer.global_every,
        "batch_size": options.batch_size,
        "smooth": options.smooth,
        "codec": options.codec,
        "crf": options.crf,
        "preset": options.preset,
        "overlap": options.overlap,
        "torch": torch.__version__,
    }


def _writer(path: Path, reader: VideoReader, options: ColorizeOptions) -> VideoWriter:
    return VideoWriter(path, reader, codec=options.codec, crf=options.crf, preset=options.preset,
                       copy_audio=False, copy_subtitles=False, pix_fmt=options.pix_fmt)


def transcode(source: str | Path, destination: str | Path, options: ColorizeOptions, frames: int | None = None) -> tuple[int, float]:
    """The floor: decode and encode again with ``options``' encoder, no model, same threads.

    Frames travel as the pipeline's do: as YUV planes (the source's chroma
    kept) where it keeps the luma planes, else as RGB. Returns (frames written, seconds).
    """
    started = time.perf_counter()
    with VideoReader(source) as reader, _writer(Path(destination), reader, options) as writer:
        as_planes = keeps_luma_planes(reader, Path(destination), options)
        decoded = reader.frames(as_planes=as_planes, keep_chroma=as_planes)
        if frames is not None:
            decoded = islice(decoded, frames)
        if options.overlap:
            from .media.prefetch import BackgroundWriter, Prefetcher

            with Prefetcher(decoded, depth=None, max_bytes=QUEUE_BYTES, size_of=_frame_bytes) as ahead, \
                    BackgroundWriter(writer.write, depth=None, max_bytes=QUEUE_BYTES, size_of=_frame_bytes) as behind:
                for frame in ahead:
                    behind.put(frame)
        else:
            for frame in decoded:
                writer.write(frame)
        writer.close()
        count = writer.frames_written
    return count, time.perf_counter() - started


def _frame_bytes(frame: VideoFrame) -> int:
    return frame.nbytes


def encode_only(frames: list[VideoFrame], destination: Path, reader: VideoReader, options: ColorizeOptions) -> float:
    """Seconds the encoder alone takes for frames already decoded (the encode-only floor)."""
    started = time.perf_counter()
    with _writer(destination, reader, options) as writer:
        for frame in frames:
            writer.write(frame)
        writer.close()
    return time.perf_counter() - started


def _rate(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else math.inf


def run_benchmark(
    source: str | Path,
    colorizer: Colorizer | None = None,
    options: ColorizeOptions | None = None,
    frames: int = DEFAULT_FRAMES,
) -> dict:
    """Stage timings, end-to-end fps and the transcode floor over the first ``frames`` frames of ``source``.

    Returns a dict: ``environment`` (device, precision, threads, sizes, ...),
    ``frames``, ``stages`` (one entry per name in ``STAGES``: seconds,
    frames_per_second, ms_per_frame, share of the summed stage time),
    ``serial_fps`` (frames over the summed stage time: the pipeline with no
    overlap), ``end_to_end`` and ``floor`` (frames, seconds,
    frames_per_second), ``ratio`` (pipeline fps / floor fps) and
    ``peak_rss_mib`` (the process's peak resident memory so far).
    """
    options = options or ColorizeOptions()
    colorizer = colorizer or Colorizer()
    threads = options.threads or auto_threads(colorizer.device, options.overlap)
    with tempfile.TemporaryDirectory(prefix="facecolor-bench-") as folder:
        folder = Path(folder)
        with VideoReader(source) as reader, torch_threads(threads):
            environment = _environment(colorizer, reader, options)
            as_planes = keeps_luma_planes(reader, folder / ("stages" + _SUFFIX), options)
            environment["composition"] = "planes" if as_planes else "lab"
            warm_up = [frame.picture for frame in islice(reader.frames(as_planes=as_planes), options.batch_size)]
            if not warm_up:
                raise InputError(f"{source}: no frame to benchmark")
            # Warm-up, not timed: oneDNN / cuDNN choose their kernels on the first call per shape.
            colorizer.predict(colorizer.prepare(warm_up).small_lightness)
            colorizer.reset()
            del warm_up

        # End to end first, so the peak memory reported is the pipeline's, not the stage timing's below.
        end_options = replace(options, max_frames=frames, audio=False, overwrite=True, threads=0)
        report = colorize_file(source, folder / ("pipeline" + _SUFFIX), colorizer, end_options)
        pipeline_rss = peak_rss_mib()
        floor_frames, floor_seconds = transcode(source, folder / ("floor" + _SUFFIX), options, frames)

        timer = StageTimer(colorizer.device)
        with VideoReader(source) as reader, torch_threads(threads):
            with timer.stage("decode"):
                decoded: list[VideoFrame] = list(islice(reader.frames(as_planes=as_planes, keep_chroma=as_planes), frames))
            count = len(decoded)
            encode_only_seconds = encode_only(decoded, folder / ("encode_only" + _SUFFIX), reader, options)
            stream = FrameColorizer(colorizer, options.smooth if not reader.is_image else "none", options.smooth_radius)
            writer = _writer(folder / ("stages" + _SUFFIX), reader, options)
            stream.output_planes = writer.planes_format
            outputs: list[VideoFrame] = []
            previous_stage, colorizer.stage = colorizer.stage, timer.stage
            try:
                run_stream(stream, decoded, options.batch_size, outputs.extend, overlap=False)
            finally:
                colorizer.stage = previous_stage
            if len(outputs) != count:
                raise AssertionError(f"{count} frames in, {len(outputs)} out")
            del decoded
            with writer, timer.stage("encode"):
                for frame in outputs:
                    writer.write(frame)
                writer.close()
            del outputs

    total = sum(timer.seconds.get(name, 0.0) for name in STAGES)
    stages = {}
    for name in STAGES:
        seconds = timer.seconds.get(name, 0.0)
        stages[name] = {
            "seconds": seconds,
            "frames_per_second": _rate(count, seconds),
            "ms_per_frame": 1000.0 * seconds / count,
            "share": seconds / total if total else 0.0,
        }
    end_fps = _rate(report.frames_written, report.seconds)
    floor_fps = _rate(floor_frames, floor_seconds)
    wall = report.thread_busy.get("wall", report.seconds)
    threads_busy = {
        name: {"seconds": seconds, "share": seconds / wall if wall else 0.0}
        for name, seconds in report.thread_busy.items() if name != "wall"
    }
    return {
        "environment": environment,
        "frames": count,
        "stages": stages,
        "serial_fps": _rate(count, total),
        "end_to_end": {"frames": report.frames_written, "seconds": report.seconds, "frames_per_second": end_fps},
        "threads_busy": threads_busy,
        "floor": {"frames": floor_frames, "seconds": floor_seconds, "frames_per_second": floor_fps},
        "encode_only_floor": {"frames": count, "seconds": encode_only_seconds,
                              "frames_per_second": _rate(count, encode_only_seconds)},
        "ratio": end_fps / floor_fps if floor_fps else 0.0,
        "pipeline_peak_rss_mib": pipeline_rss,
        "peak_rss_mib": peak_rss_mib(),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``getrusage`` reports KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def model_flops(colorizer: Colorizer, height: int, width: int) -> dict:
    """FLOPs per frame of the head and of the global features at this render size (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    lightness = torch.full((1, 1, height, width), 50.0, device=colorizer.device)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            vector = colorizer.global_features(lightness)
        global_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            colorizer.head(lightness, vector)
        head_flops = counter.get_total_flops()
    return {
        "head": head_flops,
        "global_features": global_flops,
        "per_frame": head_flops + global_flops / colorizer.global_every,
    }


def run_model_sweep(
    source: str | Path,
    colorizer: Colorizer | None = None,
    batch_sizes: Sequence[int] = (8, 16, 32, 64),
    peak_tflops: float | None = None,
    min_seconds: float = 2.0,
    threads: int = 0,
) -> dict:
    """Network-only fps (global features every K frames + head) at the clip's render size, per batch size.

    The clip's first frames (repeated when it is shorter than a batch) are
    prepared once; each batch size gets one untimed warm-up batch, then batches
    run until ``min_seconds`` passed. ``peak_tflops``: the device's peak (e.g.
    989 for an H100/H200 in dense bf16) for the fraction-of-peak column.
    """
    colorizer = colorizer or Colorizer()
    largest = max(batch_sizes)
    with torch_threads(threads), VideoReader(source) as reader:
        environment = _environment(colorizer, reader, ColorizeOptions(batch_size=largest, threads=threads))
        frames = [frame.rgb for frame in islice(reader.frames(), largest)]
    if not frames:
        raise InputError(f"{source}: no frame to benchmark")
    with torch_threads(threads):
        small = colorizer.prepare(frames).small_lightness
        height, width = small.shape[-2:]
        flops = model_flops(colorizer, height, width)
        rows = []
        for batch_size in batch_sizes:
            batch = small[torch.arange(batch_size, device=small.device) % small.shape[0]].contiguous()
            colorizer.reset()
            colorizer.predict(batch)  # warm-up
            _sync(colorizer.device)
            done, started = 0, time.perf_counter()
            while True:
                colorizer.predict(batch)
                done += batch_size
                _sync(colorizer.device)
                elapsed = time.perf_counter() - started
                if elapsed >= min_seconds:
                    break
            fps = done / elapsed
            achieved = fps * flops["per_frame"] / 1e12
            rows.append({
                "batch_size": batch_size,
                "frames": done,
                "seconds": elapsed,
                "frames_per_second": fps,
                "ms_per_frame": 1000.0 / fps,
                "tflops": achieved,
                "fraction_of_peak": achieved / peak_tflops if peak_tflops else None,
                "chunk_limit": colorizer.chunk_limit,
            })
        environment["threads"] = torch.get_num_threads()
    return {
        "environment": environment,
        "render_resolution": f"{width}x{height}",
        "flops_per_frame": flops,
        "peak_tflops": peak_tflops,
        "rows": rows,
        "peak_rss_mib": peak_rss_mib(),
        "peak_device_mib": torch.cuda.max_memory_allocated(colorizer.device) / 2**20 if colorizer.device.type == "cuda" else None,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- text
def _environment_lines(environment: dict) -> list[str]:
    return [
        f"source      {environment['source']}  ({environment['resolution']}, chroma at {environment['render_resolution']})",
        f"device      {environment['device']} ({environment['device_name']}), {environment['precision']}, "
        f"{environment['threads']} torch thread(s), {environment['cpu_count']} CPU(s)"
        + (f", load {environment['load_average'][0]:.2f}" if environment.get("load_average") else ""),
        f"settings    batch {environment['batch_size']}, render size {environment['render_size']}, "
        f"global every {environment['global_every']}, smooth {environment['smooth']}, "
        f"{environment['codec']} crf {environment['crf']} {environment['preset']}, overlap {environment['overlap']}",
    ]


def format_benchmark(result: dict) -> str:
    lines = _environment_lines(result["environment"])
    lines += ["", f"{'stage':<16}{'frames/s':>10}{'ms/frame':>10}{'share':>8}"]
    for name, stage in result["stages"].items():
        lines.append(f"{name:<16}{stage['frames_per_second']:>10.1f}{stage['ms_per_frame']:>10.1f}{stage['share']:>8.1%}")
    end, floor = result["end_to_end"], result["floor"]
    lines += [
        "",
        f"stages one after another  {result['serial_fps']:.2f} frames/s",
        f"end to end                {end['frames_per_second']:.2f} frames/s ({end['frames']} frames in {end['seconds']:.2f} s)",
        f"transcode floor           {floor['frames_per_second']:.2f} frames/s ({floor['frames']} frames in {floor['seconds']:.2f} s)",
    ]
    if "encode_only_floor" in result:
        encode = result["encode_only_floor"]
        lines.append(f"encode-only floor         {encode['frames_per_second']:.2f} frames/s "
                     f"({encode['frames']} frames in {encode['seconds']:.2f} s)")
    lines += [
        f"pipeline / floor          {result['ratio']:.3f}",
    ]
    if "pipeline_peak_rss_mib" in result:
        lines.append(f"peak memory, pipeline     {result['pipeline_peak_rss_mib']:.0f} MiB (RSS, end to end)")
    lines.append(f"peak memory (RSS)         {result['peak_rss_mib']:.0f} MiB")
    if result.get("threads_busy"):
        lines += ["", f"{'thread (end to end)':<22}{'busy s':>8}{'share':>8}"]
        for name, busy in result["threads_busy"].items():
            lines.append(f"{name:<22}{busy['seconds']:>8.2f}{busy['share']:>8.1%}")
    if "sweep" in result:
        lines += ["", format_sweep(result["sweep"], environment=False)]
    return "\n".join(lines)


def format_sweep(result: dict, environment: bool = True) -> str:
    lines = _environment_lines(result["environment"]) + [""] if environment else []
    flops = result["flops_per_frame"]
    lines.append(
        f"model only at {result['render_resolution']}: {flops['per_frame'] / 1e9:.2f} GFLOP/frame "
        f"(head {flops['head'] / 1e9:.2f}, VGG16 {flops['global_features'] / 1e9:.2f} every "
        f"{result['environment']['global_every']} frame(s))"
    )
    peak = result.get("peak_tflops")
    lines.append(f"{'batch':>6}{'frames/s':>11}{'ms/frame':>10}{'TFLOP/s':>10}" + (f"{'of peak':>9}" if peak else ""))
    for row in result["rows"]:
        line = f"{row['batch_size']:>6}{row['frames_per_second']:>11.2f}{row['ms_per_frame']:>10.2f}{row['tflops']:>10.4f}"
        if peak:
            line += f"{row['fraction_of_peak']:>9.2%}"
        lines.append(line)
    if peak:
        lines.append(f"peak given: {peak:g} TFLOP/s")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    def default(value):
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        return str(value)

    def finite(value):
        # JSON has no Infinity: a stage too fast to time is reported as null
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(result), indent=2, default=default)
