"""Faults of what a run stands on, not of the film: worker processes or Ray dying, two runs of one output, input cut short.

Each fault of the machine gives one line that names what failed and says what is kept, exit code 1 and no
traceback; a rerun finishes the rest. A cut input is colorized as far as it goes, with one line that says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from facecolor_video.errors import InfrastructureError
from tests.media import make_video


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, as {pid: command name}, read from /proc."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
        names[int(entry.name)] = name
    found, stack = {}, [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found[child] = names[child]
            stack.append(child)
    return found


def kill_mid_run(run: subprocess.Popen, victims, started) -> str:
    """SIGKILL the last of ``victims(descendants)`` once there is one and ``started()``; the run's stderr."""
    try:
        deadline = time.monotonic() + 120
        chosen = []
        while time.monotonic() < deadline and run.poll() is None:
            chosen = victims(descendants(run.pid))
            if chosen and started():  # mid-run: a segment has landed
                break
            time.sleep(0.1)
        assert chosen, "the process to kill was never seen at work"
        os.kill(chosen[-1], signal.SIGKILL)
        return run.communicate(timeout=120)[1]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "facecolor_video", *arguments]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_ray_raylet_killed_mid_batch_gives_one_line_and_resume_finishes(tmp_path):
    reels = tmp_path / "reels"
    reels.mkdir()
    sources = [make_video(reels / f"reel{i}.mp4", n_frames=48, size=(64, 48), gray=True) for i in range(2)]
    out = tmp_path / "colour"
    out.mkdir()
    arguments = ["batch", str(reels), "--output-dir", str(out), "--ray", "local", "--segment-seconds", "0.2",
                 "--render-size", "32", "--device", "cpu", "--preset", "ultrafast", "-q"]
    environment = dict(os.environ, RAY_DISABLE_USAGE_STATS="1", RAY_USAGE_STATS_ENABLED="0")
    run = subprocess.Popen(cli(*arguments), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=environment, start_new_session=True)
    stderr = kill_mid_run(run, lambda found: [pid for pid, name in found.items() if name == "raylet"],
                          lambda: bool(list(out.glob(".*/seg_*"))))
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    # batch resumes by itself: the line says to rerun the command as it was
    assert len(lines) == 1 and "Ray failed" in lines[0] and "rerun the same command to finish" in lines[0], stderr
    # nothing half-written under an output name; a rerun with --resume finishes every film
    for source in sources:
        target = out / source.name
        assert not target.exists() or frame_count(target) == 48
    again = subprocess.run(cli(*arguments), capture_output=True, text=True, env=environment,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    for source in sources:
        assert frame_count(out / source.name) == 48


def test_a_dead_worker_process_is_one_line_and_resume_finishes(tmp_path):
    source = make_video(tmp_path / "reel.mp4", n_frames=72, size=(64, 48), gray=True)
    target = tmp_path / "colour.mp4"
    arguments = ["colorize", str(source), str(target), "--workers", "2", "--segment-seconds", "0.2",
                 "--render-size", "32", "--device", "cpu", "--preset", "ultrafast", "-q"]
    run = subprocess.Popen(cli(*arguments), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    # the pool's workers: once two are up and a segment landed, one of them is at work
    stderr = kill_mid_run(run, lambda found: [pid for pid, name in found.items() if name.startswith("python")][1:],
                          lambda: bool(list(tmp_path.glob(".*/seg_*"))))
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and "--workers process died" in lines[0] and "with --resume" in lines[0], stderr
    assert not target.exists()
    again = subprocess.run(cli(*arguments, "--resume"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert frame_count(target) == 72


def test_infrastructure_errors_are_the_projects_own():
    from facecolor_video.errors import FacecolorError

    assert issubclass(InfrastructureError, FacecolorError)


def test_a_second_resume_of_the_same_output_is_refused_while_the_first_runs(tmp_path):
    source = make_video(tmp_path / "reel.mp4", n_frames=96, size=(64, 48), gray=True)
    target = tmp_path / "colour.mp4"
    arguments = ["colorize", str(source), str(target), "--resume", "--segment-seconds", "0.2",
                 "--render-size", "32", "--device", "cpu", "--preset", "ultrafast", "-q"]
    first = subprocess.Popen(cli(*arguments), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and not list(tmp_path.glob(".*/seg_*")):
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second could start"
        second = subprocess.run(cli(*arguments), capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert second.stderr.strip().count("\n") == 0 and "another run is writing this output" in second.stderr
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr  # the second run took nothing away from the first
    assert frame_count(target) == 96
    assert not list(tmp_path.glob(".*"))  # no lock file or work folder left


def test_a_crashed_run_leaves_no_stale_lock(tmp_path):
    from facecolor_video.media.outputs import OutputLock

    target = tmp_path / "colour.mp4"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from facecolor_video.media.outputs import OutputLock; "
        f"lock = OutputLock({str(target)!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match="another run is writing this output"):
            OutputLock(target).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own
        holder.wait()
    lock = OutputLock(target).acquire()  # the dead run's lock is gone with it
    lock.release()
    assert not lock.path.exists()


@pytest.mark.parametrize("through_stdin", [False, True])
def test_input_cut_short_is_one_line_with_the_frames_received(tmp_path, through_stdin):
    source = make_video(tmp_path / "reel.mkv", n_frames=48, size=(64, 48), gray=True)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(source.read_bytes()[:source.stat().st_size // 2])
    target = tmp_path / "colour.mkv"
    arguments = ["colorize", "-" if through_stdin else str(cut), str(target), "--render-size", "32", "--device",
                 "cpu", "--preset", "ultrafast", "-q"]
    with open(cut, "rb") as stdin:
        run = subprocess.run(cli(*arguments), stdin=stdin if through_stdin else subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    frames = frame_count(target)
    assert 0 < frames < 48
    lines = [line for line in run.stderr.splitlines() if "truncated" in line]
    assert len(lines) == 1 and f"the {frames} frame(s) that decoded were colorized" in lines[0], run.stderr


def test_a_disk_short_of_space_is_told_before_the_run_with_the_numbers(tmp_path, monkeypatch, capsys):
    import re
    from collections import namedtuple

    from facecolor_video.cli import execute
    from facecolor_video.media import outputs
    from facecolor_video.media.video import VideoReader

    source = make_video(tmp_path / "reel.mp4", n_frames=24, size=(64, 48), gray=True)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2048, 2048))
    said: list[str] = []  # stderr so far, gathered each time decoding starts
    decoding_started = []
    frames = VideoReader.frames

    def watched(self, *args, **kwargs):
        said.append(capsys.readouterr().err)
        decoding_started.append("warning:" in "".join(said))  # told before the first frame
        return frames(self, *args, **kwargs)

    monkeypatch.setattr(VideoReader, "frames", watched)
    common = ["--render-size", "32", "--device", "cpu", "--preset", "ultrafast", "-q"]
    assert execute(["colorize", str(source), str(tmp_path / "single.mp4"), *common]) == 0
    assert decoding_started and decoding_started[0]  # the warning came before decoding
    assert execute(["colorize", str(source), str(tmp_path / "segmented.mp4"), "--resume", *common]) == 0
    err = "".join(said) + capsys.readouterr().err
    assert "warning:" in err
    with VideoReader(source) as reader:
        single = outputs.estimate_output_bytes(reader.width, reader.height, float(reader.frame_rate),
                                               float(reader.duration), source.stat().st_size)
    assert single >= source.stat().st_size
    needed = [float(value) for value in re.findall(r"about ([\d.]+) KiB is needed", err)]
    assert needed and needed[-1] == pytest.approx(2 * single / 1024, rel=0.01)  # segments + the joined film
    monkeypatch.undo()
    assert outputs.space_shortfall(tmp_path / "x.mp4", single) is None  # a real disk with room: no warning
