"""Never lose a frame, never lose a file: every bad input has one clear outcome.

Either a correct output, or one line on stderr naming the problem and the
file, exit code 1, nothing under the output name, no temporary file left, and
the input untouched (sha256 before and after). Decisions documented here:

- A truncated Matroska file is colorized as far as it decodes; a ``note:``
  line says where decoding stopped (the output holds what decoded). A
  truncated MP4 usually loses its index (moov) and cannot be opened: a clear
  error.
- A packet that cannot be decoded is counted; its frame is filled by repeating
  the previous output frame at the lost frame's pts, so the frame count and the
  audio sync are kept, and a ``note:`` line says how many were filled.
- "Folder not writable" is simulated by monkeypatching ``os.access`` (as root,
  chmod does not stop writes); "disk full" by making the writer's mux raise
  ``OSError(ENOSPC)`` in the middle of the film.

Cases already covered by tests/test_cli_photos.py (missing input, directory,
text renamed .png, RGBA, 16-bit PNG, gray JPEG, odd-size photo, output equal to
input through symlink and hard link, existing output, unknown extension,
missing output folder) are not repeated here.

The model is loaded once for the module: ``cli.make_colorizer`` is patched to
hand out one CPU colorizer at render size 64, and records the recipes it was
asked for (``test_the_command_line_settings_reach_the_colorizer`` checks them;
tests/test_cli_options.py runs the options with the colorizer they ask for).
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video import cli
from facecolor_video.cli import execute
from facecolor_video.media.video import VideoWriter
from facecolor_video.model.color import rgb_to_lightness
from facecolor_video.model.recipe import ColorizerSettings
from tests.media import (
    make_audio_only,
    make_image,
    make_video,
    mux_silence,
    pattern_frame,
)

QUIET = ["--quiet"]
_COLORIZER = []


# the recipes the command line asked each colorizer for (the shared one ignores them: see the test below)
ASKED: list[ColorizerSettings] = []


def _shared_colorizer(recipe: ColorizerSettings):
    ASKED.append(recipe)
    if not _COLORIZER:
        from facecolor_video.model.colorizer import Colorizer

        _COLORIZER.append(Colorizer(device="cpu", render_size=64))
    return _COLORIZER[0]


@pytest.fixture(autouse=True)
def one_model(monkeypatch):
    monkeypatch.setattr(cli, "make_colorizer", _shared_colorizer)


def test_the_command_line_settings_reach_the_colorizer(tmp_path, capsys):
    """The shared colorizer stands in for the one the command line builds: it is asked for the user's settings."""
    source = make_video(tmp_path / "clip.mp4", n_frames=4, audio_streams=0)
    ASKED.clear()
    assert execute(["colorize", str(source), str(tmp_path / "out.mkv"), "--quiet", "--model", "general",
                    "--device", "cpu", "--precision", "fp32", "--render-size", "48", "--global-every", "3",
                    "--chroma-gain", "1.5", "--faces", "off"]) == 0, capsys.readouterr().err
    assert ASKED == [ColorizerSettings(model="general", device="cpu", precision="fp32", render_size=48,
                                       global_every=3, chroma_gain=1.5, faces="off")]


# Helpers that read results back with PyAV directly, not through the code under test.


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".partial-" in path.name]


