"""The options of the README's table, each run once end to end from the command line, checked for what it is for.

No colorizer is patched in here: each run loads the model the command line
builds from its own settings. Inputs are tiny (64x48, a dozen frames) and
outputs lossless where pictures are compared (FFV1 in Matroska).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.cli import execute
from facecolor_video.model import weights as weights_registry
from facecolor_video.training.metrics import ciede2000, mean_chroma
from tests.media import make_portrait_video, make_video, portrait_frame

SMALL = ["--quiet", "--device", "cpu", "--render-size", "64"]
LOSSLESS = ["--codec", "ffv1"]


def _rgb(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _luma(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [np.frombuffer(frame.planes[0], np.uint8).reshape(frame.planes[0].height, -1)[:, :frame.width].copy()
                for frame in container.decode(video=0)]


def _run(*args) -> None:
    assert execute(["colorize", *map(str, args)]) == 0


@pytest.fixture(scope="module")
def gray_clip(tmp_path_factory) -> Path:
    """The gray portrait panning, 10 frames at 10 frames/s (frame i at i/10 s)."""
    return make_portrait_video(tmp_path_factory.mktemp("clip") / "gray.mp4", n_frames=10, frame_rate=10)


@pytest.fixture(scope="module")
def automatic(gray_clip, tmp_path_factory) -> list[np.ndarray]:
    output = tmp_path_factory.mktemp("auto") / "auto.mkv"
    _run(gray_clip, output, *SMALL, *LOSSLESS, "--smooth", "none")
    return _rgb(output)


def _truth(index: int) -> np.ndarray:
    return portrait_frame(index, 64, 48)


# ------------------------------------------------------------------ colour options
def test_references_change_the_colour_from_their_timecode_and_not_before(gray_clip, automatic, tmp_path):
    Image.fromarray(_truth(0)).save(tmp_path / "ref.png")
    (tmp_path / "refs.txt").write_text("0.5 ref.png\n")
    output = tmp_path / "guided.mkv"
    _run(gray_clip, output, *SMALL, *LOSSLESS, "--smooth", "none", "--references", tmp_path / "refs.txt")
    guided = _rgb(output)
    assert len(guided) == len(automatic) == 10
    for index in range(5):  # before 0.5 s: the automatic colours, exactly
        assert np.array_equal(guided[index], automatic[index]), index
    for index in range(5, 10):  # from 0.5 s: the reference's, nearer the true colours
        gain = ciede2000(_truth(index), automatic[index]) - ciede2000(_truth(index), guided[index])
        assert gain > 1.5, (index, gain)  # measured 2.95-3.08 CIEDE2000 nearer


def test_reference_on_a_photo(tmp_path):
    original = _truth(0)
    gray = tmp_path / "gray.png"
    Image.fromarray(portrait_frame(0, 64, 48, gray=True)).save(gray)
    Image.fromarray(original).save(tmp_path / "ref.png")
    _run(gray, tmp_path / "auto.png", *SMALL)
    _run(gray, tmp_path / "guided.png", *SMALL, "--reference", tmp_path / "ref.png")
    auto, guided = (np.asarray(Image.open(tmp_path / name).convert("RGB")) for name in ("auto.png", "guided.png"))
    assert ciede2000(original, guided) < ciede2000(original, auto) - 2.0  # measured 4.4 nearer


def test_chroma_gain_scales_the_colour(gray_clip, automatic, tmp_path):
    for gain in ("0", "2"):
        _run(gray_clip, tmp_path / f"gain{gain}.mkv", *SMALL, *LOSSLESS, "--smooth", "none", "--chroma-gain", gain)
    none, double = _rgb(tmp_path / "gain0.mkv"), _rgb(tmp_path / "gain2.mkv")
    assert max(mean_chroma(frame) for frame in none) < 0.3  # gray (measured 0.004)
    ratio = np.mean([mean_chroma(d) for d in double]) / np.mean([mean_chroma(a) for a in automatic])
    assert 1.6 < ratio < 2.2, ratio  # measured 1.96 (clipping to sRGB takes a little)


def test_model_file(gray_clip, automatic, tmp_path):
    """--model FILE: a copy of the shipped head gives its output; a head with a*b* negated gives the negation."""
    shipped = weights_registry.find(weights_registry.MODELS["general"])
    copy = tmp_path / "copy.pt"
    shutil.copy(shipped, copy)
    _run(gray_clip, tmp_path / "copy.mkv", *SMALL, *LOSSLESS, "--smooth", "none", "--model", copy)
    assert all(np.array_equal(a, b) for a, b in zip(_rgb(tmp_path / "copy.mkv"), automatic))
    state = torch.load(shipped, weights_only=False)
    last = state["state_dict"]
    last["decoder.layers.10.weight"][:2] *= -1  # the a*b* channels of the last layer (then tanh, an odd function)
    last["decoder.layers.10.bias"][:2] *= -1
    negated = tmp_path / "negated.pt"
    torch.save(state, negated)
    _run(gray_clip, tmp_path / "negated.mkv", *SMALL, *LOSSLESS, "--smooth", "none", "--model", negated)
    for index, (frame, auto) in enumerate(zip(_rgb(tmp_path / "negated.mkv"), automatic)):
        assert ciede2000(_truth(index), frame) > ciede2000(_truth(index), auto), index


def test_faces_auto_gives_a_face_a_skin_tone_that_faces_off_does_not(tmp_path):
    from tests.test_faces import SKIN_AB, _face_ab, _wide_shot

    frame, box = _wide_shot(face_height=100)
    Image.fromarray(frame).save(tmp_path / "wide.png")
    distances = {}
    for mode in ("auto", "off"):
        _run(tmp_path / "wide.png", tmp_path / f"{mode}.png", "--quiet", "--device", "cpu", "--faces", mode)
        rgb = np.asarray(Image.open(tmp_path / f"{mode}.png").convert("RGB"))
        distances[mode] = float(np.hypot(*(_face_ab(rgb, box) - SKIN_AB)))
    # measured 2.1 a*b* units from SKIN_AB with faces auto, 7.9 with faces off
    assert distances["auto"] < 4.0 and distances["off"] - distances["auto"] >= 3.0, distances


# ------------------------------------------------------------------ composition and encoder options
def test_exact_lab_composes_rgb_instead_of_keeping_the_luma_plane(gray_clip, tmp_path):
    _run(gray_clip, tmp_path / "planes.mkv", *SMALL, *LOSSLESS)
    _run(gray_clip, tmp_path / "lab.mkv", *SMALL, *LOSSLESS, "--exact-lab")
    source = _luma(gray_clip)
    assert all(np.array_equal(a, b) for a, b in zip(source, _luma(tmp_path / "planes.mkv")))
    lab = _luma(tmp_path / "lab.mkv")
    # luma recomputed from the composed RGB: not the source's codes, but the same picture
    assert any(not np.array_equal(a, b) for a, b in zip(source, lab))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(source, lab)) <= 3


def test_pix_fmt_sets_the_output_format(gray_clip, tmp_path):
    _run(gray_clip, tmp_path / "default.mp4", *SMALL, "--preset", "ultrafast")
    _run(gray_clip, tmp_path / "444.mp4", *SMALL, "--preset", "ultrafast", "--pix-fmt", "yuv444p")
    for name, expected in (("default.mp4", "yuv420p"), ("444.mp4", "yuv444p")):
        with av.open(str(tmp_path / name)) as container:
            assert container.streams.video[0].codec_context.pix_fmt == expected, name


def test_no_audio_leaves_no_audio_stream(tmp_path):
    clip = make_video(tmp_path / "with_audio.mkv", n_frames=6, audio_streams=2, subtitle=True)
    _run(clip, tmp_path / "kept.mkv", *SMALL, "--preset", "ultrafast")
    _run(clip, tmp_path / "dropped.mkv", *SMALL, "--preset", "ultrafast", "--no-audio")
    with av.open(str(tmp_path / "kept.mkv")) as kept, av.open(str(tmp_path / "dropped.mkv")) as dropped:
        assert len(kept.streams.audio) == 2 and len(kept.streams.subtitles) == 1
        assert len(dropped.streams.audio) == 0 and len(dropped.streams.subtitles) == 0
        assert len(dropped.streams.video) == 1


# ------------------------------------------------------------------ pipes and batch
def test_stdin_to_stdout_in_nut(tmp_path):
    """colorize - - --format nut, both ends piped at once, as in an FFmpeg pipeline."""
    source = make_video(tmp_path / "in.nut", n_frames=8, gray=True, audio_streams=1, codec="ffv1")
    result = subprocess.run([sys.executable, "-m", "facecolor_video", "colorize", "-", "-", "--format", "nut",
                             *SMALL], input=source.read_bytes(), capture_output=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr.decode()
    with av.open(io.BytesIO(result.stdout), format="nut") as container:
        assert len(container.streams.audio) == 1
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 8
    assert np.mean([mean_chroma(frame) for frame in frames]) > 1.0  # colorized, not passed through


def test_local_batch_without_ray(tmp_path):
    reels = tmp_path / "reels"
    reels.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_video(reels / name, n_frames=6, gray=True, audio_streams=1)
    out = tmp_path / "colour"
    out.mkdir()
    assert execute(["batch", str(reels), "--output-dir", str(out), "--quiet", "--preset", "ultrafast",
                    "--device", "cpu", "--render-size", "64"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4", "b.mp4"]
    for name in ("a.mp4", "b.mp4"):
        frames = _rgb(out / name)
        assert len(frames) == 6 and np.mean([mean_chroma(frame) for frame in frames]) > 1.0


# ------------------------------------------------------------------ references on the other commands
def test_reference_on_preview(gray_clip, tmp_path):
    Image.fromarray(_truth(0)).save(tmp_path / "ref.png")
    shown = {}
    for name, extra in (("auto", []), ("guided", ["--reference", str(tmp_path / "ref.png")])):
        frames_dir = tmp_path / name
        frames_dir.mkdir()
        assert execute(["preview", str(gray_clip), "-o", str(tmp_path / f"{name}.png"), "--every", "5",
                        "--frames-dir", str(frames_dir), "--device", "cpu", "--render-size", "64", *extra]) == 0
        shown[name] = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(frames_dir.iterdir())]
    assert len(shown["auto"]) == len(shown["guided"]) == 2
    for index, auto, guided in zip((0, 5), shown["auto"], shown["guided"]):
        # measured 4.3 and 3.6 CIEDE2000 nearer
        assert ciede2000(_truth(index), guided) < ciede2000(_truth(index), auto) - 1.5, index


def test_reference_first_frame_on_eval_video(tmp_path, capsys):
    import json

    clip = make_portrait_video(tmp_path / "colour.mp4", n_frames=6, gray=False)
    psnr = {}
    for name, extra in (("auto", []), ("guided", ["--reference-first-frame"])):
        assert execute(["eval", "--video", str(clip), "--render-size", "64", "--json", "--smooth", "none",
                        *extra]) == 0
        psnr[name] = json.loads(capsys.readouterr().out)["model_psnr"]
    assert psnr["guided"] > psnr["auto"] + 8.0, psnr  # measured 46.5 dB against 30.7


def test_reference_on_batch(gray_clip, tmp_path):
    reels = tmp_path / "reels"
    reels.mkdir()
    shutil.copy(gray_clip, reels / "reel.mp4")
    Image.fromarray(_truth(0)).save(tmp_path / "ref.png")
    frames = {}
    for name, extra in (("auto", []), ("guided", ["--reference", str(tmp_path / "ref.png")])):
        out = tmp_path / name
        out.mkdir()
        assert execute(["batch", str(reels), "--output-dir", str(out), "--quiet", "--crf", "0", "--preset",
                        "ultrafast", "--smooth", "none", "--device", "cpu", "--render-size", "64", *extra]) == 0
        frames[name] = _rgb(out / "reel.mp4")
    assert len(frames["auto"]) == len(frames["guided"]) == 10
    gains = [ciede2000(_truth(i), a) - ciede2000(_truth(i), g) for i, (a, g) in enumerate(zip(*frames.values()))]
    assert min(gains) > 1.5, gains  # as the same reference on colorize: about 3 nearer


def test_reference_all_shots_takes_the_reference_into_a_shot_it_does_not_match(tmp_path):
    """Two shots, the reference matching the first: only --reference-all-shots changes the second one."""
    from facecolor_video.training.evaluate import to_gray_rgb

    with Image.open(Path(__file__).parent / "data" / "ex_p0.png") as image:
        other = to_gray_rgb(np.asarray(image.convert("RGB").resize((64, 48), Image.Resampling.BICUBIC)))
    pictures = [portrait_frame(index, 64, 48, gray=True) for index in range(5)] + [other] * 5
    clip = tmp_path / "two_shots.mkv"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        for index, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    Image.fromarray(_truth(0)).save(tmp_path / "ref.png")
    runs = {}
    for name, extra in (("matching", []), ("all", ["--reference-all-shots"])):
        _run(clip, tmp_path / f"{name}.mkv", *SMALL, *LOSSLESS, "--smooth", "none", "--reference",
             tmp_path / "ref.png", *extra)
        runs[name] = _rgb(tmp_path / f"{name}.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(runs["matching"][:5], runs["all"][:5]))
    # measured 0.57 codes a pixel on average: the portrait's colours on a picture they barely match
    assert all(np.abs(a.astype(int) - b).mean() > 0.25 for a, b in zip(runs["matching"][5:], runs["all"][5:]))
