"""Archival sources into every output container: the output is decided before the first frame and never fails at the end.

For each kind of source (tests/archival_media.py) and each container: exit 0,
every frame with its time, each audio stream copied byte for byte or
converted (losslessly where the source is lossless: same decoded samples),
seekable, and FFmpeg decodes it without an error line (where the ffmpeg
command is installed). Segmented runs join into Matroska and decode frame for
frame. The model is loaded once, as in test_reliability.py (the settings the
command line asks for are recorded and checked).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facecolor_video import cli
from facecolor_video.cli import execute
from facecolor_video.film.pipeline import ColorizeOptions, colorize_file
from facecolor_video.media import streams
from facecolor_video.media.fields import (
    INTERLACED,
    FieldWeaver,
    field_order,
    plan_fields,
    split_fields,
)
from facecolor_video.media.outputs import VIDEO_CONTAINERS
from facecolor_video.media.segment_files import join_segments
from facecolor_video.media.video import VideoFrame, VideoReader, plan_for
from facecolor_video.model.recipe import ColorizerSettings
from facecolor_video.scale.films import colorize_segmented
from facecolor_video.scale.segments import (
    SegmentJob,
    lead_in_frames,
    plan_segments,
    run_segment,
    segment_path,
)
from tests.archival_media import (
    FILM_RATE,
    KINDS,
    combing,
    make_interlaced_motion,
    make_kind,
    make_telecined,
    moving_square,
    square_left,
)
from tests.media import make_video, pattern_frame

_COLORIZER = []
SETTINGS = {"render_size": 32, "global_every": 8, "device": "cpu"}


# the recipes the command line asked each colorizer for (the shared one ignores them: see the test below)
ASKED: list[ColorizerSettings] = []


def _shared_colorizer(recipe: ColorizerSettings | None = None):
    ASKED.append(recipe)
    if not _COLORIZER:
        from facecolor_video.model.colorizer import Colorizer

        _COLORIZER.append(Colorizer(**SETTINGS))
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


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("archival")
    return {name: make_kind(folder, name) for name in KINDS}


# Read back with PyAV and FFmpeg directly, not through the code under test.


def frame_times(path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def payload(path, index: int) -> bytes:
    """Every payload byte of one stream, in order (packet cuts differ between containers for PCM)."""
    with av.open(str(path)) as container:
        return b"".join(bytes(p) for p in container.demux(container.streams[index]) if p.size)


def samples(path, audio_number: int) -> np.ndarray:
    """Decoded samples of the audio stream, channels x samples, as 32-bit integers (16-bit ones shifted up)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[audio_number]
        blocks = []
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            if not frame.format.is_planar:
                array = array.reshape(-1, frame.layout.nb_channels).T
            blocks.append(array.astype(np.int64) << (16 if array.dtype == np.int16 else 0))
        return np.concatenate(blocks, axis=1)


def ffmpeg_errors(path) -> str:
    result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.stderr.strip()