def _frame_times(path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def _packet_times(path) -> list[Fraction]:
    """Presentation times of every video packet of the file (decodable or not), sorted."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(p.pts * p.time_base for p in container.demux(stream) if p.size and p.pts is not None)


def _payloads(path, stream_type: str) -> list[list[str]]:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == stream_type]
        digests = {s.index: [] for s in streams}
        for packet in container.demux(*streams) if streams else ():
            if packet.size:
                digests[packet.stream.index].append(hashlib.sha256(bytes(packet)).hexdigest())
        return [digests[s.index] for s in streams]


def _rgb_frames(path, format: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format=format) for frame in container.decode(video=0)]


def _lightness(rgb: np.ndarray) -> np.ndarray:
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    tensor = torch.from_numpy(rgb.astype(np.float32) / scale).permute(2, 0, 1)[None]
    return rgb_to_lightness(tensor)[0, 0].numpy()


def _expect_clean_failure(capsys, source: Path, output: Path, needles, extra=()):
    """Exit 1, one line on stderr naming the file and the problem, no output, no temp file, input untouched."""
    before = _digest(source) if source.is_file() else None
    code = execute(["colorize", str(source), str(output), *QUIET, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    assert not output.exists()
    assert _leftovers(output.parent) == []
    if before is not None:
        assert _digest(source) == before
    return err


def _expect_success(capsys, source: Path, output: Path, extra=()) -> list[str]:
    """Exit 0, the input untouched, no temp file; returns the note lines."""
    before = _digest(source)
    code = execute(["colorize", str(source), str(output), *QUIET, *extra])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert output.is_file()
    assert _leftovers(output.parent) == []
    assert _digest(source) == before
    return [line for line in err.splitlines() if line.startswith("note:")]


# Inputs that cannot be colorized


def _no_frames(path: Path) -> Path:
    """A film with a video stream that holds no frame (and some audio)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        mux_silence(container, container.add_stream("aac", rate=16000))
    return path


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path, source: Path, fraction: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize(
    "make, needles",
    [
        (lambda d: _file(d / "empty.mp4", b""), ["empty.mp4", "empty"]),
        (lambda d: _file(d / "text.mp4", b"not a film\n" * 40), ["text.mp4", "cannot open"]),
        (lambda d: make_audio_only(d / "tone.m4a"), ["tone.m4a", "no video"]),
        (lambda d: _no_frames(d / "blank.mkv"), ["blank.mkv", "no frame"]),
        (lambda d: _truncated(d / "cut.mp4", make_video(d / "whole.mp4", n_frames=12), 0.6), ["cut.mp4", "cannot open"]),
    ],
    ids=["zero-byte", "text-renamed-mp4", "audio-only", "video-stream-without-frames",
         "truncated-mp4-no-index"],
)
def test_unusable_input_is_one_clear_error(tmp_path, capsys, make, needles):
    source = make(tmp_path)
    _expect_clean_failure(capsys, source, tmp_path / "out.mp4", needles)


def test_video_with_only_undecodable_frames_is_one_clear_error(tmp_path, capsys):
    source = make_video(tmp_path / "ruined.mkv", n_frames=3, codec="ffv1", audio_streams=0, corrupt_frames=(0, 1, 2))
    _expect_clean_failure(capsys, source, tmp_path / "out.mkv", ["ruined.mkv", "no frame could be decoded"])


# Damaged films: colorized, nothing silently dropped


def test_truncated_mkv_is_colorized_as_far_as_it_decodes(tmp_path, capsys):
    whole = make_video(tmp_path / "whole.mkv", n_frames=30, audio_streams=1)
    source = _truncated(tmp_path / "cut.mkv", whole, 0.5)
    with av.open(str(source)) as container:
        decodable = len(list(container.decode(video=0)))
    assert 0 < decodable < 30
    output = tmp_path / "out.mkv"
    notes = _expect_success(capsys, source, output)
    assert len(notes) == 1 and "cut.mkv" in notes[0] and "truncated" in notes[0], notes
    assert f"{decodable} frame(s)" in notes[0]
    assert _frame_times(output) == _frame_times(source)


def test_complete_mkv_gets_no_truncation_note(tmp_path, capsys):
    source = make_video(tmp_path / "whole.mkv", n_frames=10, audio_streams=1, start_pts=30)
    assert _expect_success(capsys, source, tmp_path / "out.mkv") == []


def test_lost_frames_are_filled_so_count_and_audio_sync_are_kept(tmp_path, capsys):
    source = make_video(tmp_path / "damaged.mkv", n_frames=12, codec="ffv1", audio_streams=1, corrupt_frames=(4, 7))
    with av.open(str(source)) as container:
        decoded_times = []
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for packet in container.demux(stream):
            try:
                decoded_times += [f.pts * f.time_base for f in packet.decode()]
            except av.FFmpegError:
                pass
    lost = sorted(set(_packet_times(source)) - set(decoded_times))
    assert len(lost) == 2 and len(decoded_times) == 10
    output = tmp_path / "out.mkv"
    notes = _expect_success(capsys, source, output)
    assert len(notes) == 1 and "2 damaged packet(s)" in notes[0] and "2 lost frame(s) filled" in notes[0], notes
    # every packet's moment has a frame: the count and the pts of the source, and its audio byte for byte
    assert _frame_times(output) == _packet_times(source)
    assert _payloads(output, "audio") == _payloads(source, "audio")
    # a filled frame repeats the one before it; the pattern moves, so neighbours otherwise differ
    times = _frame_times(output)
    frames = [f.astype(np.int16) for f in _rgb_frames(output)]
    for moment in lost:
        at = times.index(moment)
        assert np.abs(frames[at] - frames[at - 1]).mean() < 2.0
    assert np.abs(frames[2] - frames[1]).mean() > 4.0


# Images of every kind


@pytest.mark.parametrize(
    "name, size, mode",
    [
        ("cmyk.jpg", (64, 48), "CMYK"),
        ("gray16.png", (64, 48), "I;16"),
        ("dot.png", (1, 1), "RGB"),
        ("dot.jpg", (1, 1), "L"),
        ("sliver.png", (1, 37), "RGBA"),
    ],
    ids=["cmyk-jpeg", "16-bit-gray-png", "1x1-png", "1x1-jpeg", "1x37-rgba"],
)
def test_unusual_images_are_colorized(tmp_path, capsys, name, size, mode):
    source = make_image(tmp_path / name, size=size, mode=mode)
    output = tmp_path / ("out" + source.suffix)
    _expect_success(capsys, source, output)
    # read back with PyAV at 16 bits (Pillow clips 16-bit gray when it converts to RGB)
    (source_rgb,), (output_rgb,) = _rgb_frames(source, "rgb48le"), _rgb_frames(output, "rgb48le")
    assert output_rgb.shape == source_rgb.shape
    assert np.abs(_lightness(source_rgb) - _lightness(output_rgb)).mean() < 3.0


def _large_image(path: Path, width: int, height: int) -> Path:
    tile = pattern_frame(5, 480, 270, gray=True)
    Image.fromarray(np.tile(tile, (height // 270, width // 480, 1))).save(path, quality=90)
    return path


def _colorize_large(tmp_path, width: int, height: int) -> None:
    """The command line in a process of its own, so its peak memory is its own, not the test session's."""
    source = _large_image(tmp_path / f"big {width}.jpg", width, height)
    output = tmp_path / f"big {width} colour.jpg"
    before = _digest(source)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "facecolor_video", "colorize", str(source), str(output),
                              "--quiet", "--render-size", "64", "--device", "cpu"],
                             stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)  # the child's own resource usage
    err = child.stderr.read()
    child.stderr.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    assert child.returncode == 0, err
    assert _digest(source) == before and _leftovers(tmp_path) == []
    peak_gb = usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    with Image.open(output) as image:
        assert image.size == (width, height)
    print(f"{width}x{height}: {seconds:.1f} s, peak RSS of the colorizing process {peak_gb:.2f} GB")
    assert peak_gb < 4.0  # measured 1.95 GB for 7680x4320 (the model, the picture and its strips)


def test_8k_image_completes_in_bounded_memory(tmp_path):
    # about 25 s on a loaded 2-core machine (under the ~60 s that would make it a slow test)
    _colorize_large(tmp_path, 7680, 4320)


# Films of every kind


def test_ten_bit_video_stays_ten_bit(tmp_path, capsys):
    # a black-and-white film: a video output keeps its luma plane, which is its luminance
    source = make_video(tmp_path / "deep.mkv", pix_fmt="yuv420p10le", n_frames=6, audio_streams=0, gray=True)
    output = tmp_path / "out.mkv"
    _expect_success(capsys, source, output)
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    assert _frame_times(output) == _frame_times(source)
    before, after = _rgb_frames(source, "rgb48le"), _rgb_frames(output, "rgb48le")
    assert np.any(after[0] % 257)  # more than 8 bits came through
    assert np.abs(_lightness(before[0]) - _lightness(after[0])).mean() < 1.5


def test_full_range_video_keeps_its_luminance(tmp_path, capsys):
    source = make_video(tmp_path / "full.mp4", pix_fmt="yuvj420p", n_frames=6, audio_streams=0, gray=True)
    with av.open(str(source)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuvj420p"
    output = tmp_path / "out.mp4"
    _expect_success(capsys, source, output)
    before, after = _rgb_frames(source), _rgb_frames(output)
    assert len(before) == len(after) == 6
    # a range mix-up (full read as limited or back) shifts L by several units on this pattern
    for a, b in zip(before, after):
        assert np.abs(_lightness(a) - _lightness(b)).mean() < 1.5


def test_odd_size_video_keeps_size_and_frames(tmp_path, capsys):
    source = make_video(tmp_path / "odd.mp4", size=(67, 45), n_frames=8)
    output = tmp_path / "out.mp4"
    _expect_success(capsys, source, output)
    assert _rgb_frames(output)[0].shape == (45, 67, 3)
    assert _frame_times(output) == _frame_times(source)
    assert _payloads(output, "audio") == _payloads(source, "audio")


def test_rotation_is_kept(tmp_path, capsys):
    source = tmp_path / "turned.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for index in range(4):
            frame = av.VideoFrame.from_ndarray(pattern_frame(index, 64, 48, gray=True), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    output = tmp_path / "out.mp4"
    _expect_success(capsys, source, output)
    with av.open(str(output)) as container:
        first = next(container.decode(video=0))
        assert int(first.rotation) == 90 and (first.width, first.height) == (64, 48)


def test_variable_frame_rate_keeps_every_pts(tmp_path, capsys):
    source = make_video(tmp_path / "vfr.mkv", n_frames=10, vfr=True, start_pts=120)
    times = _frame_times(source)
    assert len({b - a for a, b in zip(times, times[1:])}) > 1
    for name in ("out.mkv", "out.mp4"):
        _expect_success(capsys, source, tmp_path / name)
        assert _frame_times(tmp_path / name) == times


def test_audio_streams_and_subtitles_are_all_copied(tmp_path, capsys):
    source = make_video(tmp_path / "many.mkv", n_frames=12, audio_streams=3, subtitle=True)
    output = tmp_path / "out.mkv"
    assert _expect_success(capsys, source, output) == []
    audio = _payloads(source, "audio")
    assert len(audio) == 3 and len({tuple(a) for a in audio}) == 3
    assert _payloads(output, "audio") == audio
    assert _payloads(output, "subtitle") == _payloads(source, "subtitle") != []
    assert _frame_times(output) == _frame_times(source)


# Paths and outputs


def test_paths_with_spaces_and_non_ascii(tmp_path, capsys):
    folder = tmp_path / "Films à voir 日本"
    folder.mkdir()
    source = make_video(folder / "mon film – 1927 ü.mp4", n_frames=6)
    output = folder / "résultat en couleur 彩色.mp4"
    _expect_success(capsys, source, output)
    assert _frame_times(output) == _frame_times(source)
    # and a failure names such a path readably
    _expect_clean_failure(capsys, folder / "absent é.mp4", folder / "x.mp4", ["absent é.mp4"])


def test_output_folder_missing_with_output_dir(tmp_path, capsys):
    source = make_image(tmp_path / "photo.png", mode="L")
    code = execute(["colorize", str(source), "--output-dir", str(tmp_path / "nowhere"), *QUIET])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "nowhere" in err, err


def test_output_folder_not_writable(tmp_path, capsys, monkeypatch):
    # As root chmod does not stop writes: the folder is made to look read-only to os.access.
    source = make_video(tmp_path / "clip.mp4", n_frames=4, audio_streams=0)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == locked and mode & os.W_OK
                        else real_access(path, mode, **kw))
    _expect_clean_failure(capsys, source, locked / "out.mp4", ["locked", "not writable"])
    assert list(locked.iterdir()) == []


def test_disk_full_mid_film_leaves_nothing(tmp_path, capsys, monkeypatch):
    source = make_video(tmp_path / "clip.mkv", n_frames=8, audio_streams=1)
    output = tmp_path / "out.mkv"
    output_existing = tmp_path / "kept.mkv"
    output_existing.write_bytes(b"an older result")
    real_mux = VideoWriter._mux_video
    muxed = []

    def mux_until_full(self, packet):
        muxed.append(packet)
        if len(muxed) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_mux(self, packet)

    monkeypatch.setattr(VideoWriter, "_mux_video", mux_until_full)
    # ultrafast: no lookahead, so packets leave the encoder while frames are still coming
    fast = ["--preset", "ultrafast"]
    _expect_clean_failure(capsys, source, output, ["out.mkv", "disk full", "encoding frame"], extra=fast)
    assert len(muxed) == 4  # it failed in the middle of the film, not before starting
    muxed.clear()
    # an existing output being replaced is kept as it was
    _expect_clean_failure_keeping(capsys, source, output_existing, fast)


def _expect_clean_failure_keeping(capsys, source: Path, output: Path, extra) -> None:
    code = execute(["colorize", str(source), str(output), "--overwrite", *QUIET, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "disk full" in err, err
    assert output.read_bytes() == b"an older result"
    assert _leftovers(output.parent) == []


# Interrupted runs


def test_sigint_and_sigterm_leave_nothing(tmp_path):
    source = make_video(tmp_path / "long.mp4", n_frames=1500, size=(64, 48), audio_streams=1)
    before = _digest(source)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("FACECOLOR_DEBUG", None)
    runs = {}
    for sent in (signal.SIGINT, signal.SIGTERM):
        folder = tmp_path / sent.name
        folder.mkdir()
        command = [sys.executable, "-m", "facecolor_video", "colorize", str(source), str(folder / "out.mp4"),
                   "--quiet", "--device", "cpu", "--render-size", "64"]
        # a shell starts background jobs with SIGINT ignored, and children inherit that: give the run
        # the disposition a terminal user's command has
        runs[sent] = (folder, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)))
    try:
        pending = dict(runs)
        deadline = time.monotonic() + 240
        while pending and time.monotonic() < deadline:
            for sent, (folder, process) in list(pending.items()):
                if _leftovers(folder):  # it started writing
                    process.send_signal(sent)
                    del pending[sent]
                else:
                    assert process.poll() is None, process.communicate()[1].decode()
            time.sleep(0.05)
        assert not pending, "the runs never started writing"
        for sent, (folder, process) in runs.items():
            _, err = process.communicate(timeout=120)
            err = err.decode().strip()
            assert process.returncode == 130, (sent.name, err)
            assert "Traceback" not in err and len(err.splitlines()) == 1 and "interrupted" in err, (sent.name, err)
            assert list(folder.iterdir()) == [], sent.name
    finally:
        for _, process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert _digest(source) == before
