"""Colour hints: edges stop the spread, agreement changes nothing, the shot carries a hint and a cut stops it,
segments agree with a single run, bad hint files are refused up front."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.cli import execute
from facecolor_video.film.hints import Hint, HintColorizer, hint_chroma, spread_correction
from facecolor_video.film.pipeline import ColorizeOptions, FrameColorizer, batched, colorize_file
from facecolor_video.media.video import VideoFrame
from facecolor_video.model.color import rgb_to_lab
from facecolor_video.film.stills import Colorizer
from facecolor_video.scale.films import colorize_segmented
from facecolor_video.scale.segments import work_key
from facecolor_video.training.evaluate import to_gray_rgb
from tests.media import make_video

RED = (220, 40, 40)


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer(render_size=48, global_every=4, device="cpu", faces="off")


def _stroke(height: int, width: int, box: tuple[int, int, int, int], colour=RED) -> np.ndarray:
    """A transparent RGBA picture with one opaque rectangle (top, left, bottom, right) of ``colour``."""
    rgba = np.zeros((height, width, 4), np.uint8)
    top, left, bottom, right = box
    rgba[top:bottom, left:right, :3] = colour
    rgba[top:bottom, left:right, 3] = 255
    return rgba


def _two_regions(height=48, width=64) -> torch.Tensor:
    """L (1, h, w): a dark left half and a bright right half, split by a strong edge."""
    lightness = torch.full((1, height, width), 25.0)
    lightness[..., width // 2:] = 80.0
    return lightness + 0.5 * torch.randn(1, height, width, generator=torch.Generator().manual_seed(0))


def test_a_strong_edge_stops_the_spread():
    lightness = _two_regions()
    network = torch.zeros(2, 48, 64)
    hint_ab, weight = hint_chroma(_stroke(48, 64, (20, 6, 26, 12)), (48, 64))
    corrected = network + spread_correction(lightness, network, hint_ab, weight)
    left, right = corrected[:, :, :28], corrected[:, :, 36:]
    # the hinted region takes the stroke's colour throughout (red: a* well above 0) ...
    assert float(left[0].min()) > 0.8 * float(hint_ab[0, 22, 8])
    # ... and the region across the edge keeps the network's colour
    assert float(right.abs().max()) < 1.0


def test_where_the_hint_agrees_with_the_network_nothing_changes(colorizer):
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, :32] = (60, 120, 200)
    picture[:, 32:] = 170
    gray = to_gray_rgb(picture)
    automatic = colorizer.colorize([gray])
    # a hint painted with the network's own colours of those pixels
    hint = _stroke(48, 64, (10, 5, 30, 25))
    hint[..., :3] = automatic[0]
    hinted = colorizer.colorize([gray], hints=[hint])
    assert np.abs(hinted.astype(int) - automatic.astype(int)).max() <= 1
    # while another colour there changes it (the test can fail)
    red = colorizer.colorize([gray], hints=[_stroke(48, 64, (10, 5, 30, 25))])
    assert np.abs(red.astype(int) - automatic.astype(int)).max() > 10


def _moving_shot(count: int, first: int, seed: int) -> list[VideoFrame]:
    """A bright square moving over a textured dark background (gray frames)."""
    rng = np.random.default_rng(seed)
    background = np.clip(rng.normal(60, 18, (48, 96)), 0, 255)
    frames = []
    for step in range(count):
        gray = background[:, step:step + 64].copy()
        gray[14:34, 10 + step:30 + step] = 200 + rng.normal(0, 3, (20, 20))
        rgb = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        frames.append(VideoFrame(rgb=to_gray_rgb(rgb), pts=first + step, time_base=None, index=first + step))
    return frames


def _rings_shot(count: int, first: int) -> list[VideoFrame]:
    rows, cols = np.mgrid[:48, :64]
    frames = []
    for step in range(count):
        gray = 128 + 100 * np.sin(np.hypot(rows - 24, cols - 20 - step) / 3)
        rgb = np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)
        frames.append(VideoFrame(rgb=rgb, pts=first + step, time_base=None, index=first + step))
    return frames


def _film(colorizer, frames, hints=None) -> list[np.ndarray]:
    stream = FrameColorizer(colorizer, "none", 2, hints=hints)
    out = []
    for batch in batched(frames, 4):
        out += stream.process(batch)
    return [frame.rgb for frame in out + stream.finish()]


def _mean_a(picture: np.ndarray, box) -> float:
    top, left, bottom, right = box
    lab = rgb_to_lab(torch.from_numpy(picture[top:bottom, left:right]).permute(2, 0, 1)[None].float() / 255)
    return float(lab[0, 1].mean())


def test_a_hint_colours_its_whole_shot_and_stops_at_the_cut(colorizer):
    # shot 1: frames 0-7, the hint on frame 4 (so it travels backwards and forwards); shot 2: frames 8-13
    frames = _moving_shot(8, 0, seed=1) + _rings_shot(6, 8)
    hint = Hint(_stroke(48, 64, (18, 16, 30, 32)), index=4)
    hints = HintColorizer.from_frames(colorizer, frames, [hint])
    assert hints.hinted[0].index == 4 and hints.hinted[0].shot == (0, 8)
    automatic = _film(colorizer, frames)
    hinted = _film(colorizer, frames, hints)
    for t in (0, 2, 4, 7):  # the square, wherever it has moved to, turns red
        square = (16, 12 + t, 32, 28 + t)
        assert _mean_a(hinted[t], square) > _mean_a(automatic[t], square) + 15, t
        # and the red stops at its edges: the backdrop beside it keeps the network's colour
        beside = (16, 42 + t // 2, 32, 58 + t // 2) if t < 6 else (16, 46, 32, 62)
        assert abs(_mean_a(hinted[t], beside) - _mean_a(automatic[t], beside)) < 5, t
    for t in range(8, 14):  # the next shot is untouched
        assert np.array_equal(hinted[t], automatic[t]), t


def test_hint_timecodes_find_their_frame_and_shot(colorizer):
    frames = _moving_shot(8, 0, seed=2) + _rings_shot(6, 8)
    for frame in frames:
        frame.time_base = None
    timed = [VideoFrame(rgb=f.rgb, pts=f.index, time_base=__import__("fractions").Fraction(1, 10), index=f.index)
             for f in frames]
    hints = HintColorizer.from_frames(colorizer, timed, [Hint(_stroke(48, 64, (0, 0, 4, 4)), seconds=1.05)])
    assert hints.hinted[0].index == 10 and hints.hinted[0].shot[0] == 8


# ---------------------------------------------------------------- files, CLI, segments


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_segmented_run_with_hints_equals_the_single_run(tmp_path, colorizer):
    clip = make_video(tmp_path / "film.mp4", n_frames=30, audio_streams=0)
    Image.fromarray(_stroke(48, 64, (10, 10, 30, 40))).save(tmp_path / "hint.png")
    (tmp_path / "hints.txt").write_text("0.5 hint.png\n")
    options = ColorizeOptions(crf=0, preset="ultrafast", hints=str(tmp_path / "hints.txt"))
    single, segmented = tmp_path / "single.mp4", tmp_path / "segmented.mp4"
    colorize_file(clip, single, colorizer, options)
    settings = {"render_size": 48, "global_every": 4, "device": "cpu", "faces": "off"}
    report = colorize_segmented(clip, segmented, settings, options, 0.4, colorizer=colorizer)
    assert report.segments >= 3

    def decoded(path):
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]

    ours, theirs = decoded(segmented), decoded(single)
    assert len(ours) == len(theirs) == 30
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 2 for a, b in zip(ours, theirs))
    # the hint was used (the test can fail): the hinted run differs from an automatic one
    plain = tmp_path / "plain.mp4"
    colorize_file(clip, plain, colorizer, ColorizeOptions(crf=0, preset="ultrafast", audio=False))
    assert any(np.abs(a.astype(int) - b.astype(int)).max() > 10 for a, b in zip(decoded(plain), theirs))
    # and the hints are part of the resume key
    keys = {work_key(clip, settings, replace_hints(options, hints), 0.4) for hints in (None, str(tmp_path / "hints.txt"))}
    Image.fromarray(_stroke(48, 64, (10, 10, 30, 41))).save(tmp_path / "hint.png")  # the image edited
    keys.add(work_key(clip, settings, options, 0.4))
    assert len(keys) == 3


def replace_hints(options: ColorizeOptions, hints):
    from dataclasses import replace

    return replace(options, hints=hints)


def _bad_hints(tmp_path: Path) -> dict:
    Image.fromarray(_stroke(48, 64, (0, 0, 5, 5))[..., :3]).save(tmp_path / "no_alpha.png")
    Image.fromarray(_stroke(48, 100, (0, 0, 5, 5))).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((48, 64, 4), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(_stroke(48, 64, (0, 0, 5, 5))).save(tmp_path / "good.png")
    return {
        "no_alpha.png": ("0 no_alpha.png\n", "no alpha"),
        "wide.png": ("0 wide.png\n", "another shape"),
        "empty.png": ("0 empty.png\n", "empty"),
        "good.png": ("00:09 good.png\n", "past the film's end"),
    }


@pytest.mark.parametrize("name", ["no_alpha.png", "wide.png", "empty.png", "good.png"])
def test_bad_hint_files_are_refused_before_any_work(tmp_path, capsys, name):
    content, problem = _bad_hints(tmp_path)[name]
    (tmp_path / "hints.txt").write_text(content)
    source = make_video(tmp_path / "in.mp4", n_frames=4, audio_streams=0)
    output = tmp_path / "out.mp4"
    assert execute(["colorize", str(source), str(output), "--hints", str(tmp_path / "hints.txt"),
                    "--render-size", "48", "--faces", "off"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0] and problem in err[0], err
    assert not output.exists()


def test_hint_option_and_preview(tmp_path, capsys):
    source = make_video(tmp_path / "in.mp4", n_frames=6, audio_streams=0)
    Image.fromarray(_stroke(48, 64, (10, 10, 30, 40))).save(tmp_path / "hint.png")
    output = tmp_path / "out.mp4"
    assert execute(["colorize", str(source), str(output), "--hint", str(tmp_path / "hint.png"), "--render-size", "48",
                    "--faces", "off", "-q", "--no-audio"]) == 0
    assert output.exists()
    sheet = tmp_path / "sheet.png"
    assert execute(["preview", str(source), "-o", str(sheet), "--hint", str(tmp_path / "hint.png"),
                    "--render-size", "48", "--faces", "off", "-q"]) == 0
    with Image.open(sheet) as picture:
        assert picture.width > 2 * 64