def assert_seekable(path) -> None:
    """Seek to the middle frame: decoding from the keyframe before it reaches it exactly."""
    times = frame_times(path)
    target = times[len(times) // 2]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
        after = [frame.pts * frame.time_base for frame in container.decode(stream)]
    assert after and after[0] <= target and target in after and after[-1] == times[-1]


def assert_close_times(output: list[Fraction], source: list[Fraction]) -> None:
    # Matroska keeps milliseconds
    assert len(output) == len(source)
    assert max(abs(a - b) for a, b in zip(output, source)) <= Fraction(1, 1000)


def colorize(source: Path, output: Path, capsys, extra=()) -> list[str]:
    code = execute(["colorize", str(source), str(output), "--quiet", "--preset", "ultrafast", *extra])
    err = capsys.readouterr().err
    assert code == 0, err
    return [line for line in err.splitlines() if line.startswith("note:")]


@pytest.mark.parametrize("extension", [".mp4", ".mkv", ".mov"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_archival_source_into_each_container(sources, tmp_path, capsys, kind, extension):
    source = sources[kind]
    output = tmp_path / f"out{extension}"
    with VideoReader(source) as reader:
        plan = plan_for(reader, VIDEO_CONTAINERS[extension], output)
    notes = [note for note in colorize(source, output, capsys) if "copied" in note or "converted" in note]
    # one note line, only when some stream is converted
    assert len(notes) == (0 if all(c.action == "copy" for c in plan.choices) else 1), notes
    assert_close_times(frame_times(output), frame_times(source))
    with av.open(str(output)) as container:
        assert len(container.streams.audio) == len(KINDS[kind].audio_codecs)  # no audio lost
    for number, choice in enumerate(plan.choices):
        if choice.action == "copy":
            assert payload(output, number + 1) == payload(source, choice.index)
        elif choice.bit_rate is None:  # lossless conversion: the very same samples
            assert np.array_equal(samples(output, number), samples(source, number))
        else:
            assert abs(samples(output, number).shape[1] - samples(source, number).shape[1]) < 4096
    # what an archivist expects: PCM never copied into MP4, lossless stays lossless
    for choice in plan.choices:
        if choice.codec.startswith("pcm_") and extension == ".mp4":
            assert choice.action == "convert" and choice.target == "alac"
        if choice.codec in ("pcm_s16le", "pcm_s24le", "flac"):
            assert choice.bit_rate is None
    # interlaced stays interlaced, in the same field order (DV states it per frame only: bottom first)
    order = field_order(source)
    assert stated_field_order(output) == (order if order in INTERLACED else "progressive")
    if order in INTERLACED:
        with av.open(str(source)) as container:
            assert next(container.decode(video=0)).interlaced_frame
        assert order == ("bb" if kind.startswith("dv") else stated_field_order(source))
    assert_seekable(output)
    if shutil.which("ffmpeg"):
        assert ffmpeg_errors(output) == ""


def stated_field_order(path) -> str:
    """'interlaced tt/bb/...' or 'progressive' as the decoder reads it (unknown counts as progressive)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        next(container.decode(stream))
        return {2: "tt", 3: "bb", 4: "tb", 5: "bt"}.get(stream.codec_context.field_order, "progressive")


@pytest.mark.parametrize("mode, per_frame", [(None, 1), ("frame", 1), ("field", 2)])
def test_interlaced_source_in_each_mode(sources, tmp_path, capsys, mode, per_frame):
    """Kept interlaced (same field order), or bwdif at the frame rate (every pts kept) or the field rate."""
    source = sources["mpeg2-interlaced-mp2-ac3"]
    assert stated_field_order(source) in ("tt", "bb")
    output = tmp_path / "out.mkv"
    notes = colorize(source, output, capsys, ["--deinterlace", mode] if mode else [])
    assert any("field order" in note for note in notes)
    assert stated_field_order(output) == (stated_field_order(source) if mode is None else "progressive")
    times, source_times = frame_times(output), frame_times(source)
    assert len(times) == per_frame * len(source_times)
    assert_close_times(times[::per_frame], source_times)
    if mode == "field":  # the second field halfway to the next frame
        assert abs(times[1] - (source_times[0] + source_times[1]) / 2) <= Fraction(1, 1000)


@pytest.fixture(scope="module")
def interlaced_motion(tmp_path_factory) -> Path:
    return make_interlaced_motion(tmp_path_factory.mktemp("motion"), frames=8)


def _lumas(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]


@pytest.mark.parametrize("mode", [None, "frame", "field"])
def test_deinterlacing_removes_the_combing_of_motion(interlaced_motion, tmp_path, capsys, mode):
    """Fields of two moments: kept combed as they are, or deinterlaced into pictures of one moment each.

    Combing (vertical high-frequency energy) measured on the source: 1,950-2,700 a frame; after bwdif
    45-135; a progressive picture of the same scene: 222.
    """
    assert field_order(interlaced_motion) == "bb"
    source = _lumas(interlaced_motion)
    assert min(combing(luma) for luma in source) > 1000  # the source really is combed
    output = tmp_path / "out.mkv"
    colorize(interlaced_motion, output, capsys, ["--deinterlace", mode] if mode else [])
    lumas = _lumas(output)
    if mode is None:  # kept interlaced: the fields stay woven as they came
        assert len(lumas) == 8
        assert all(combing(out) > 0.5 * combing(src) for out, src in zip(lumas, source))
        return
    per_frame = 2 if mode == "field" else 1
    assert len(lumas) == per_frame * len(source)
    for number, luma in enumerate(lumas):
        shown = combing(source[number // per_frame])
        assert combing(luma) < 0.15 * shown, (number, combing(luma), shown)
        # each picture is one moment: the field shown first, then (field mode) the second one
        moment = 2 * (number // per_frame) + number % per_frame
        assert abs(square_left(luma) - square_left(moving_square(moment, 64, 48)[..., 0])) <= 1.0, number
    if mode == "field":  # the two pictures of a source frame are two moments, not one picture twice
        assert all(np.abs(lumas[k].astype(int) - lumas[k + 1]).mean() > 5 for k in range(0, len(lumas), 2))


def test_telecined_film_gets_its_film_frames_back(tmp_path, capsys):
    """--ivtc: 15 telecined frames -> the 12 film frames, in order, at 23.976 frames/s, progressive."""
    source = make_telecined(tmp_path, film_frames=12)
    assert len(frame_times(source)) == 15
    output = tmp_path / "film.mkv"
    colorize(source, output, capsys, ["--ivtc"])
    times = frame_times(output)
    assert len(times) == 12 and stated_field_order(output) == "progressive"
    assert all(abs(b - a - FILM_RATE ** -1) <= Fraction(1, 1000) for a, b in zip(times, times[1:]))
    with av.open(str(output)) as container:
        luma = [f.to_ndarray(format="gray").astype(int) for f in container.decode(video=0)]
    film = [pattern_frame(k, 64, 48, gray=True)[..., 0].astype(int) for k in range(12)]
    for k, picture in enumerate(luma):  # each is its own film frame, not a neighbour or a blend of two
        errors = [np.abs(picture - frame).mean() for frame in film]
        assert int(np.argmin(errors)) == k and errors[k] < 6, (k, errors)


def test_fields_split_and_weave_back_exactly():
    frames = [VideoFrame(rgb=pattern_frame(k, 8, 7), pts=100 + k, time_base=Fraction(1, 25), index=k) for k in range(3)]
    for order in ("tt", "bb"):
        fields = list(split_fields(frames, order))
        assert [f.index for f in fields] == list(range(6)) and all(f.pts == 100 + f.index // 2 for f in fields)
        first_parity = 0 if order == "tt" else 1
        assert np.array_equal(fields[0].rgb, frames[0].rgb[first_parity::2])  # the field shown first comes first
        woven = []
        weaver = FieldWeaver(woven.extend, order)
        weaver.write(fields[:3])
        weaver.write(fields[3:])
        assert [f.pts for f in woven] == [100, 101, 102]
        assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(woven, frames))


def test_audio_that_fits_nowhere_is_refused_before_any_frame(tmp_path, capsys, monkeypatch):
    """No lossless target and no lossy encoder: one line naming a container that takes it, nothing colorized."""
    source = make_video(tmp_path / "opus.mkv", audio_codec="libopus")
    monkeypatch.setattr(streams, "LOSSY_TARGET", "no-such-encoder")
    monkeypatch.setattr(cli, "make_colorizer", lambda recipe: pytest.fail("the model was loaded"))
    output = tmp_path / "out.mov"
    code = execute(["colorize", str(source), str(output), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "out.mov" in err and "opus" in err and "use .mkv" in err
    assert not output.exists() and not list(tmp_path.glob(".*"))


# Segmented output


@pytest.fixture(scope="module")
def b_frame_clip(tmp_path_factory) -> Path:
    # x264's medium preset: B-frames, so every dts differs from its pts
    return make_video(tmp_path_factory.mktemp("bframes") / "film.mp4", n_frames=24, gray=True, audio_streams=1)


@pytest.fixture(scope="module")
def segment_files(b_frame_clip, tmp_path_factory) -> list[Path]:
    """The clip's segments, colorized once (B-frames, medium preset), for every join below."""
    folder = tmp_path_factory.mktemp("work")
    options = ColorizeOptions(preset="medium", smooth="none")
    plan = plan_segments(b_frame_clip, 0.3, lead_in_frames(options, SETTINGS["global_every"]), 1, 8)
    assert len(plan.segments) >= 3
    for segment in plan.segments:
        run_segment(SegmentJob(str(b_frame_clip), str(folder), segment, options), _shared_colorizer())
    return [segment_path(folder, segment.index) for segment in plan.segments]


def keyframe_times(path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [p.pts * p.time_base for p in container.demux(video=0) if p.size and p.is_keyframe]


def has_matroska_cues(path) -> bool:
    # the Cues element itself, not just the SeekHead's pointer to it (which follows 53 AB 84)
    data = Path(path).read_bytes()
    cues = bytes.fromhex("1C53BB6B")
    start = data.find(cues)
    while start != -1:
        if data[max(0, start - 3):start] != bytes.fromhex("53AB84"):
            return True
        start = data.find(cues, start + 1)
    return False


@pytest.mark.parametrize("extension", [".mkv", ".mp4", ".mov", ".m4v"])
def test_segments_join_into_every_container(b_frame_clip, segment_files, tmp_path, extension):
    output = tmp_path / f"joined{extension}"
    assert join_segments(b_frame_clip, segment_files, output) == []
    with av.open(str(output)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert len(packets) == 24  # no packet lost
    assert_close_times(frame_times(output), frame_times(b_frame_clip))  # decodes frame for frame
    assert len(keyframe_times(output)) >= len(segment_files)  # each segment starts on a keyframe
    if extension == ".mkv":
        assert has_matroska_cues(output)
    assert_seekable(output)
    assert payload(output, 1) == payload(b_frame_clip, 1)
    if shutil.which("ffmpeg"):
        assert ffmpeg_errors(output) == ""


@pytest.mark.slow
def test_workers_write_a_matroska_file_that_decodes(b_frame_clip, tmp_path, capsys):
    """The command line's segmented path (--workers 2) into .mkv, end to end."""
    output = tmp_path / "film.mkv"
    colorize(b_frame_clip, output, capsys, ["--workers", "2", "--segment-seconds", "0.4", "--smooth", "none",
                                            "--render-size", "32", "--global-every", "8", "--device", "cpu"])
    assert_close_times(frame_times(output), frame_times(b_frame_clip))
    assert has_matroska_cues(output)
    assert_seekable(output)


def test_segmented_run_fills_damaged_packets_as_the_single_pass_does(tmp_path):
    source = make_video(tmp_path / "damaged.mkv", n_frames=20, codec="ffv1", audio_streams=1, corrupt_frames=(3, 13))
    colorizer = _shared_colorizer()
    options = ColorizeOptions(preset="ultrafast", smooth="none")
    single = colorize_file(source, tmp_path / "single.mkv", colorizer, options)
    segmented = colorize_segmented(source, tmp_path / "segmented.mkv", SETTINGS, options, 0.25, colorizer=colorizer)
    assert segmented.segments >= 2
    assert frame_times(tmp_path / "segmented.mkv") == frame_times(tmp_path / "single.mkv")
    assert len(frame_times(tmp_path / "segmented.mkv")) >= 19  # a loss at the very end goes unreported
    filled = [re.search(r"(\d+) lost frame\(s\) filled", " ".join(report.notices)) for report in (single, segmented)]
    assert filled[0] and filled[1] and int(filled[0][1]) >= 2 and filled[0][1] == filled[1][1], (single.notices,
                                                                                              segmented.notices)


# The pipe: stdin and stdout are file descriptors 0 and 1, which FFmpeg reads and writes itself.


class redirected:
    """Within the block, file descriptor fd is the file at path (opened for reading or writing)."""

    def __init__(self, fd: int, path: Path, mode: str):
        self.fd, self.path, self.mode = fd, path, mode

    def __enter__(self):
        self.saved = os.dup(self.fd)
        flags = os.O_RDONLY if self.mode == "r" else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        opened = os.open(self.path, flags)
        os.dup2(opened, self.fd)
        os.close(opened)

    def __exit__(self, *exc_info):
        os.dup2(self.saved, self.fd)
        os.close(self.saved)


def test_stream_from_stdin(tmp_path, capsys):
    """NUT on stdin (PCM audio) -> .mkv: every frame with its time, the audio byte for byte."""
    source = make_video(tmp_path / "clip.nut", codec="ffv1", audio_codec="pcm_s16le")
    output = tmp_path / "out.mkv"
    with redirected(0, source, "r"):
        code = execute(["colorize", "-", str(output), "--quiet", "--preset", "ultrafast"])
    assert code == 0, capsys.readouterr().err
    assert_close_times(frame_times(output), frame_times(source))
    assert payload(output, 1) == payload(source, 1)


def test_stream_from_stdin_is_tried_with_its_own_packets(sources, tmp_path, capsys):
    """FLAC on stdin into .mov: the header alone would pass, the packets do not; read ahead, converted up front."""
    source = sources["ffv1-flac"]
    output = tmp_path / "out.mov"
    with redirected(0, source, "r"):
        code = execute(["colorize", "-", str(output), "--quiet", "--preset", "ultrafast"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "converted to alac (lossless" in err
    assert_close_times(frame_times(output), frame_times(source))
    assert np.array_equal(samples(output, 0), samples(source, 0))


@pytest.mark.parametrize("stream_format, extension", [("nut", ".nut"), ("mkv", ".mkv")])
def test_stream_to_stdout(sources, tmp_path, capsys, stream_format, extension):
    """FFV1 + FLAC -> stdout as NUT or Matroska: every frame, the FLAC copied."""
    source = sources["ffv1-flac"]
    captured = tmp_path / f"stdout{extension}"
    with redirected(1, captured, "w"):
        code = execute(["colorize", str(source), "-", "--format", stream_format, "--quiet", "--preset", "ultrafast"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert_close_times(frame_times(captured), frame_times(source))
    assert payload(captured, 1) == payload(source, 1)
    assert not list(tmp_path.glob(".*"))


def test_stdout_needs_a_format(sources, capsys):
    code = execute(["colorize", str(sources["ffv1-flac"]), "-", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "--format" in err, err


def test_video_codec_the_container_cannot_hold_is_refused_before_any_frame(sources, tmp_path, capsys):
    output = tmp_path / "out.mp4"
    code = execute(["colorize", str(sources["ffv1-flac"]), str(output), "--codec", "prores_ks", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "prores" in err and "use .mkv" in err, err
    assert not output.exists() and not list(tmp_path.glob(".*"))


def test_deinterlaced_frames_keep_the_source_pts_and_time_base(sources):
    """bwdif works in half the stream's time base; frames come back in the stream's, as segment plans expect."""
    source = sources["mpeg2-interlaced-mp2-ac3"]
    with VideoReader(source) as plain:
        expected = [(frame.pts, frame.time_base) for frame in plain.frames()]
    with VideoReader(source) as reader:
        plan_fields(reader, "frame", "libx264").attach(reader)
        assert [(frame.pts, frame.time_base) for frame in reader.frames()] == expected
