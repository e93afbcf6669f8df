"""bench: every stage timed, the transcode floor, the model-only sweep; the threaded pipeline and OOM halving.

No timing assertions: speed targets live in the benchmark, not in tests.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facecolor_video.bench import (
    STAGES,
    format_benchmark,
    format_sweep,
    run_benchmark,
    run_model_sweep,
)
from facecolor_video.cli import main
from facecolor_video.film.pipeline import ColorizeOptions, colorize_file
from facecolor_video.media.prefetch import BackgroundWriter, Prefetcher
from facecolor_video.model.colorizer import Colorizer
from tests.media import make_video

FRAMES = 12
OPTIONS = ColorizeOptions(batch_size=4, crf=0, preset="ultrafast", audio=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def clip(folder) -> Path:
    return make_video(folder / "tiny.mp4", n_frames=FRAMES, size=(64, 48), gray=True, audio_streams=1)


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer(device="cpu", render_size=32, global_every=4)


def _decoded(path: Path) -> tuple[list[np.ndarray], list[int]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [frame.to_ndarray(format="rgb24") for frame in frames], [frame.pts for frame in frames]


# ------------------------------------------------------------------ bench
def test_benchmark_times_every_stage_and_the_floor(clip, colorizer):
    result = run_benchmark(clip, colorizer, OPTIONS, frames=8)
    assert result["frames"] == 8
    assert set(result["stages"]) == set(STAGES)
    for name, stage in result["stages"].items():
        assert stage["seconds"] > 0, name
        assert stage["frames_per_second"] > 0, name
        assert 0 < stage["share"] <= 1, name
    assert math.isclose(sum(stage["share"] for stage in result["stages"].values()), 1.0, rel_tol=1e-6)
    assert result["end_to_end"]["frames"] == 8
    assert result["end_to_end"]["frames_per_second"] > 0
    assert result["floor"]["frames"] == 8
    assert result["floor"]["frames_per_second"] > 0
    assert result["ratio"] > 0
    environment = result["environment"]
    assert environment["resolution"] == "64x48"
    assert environment["render_resolution"] == "40x32"
    assert environment["device"] == "cpu" and environment["precision"] in ("fp32", "bf16")
    assert environment["threads"] >= 1
    text = format_benchmark(result)
    for name in STAGES:
        assert name in text
    # a film to a video: the planes path, each thread's busy share, the encoder alone
    assert environment["composition"] == "planes"
    assert set(result["threads_busy"]) == {"reader", "network", "composer", "encoder"}
    assert all(0 < busy["share"] for busy in result["threads_busy"].values())
    assert result["encode_only_floor"]["frames"] == 8 and result["encode_only_floor"]["frames_per_second"] > 0
    assert 0 < result["pipeline_peak_rss_mib"] <= result["peak_rss_mib"]
    assert "encode-only floor" in text and "composer" in text
    assert "transcode floor" in text and "pipeline / floor" in text


def test_benchmark_leaves_no_files(clip, colorizer, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run_benchmark(clip, colorizer, OPTIONS, frames=4)
    assert list(tmp_path.iterdir()) == []


def test_cli_bench_json(clip):
    result = CliRunner().invoke(main, ["bench", str(clip), "--frames", "6", "--json", "--batch-size", "3",
                                       "--render-size", "32", "--device", "cpu", "--preset", "ultrafast"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["frames"] == 6
    assert set(data["stages"]) == set(STAGES)
    assert data["floor"]["frames_per_second"] > 0
    assert data["environment"]["batch_size"] == 3


def test_model_sweep_one_row_per_batch_size(clip, colorizer):
    result = run_model_sweep(clip, colorizer, batch_sizes=(1, 3, 16), peak_tflops=1.0, min_seconds=0.01)
    assert [row["batch_size"] for row in result["rows"]] == [1, 3, 16]  # 16 > the clip's 12 frames: repeated
    flops = result["flops_per_frame"]
    assert flops["head"] > 0 and flops["global_features"] > 0
    assert flops["per_frame"] == pytest.approx(flops["head"] + flops["global_features"] / colorizer.global_every)
    for row in result["rows"]:
        assert row["frames"] >= row["batch_size"]
        assert row["frames_per_second"] > 0
        assert row["tflops"] > 0
        assert row["fraction_of_peak"] == pytest.approx(row["tflops"] / 1.0)
    assert "GFLOP/frame" in format_sweep(result)


def test_cli_sweep_model_only(clip):
    result = CliRunner().invoke(main, ["bench", str(clip), "--sweep-batch", "2,4", "--model-only", "--json",
                                       "--peak-tflops", "989", "--render-size", "32", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [row["batch_size"] for row in data["rows"]] == [2, 4]
    assert data["flops_per_frame"]["per_frame"] > 0
    assert all(0 < row["fraction_of_peak"] < 1 for row in data["rows"])


def test_cli_sweep_rejects_bad_sizes(clip):
    result = CliRunner().invoke(main, ["bench", str(clip), "--sweep-batch", "8,x", "--model-only"])
    assert result.exit_code == 2


# ------------------------------------------------------------------ pipeline
def test_overlap_gives_the_same_output_as_serial(folder, clip, colorizer):
    serial, threaded = folder / "serial.mp4", folder / "threaded.mp4"
    # the same torch thread count: a different one changes convolution rounding, not the order of frames
    colorize_file(clip, serial, colorizer, ColorizeOptions(batch_size=5, crf=0, preset="ultrafast", overlap=False, threads=1))
    report = colorize_file(clip, threaded, colorizer,
                           ColorizeOptions(batch_size=5, crf=0, preset="ultrafast", overlap=True, threads=1))
    assert report.frames_read == report.frames_written == FRAMES
    serial_frames, serial_pts = _decoded(serial)
    threaded_frames, threaded_pts = _decoded(threaded)
    assert serial_pts == threaded_pts
    assert len(threaded_frames) == FRAMES
    for a, b in zip(serial_frames, threaded_frames):
        np.testing.assert_array_equal(a, b)


def test_max_frames(folder, clip, colorizer):
    report = colorize_file(clip, folder / "short.mp4", colorizer,
                           ColorizeOptions(batch_size=4, crf=0, preset="ultrafast", audio=False, max_frames=7, overwrite=True))
    assert report.frames_written == 7
    assert len(_decoded(folder / "short.mp4")[0]) == 7


def test_threads_option_is_restored(folder, clip, colorizer):
    before = torch.get_num_threads()
    colorize_file(clip, folder / "one_thread.mp4", colorizer,
                  ColorizeOptions(batch_size=4, crf=0, preset="ultrafast", threads=1, overwrite=True))
    assert torch.get_num_threads() == before


def test_out_of_memory_halves_the_batch_and_keeps_every_frame(folder, clip):
    colorizer = Colorizer(device="cpu", render_size=32, global_every=4)
    colorizer._head_pool_size = 1  # whole batches, as on CUDA (where out-of-memory happens)
    reference = folder / "reference.mp4"
    colorize_file(clip, reference, colorizer, ColorizeOptions(batch_size=8, crf=0, preset="ultrafast", overwrite=True))

    head = colorizer.head
    seen = []

    def small_memory_head(lightness, vectors):
        seen.append(lightness.shape[0])
        if lightness.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return head(lightness, vectors)

    colorizer.head = small_memory_head
    squeezed = folder / "squeezed.mp4"
    report = colorize_file(clip, squeezed, colorizer, ColorizeOptions(batch_size=8, crf=0, preset="ultrafast", overwrite=True))
    assert report.frames_read == report.frames_written == FRAMES
    assert colorizer.chunk_limit == 2 and colorizer.oom_retries >= 2  # 8 -> 4 -> 2, then kept
    assert 8 in seen and 4 in seen and max(seen[seen.index(2):]) <= 2
    reference_frames, reference_pts = _decoded(reference)
    squeezed_frames, squeezed_pts = _decoded(squeezed)
    assert squeezed_pts == reference_pts and len(squeezed_frames) == FRAMES
    for a, b in zip(reference_frames, squeezed_frames):
        # same network, smaller batches: equal up to convolution rounding
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_out_of_memory_at_one_frame_is_an_error(clip):
    colorizer = Colorizer(device="cpu", render_size=32)

    def no_memory(lightness, vectors):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    colorizer.head = no_memory
    with pytest.raises(torch.cuda.OutOfMemoryError):
        colorizer.colorize(np.zeros((2, 16, 16, 3), np.uint8))


def test_prepare_8bit_matches_the_reference_lightness(colorizer):
    from facecolor_video.model.color import rgb_to_lightness

    frames = np.random.default_rng(0).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    expected = rgb_to_lightness(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(colorizer.prepare(frames).lightness, expected, rtol=0, atol=1e-4)


# ------------------------------------------------------------------ prefetch
def test_prefetcher_keeps_order_and_raises_at_the_failure():
    def numbers():
        for i in range(50):
            if i == 30:
                raise ValueError("broken at 30")
            yield i

    got = []
    with pytest.raises(ValueError, match="broken at 30"):
        with Prefetcher(numbers(), depth=3) as ahead:
            for item in ahead:
                got.append(item)
    assert got == list(range(30))


def test_prefetcher_stops_when_left_early():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Prefetcher(endless(), depth=2) as ahead:
        for item in ahead:
            if item == 5:
                break
    assert closed.wait(5)


def test_background_writer_keeps_order_and_reports_errors():
    written = []

    def slow_write(item):
        time.sleep(0.001)
        written.append(item)

    with BackgroundWriter(slow_write, depth=2) as behind:
        for i in range(40):
            behind.put(i)
    assert written == list(range(40))

    def failing(item):
        if item == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWriter(failing, depth=2) as behind:
            for i in range(100):
                behind.put(i)
