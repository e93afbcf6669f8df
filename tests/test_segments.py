"""Segments: the plan, resume after an interruption, parallel workers; all equal to the single-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from facecolor_video.cli import main
from facecolor_video.film.pipeline import ColorizeOptions, colorize_file
from facecolor_video.model.colorizer import Colorizer
from facecolor_video.scale.films import colorize_segmented
from facecolor_video.scale.segments import (
    plan_segments,
    prepare_work_folder,
    work_folder,
    work_key,
)
from tests.media import make_video

SETTINGS = dict(render_size=64, global_every=8, device="cpu")
# crf 0: lossless, so the decoded outputs of two runs compare the colorizer, not the encoder
OPTIONS = ColorizeOptions(crf=0, preset="ultrafast")
SEGMENT_SECONDS = 0.5  # 48 frames at 25 fps: 4 segments


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("segments")


@pytest.fixture(scope="module")
def clip(folder) -> Path:
    return make_video(folder / "film.mp4", n_frames=48, gray=True, audio_streams=1)


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer(**SETTINGS)


@pytest.fixture(scope="module")
def reference(folder, clip, colorizer) -> Path:
    """The single-process run everything is compared with."""
    destination = folder / "single.mp4"
    colorize_file(clip, destination, colorizer, OPTIONS)
    return destination


def decoded(path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.pts for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def assert_same_video(path, reference_path) -> None:
    pts, frames = decoded(path)
    reference_pts, reference_frames = decoded(reference_path)
    assert pts == reference_pts
    worst = min(psnr(a, b) for a, b in zip(frames, reference_frames))
    assert worst >= 50, f"worst frame PSNR {worst:.1f} dB"


# ---------------------------------------------------------------- the plan


def _check_cover(plan, count):
    segments = plan.segments
    assert segments[0].start == 0 and segments[-1].stop == count == plan.frame_count
    for before, after in zip(segments, segments[1:]):
        assert before.stop == after.start and before.stop_pts == after.start_pts
    for segment in segments:
        assert segment.decode_from <= segment.start < segment.stop <= segment.decode_to
    assert segments[-1].stop_pts is None


def test_plan_covers_every_frame_once(clip):
    plan = plan_segments(clip, SEGMENT_SECONDS, lead_in=23, tail=2, align=8)
    assert len(plan.segments) >= 3
    _check_cover(plan, 48)
    # the lead-in starts on a batch boundary, so batches match the single-process run
    assert all(s.decode_from % 8 == 0 for s in plan.segments)
    assert any(s.decode_from > 0 for s in plan.segments)  # some segments start from a seek


def test_plan_cuts_at_keyframes(folder):
    # ffv1 puts a keyframe every 12 frames (0.48 s here): each cut near 0.5 s steps lands on one
    intra = make_video(folder / "intra.mkv", n_frames=40, codec="ffv1", pix_fmt="yuv420p", audio_streams=0)
    plan = plan_segments(intra, 0.5)
    assert len(plan.segments) >= 3
    assert all(s.at_keyframe for s in plan.segments)
    _check_cover(plan, 40)
    # a short clip is one segment
    assert len(plan_segments(intra, 20).segments) == 1


def test_work_folder_is_tied_to_input_and_settings(folder, clip, tmp_path):
    key = work_key(clip, SETTINGS, OPTIONS, SEGMENT_SECONDS)
    assert key == work_key(clip, dict(SETTINGS), ColorizeOptions(crf=0, preset="ultrafast"), SEGMENT_SECONDS)
    assert key != work_key(clip, {**SETTINGS, "render_size": 96}, OPTIONS, SEGMENT_SECONDS)
    assert key != work_key(clip, SETTINGS, ColorizeOptions(crf=0, preset="ultrafast", smooth="ema"), SEGMENT_SECONDS)
    other = make_video(tmp_path / "other.mp4", n_frames=48, gray=False, audio_streams=1)
    assert key != work_key(other, SETTINGS, OPTIONS, SEGMENT_SECONDS)

    work = work_folder(tmp_path / "out.mp4")
    assert work.name == ".out.mp4.segments"
    assert prepare_work_folder(work, "a", resume=True) == set()
    (work / "plan.json").write_text(json.dumps({"key": "a"}))
    (work / "seg_00000.mp4").write_bytes(b"x")
    (work / "seg_00000.json").write_text(json.dumps({"index": 0, "file": "seg_00000.mp4"}))
    (work / ".seg_00001.partial-1234.mp4").write_bytes(b"half")
    assert prepare_work_folder(work, "a", resume=True) == {0}
    assert not (work / ".seg_00001.partial-1234.mp4").exists()
    assert prepare_work_folder(work, "b", resume=True) == set()  # stale: another input or settings
    assert not (work / "seg_00000.mp4").exists()


# ---------------------------------------------------------------- runs


def test_resume_after_interruption_with_two_workers_gives_the_single_run(folder, clip, colorizer, reference):
    """Stop after the first segment, then resume with --workers 2: same frames, pts and audio as one process."""
    destination = folder / "resumed.mp4"
    finished = []

    def stop_after_first(job, record):
        finished.append(record["index"])
        raise Interrupted

    with pytest.raises(Interrupted):
        colorize_segmented(clip, destination, SETTINGS, OPTIONS, SEGMENT_SECONDS, colorizer=colorizer,
                           on_segment=stop_after_first)
    work = work_folder(destination)
    assert not destination.exists()
    assert finished == [0] and [p.name for p in work.glob("seg_*.json")] == ["seg_00000.json"]
    plan = json.loads((work / "plan.json").read_text())
    assert len(plan["segments"]) >= 3

    result = CliRunner().invoke(main, [
        "colorize", str(clip), str(destination), "--resume", "--workers", "2",
        "--segment-seconds", str(SEGMENT_SECONDS), "--render-size", "64", "--global-every", "8", "--device", "cpu",
        "--crf", "0", "--preset", "ultrafast",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # the finished segment is kept, only the others are colorized
    assert f"({len(plan['segments']) - 1} segment(s) colorized, 1 kept from before)" in result.output
    assert not work.exists()
    assert_same_video(destination, reference)
    assert audio_packets(destination) == audio_packets(clip)


@pytest.mark.slow
def test_resume_after_sigkill(folder, clip, reference):
    """A real interruption: SIGKILL once the first segment is recorded, then --resume."""
    destination = folder / "killed.mp4"
    command = [sys.executable, "-m", "facecolor_video", "colorize", str(clip), str(destination), "--resume",
               "--segment-seconds", str(SEGMENT_SECONDS), "--render-size", "64", "--global-every", "8",
               "--device", "cpu", "--crf", "0", "--preset", "ultrafast", "-q"]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[1])
    work = work_folder(destination)
    deadline = time.monotonic() + 120
    while not (work / "seg_00000.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not destination.exists()
    kept = len(list(work.glob("seg_*.json")))
    assert kept >= 1

    result = CliRunner().invoke(main, command[3:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert_same_video(destination, reference)
    assert audio_packets(destination) == audio_packets(clip)
