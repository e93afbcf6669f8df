"""Colour from a reference: better colours where it matches, none across a cut, clear errors, segments agree."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.cli import execute
from facecolor_video.errors import InputError
from facecolor_video.film.pipeline import (
    ColorizeOptions,
    FrameColorizer,
    batched,
    colorize_file,
)
from facecolor_video.film.reference import (
    LOOK_GAIN_MAX,
    ReferenceColorizer,
    parse_timecode,
    fit_look,
    read_references_file,
)
from facecolor_video.media.video import VideoFrame
from facecolor_video.model.color import rgb_to_lab
from facecolor_video.film.stills import Colorizer
from facecolor_video.scale.films import colorize_segmented
from facecolor_video.training.evaluate import to_gray_rgb
from tests.media import make_video

SIZE = (48, 64)  # height, width


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer(render_size=48, global_every=4, device="cpu")


def _colour_picture(seed: int, height=64, width=112) -> np.ndarray:
    """Saturated blocks of random colours with a fine texture: easy to match, hard to guess."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 226, (height // 16 + 1, width // 16 + 1, 3))
    rgb = np.kron(blocks, np.ones((16, 16, 1)))[:height, :width]
    rgb += rng.normal(0, 12, (height, width, 1))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _rings(height=64, width=112) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    gray = 128 + 100 * np.sin(np.hypot(rows - height / 2, cols - width / 3) / 3)
    return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)


def _pan(picture: np.ndarray, count: int, first: int = 0) -> list[VideoFrame]:
    return [VideoFrame(rgb=np.ascontiguousarray(picture[:SIZE[0], step:step + SIZE[1]]), pts=first + step,
                       time_base=None, index=first + step) for step in range(count)]


def _run(colorizer, frames, reference=None, smooth="none") -> list[np.ndarray]:
    stream = FrameColorizer(colorizer, smooth, 2, reference=reference)
    grays = [VideoFrame(rgb=to_gray_rgb(f.rgb), pts=f.pts, index=f.index) for f in frames]
    out = []
    for batch in batched(grays, 4):
        out += stream.process(batch)
    out += stream.finish()
    return [frame.rgb for frame in out]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_reference_with_the_true_colours_improves_them(colorizer):
    frames = _pan(_colour_picture(1), 8)
    reference = ReferenceColorizer.from_images(colorizer, [(0.0, frames[0].rgb)])
    automatic = _run(colorizer, frames)
    guided = _run(colorizer, frames, reference)
    gain = np.mean([_psnr(f.rgb, g) - _psnr(f.rgb, a) for f, g, a in zip(frames, guided, automatic)])
    assert gain > 3.0, f"{gain:.2f} dB"
    # the later frames moved away from the reference and still gain
    assert _psnr(frames[-1].rgb, guided[-1]) > _psnr(frames[-1].rgb, automatic[-1]) + 3.0


def test_library_colorize_takes_a_reference(colorizer):
    picture = _colour_picture(7)[:48, :64]
    gray = to_gray_rgb(picture)[None]
    assert _psnr(picture, colorizer.colorize(gray, reference=picture)[0]) > _psnr(picture, colorizer.colorize(gray)[0]) + 3


def test_reference_colours_do_not_cross_a_cut(colorizer):
    first = _pan(_colour_picture(2), 5)
    second = _pan(_rings(), 5, first=5)
    reference = ReferenceColorizer.from_images(colorizer, [(0.0, first[0].rgb)])
    # the same reference's look alone: its colours are never warped into any shot
    look_only = ReferenceColorizer.from_images(colorizer, [(0.0, first[0].rgb)], shot_floor=2.0, shot_full=3.0)
    guided = _run(colorizer, first + second, reference, smooth="window")
    looked = _run(colorizer, first + second, look_only, smooth="window")
    # the first shot takes the reference's colours, the unrelated shot after the cut only its look
    assert not np.array_equal(guided[0], looked[0])
    for t in range(5, 10):
        assert np.array_equal(guided[t], looked[t]), t
    # unless asked to: then the second shot takes its colours too (the test can fail)
    everywhere = ReferenceColorizer.from_images(colorizer, [(0.0, first[0].rgb)], all_shots=True)
    forced = _run(colorizer, first + second, everywhere, smooth="window")
    assert not np.array_equal(forced[7], looked[7])


def test_fit_look_recovers_gain_and_offset():
    rng = np.random.default_rng(0)
    predicted = torch.from_numpy(rng.normal(0, 20, (2, 16, 16))).float()
    gain, offset = fit_look(predicted, 0.4 * predicted + torch.tensor([3.0, -5.0]).view(2, 1, 1))
    assert gain == pytest.approx(0.4, abs=1e-4) and offset.tolist() == pytest.approx([3.0, -5.0], abs=1e-3)
    # colours opposite to the truth: no gain below 0, the truth's mean cast remains
    gain, offset = fit_look(predicted, -predicted + 7.0)
    assert gain == 0.0 and offset.tolist() == pytest.approx((7.0 - predicted.mean(dim=(1, 2))).tolist(), abs=1e-3)
    # never more than LOOK_GAIN_MAX
    assert fit_look(predicted, 3 * predicted)[0] == pytest.approx(LOOK_GAIN_MAX)


def test_the_look_carries_the_reference_cast_into_other_shots(colorizer):
    first = _pan(_colour_picture(2), 5)
    second = _pan(_rings(), 5, first=5)
    # the same picture with a strong blue cast (b* down): every shot turns bluer than without it
    tinted = np.clip(first[0].rgb * np.array([0.7, 0.8, 1.0]) + np.array([0, 0, 50]), 0, 255).astype(np.uint8)
    automatic = _run(colorizer, first + second)
    plain = _run(colorizer, first + second, ReferenceColorizer.from_images(colorizer, [(0.0, first[0].rgb)]))
    blue = _run(colorizer, first + second, ReferenceColorizer.from_images(colorizer, [(0.0, tinted)]))

    def mean_b(frames):
        return float(rgb_to_lab(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255)[:, 2].mean())

    assert mean_b(blue[5:]) < mean_b(plain[5:]) - 5
    assert mean_b(blue[5:]) < mean_b(automatic[5:]) - 5


def test_black_and_white_reference_is_refused(tmp_path, capsys, colorizer):
    still = tmp_path / "still.png"
    Image.fromarray(to_gray_rgb(_colour_picture(5))).save(still)
    with pytest.raises(InputError, match="black and white"):
        ReferenceColorizer.from_images(colorizer, [(0.0, to_gray_rgb(_colour_picture(5)))])
    source = make_video(tmp_path / "in.mp4", n_frames=2, audio_streams=0)
    output = tmp_path / "out.mp4"
    assert execute(["colorize", str(source), str(output), "--reference", str(still)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(still) in err[0] and "black and white" in err[0]
    assert not output.exists()


def test_references_apply_from_their_timecodes(colorizer):
    red, blue = _colour_picture(3), _colour_picture(4)
    matcher = ReferenceColorizer.from_images(colorizer, [(2.0, blue), (0.5, red)], start_time=10.0)
    assert [matcher.active(t) for t in (0.0, 0.5, 1.9, 2.0, 99.0)] == [None, 0, 0, 1, 1]


def test_each_shot_takes_the_nearest_untimed_reference(colorizer):
    first = _pan(_colour_picture(8), 5)
    second = _pan(_rings(), 5, first=5)
    rings_in_colour = np.ascontiguousarray(_rings()[:SIZE[0], :SIZE[1]] * np.array([1.0, 0.45, 0.2])).astype(np.uint8)
    frames = first + second
    matcher = ReferenceColorizer.from_images(colorizer, [(None, rings_in_colour), (None, first[0].rgb)])
    lone = {name: ReferenceColorizer.from_images(colorizer, [(0.0, image)], all_shots=True)
            for name, image in (("blocks", first[0].rgb), ("rings", rings_in_colour))}
    guided = _run(colorizer, frames, matcher)
    # each shot is coloured as if its own reference had been the only one
    alone_blocks, alone_rings = _run(colorizer, frames, lone["blocks"]), _run(colorizer, frames, lone["rings"])
    assert all(np.array_equal(guided[t], alone_blocks[t]) for t in range(1, 4))
    assert all(np.array_equal(guided[t], alone_rings[t]) for t in range(6, 9))
    assert not np.array_equal(alone_blocks[7], alone_rings[7])  # the choice mattered (the test can fail)


def test_untimed_references_in_a_file(tmp_path):
    Image.fromarray(_colour_picture(6)).save(tmp_path / "a.png")
    (tmp_path / "refs.txt").write_text("* a.png\n1:00 a.png\n*   a.png\n")
    assert read_references_file(tmp_path / "refs.txt") == [(60.0, tmp_path / "a.png"), (None, tmp_path / "a.png"),
                                                           (None, tmp_path / "a.png")]


def test_timecodes():
    assert parse_timecode("12.5") == 12.5
    assert parse_timecode("01:02.5") == 62.5
    assert parse_timecode("1:00:02") == 3602
    for bad in ("", "1:", "a", "1:60", "-3", "1:2:3:4", "nan"):
        with pytest.raises(ValueError):
            parse_timecode(bad)


@pytest.mark.parametrize("content, problem", [
    ("0 missing.png\n", "missing.png: no such image"),
    ("00:0x still.png\n", "'00:0x' is not a timecode"),
    ("still.png\n", "expected 'timecode image'"),
    ("# only a comment\n\n", "no references in the file"),
    ("0 still.png\n0 still.png\n", "a second reference at 0"),
])
def test_references_file_errors_name_the_file(tmp_path, capsys, content, problem):
    Image.fromarray(_colour_picture(5)).save(tmp_path / "still.png")
    listing = tmp_path / "refs.txt"
    listing.write_text(content)
    with pytest.raises(InputError, match=problem):
        read_references_file(listing)
    # the command line: one line naming the file, exit 1, no output written
    source = make_video(tmp_path / "in.mp4", n_frames=2, audio_streams=0)
    output = tmp_path / "out.mp4"
    assert execute(["colorize", str(source), str(output), "--references", str(listing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(listing) in err[0] and problem in err[0]
    assert not output.exists()


def test_references_file_reads_relative_paths_in_time_order(tmp_path):
    Image.fromarray(_colour_picture(6)).save(tmp_path / "a.png")
    (tmp_path / "refs.txt").write_text("# scene list\n1:00 a.png\n0.5   a.png\n")
    assert read_references_file(tmp_path / "refs.txt") == [(0.5, tmp_path / "a.png"), (60.0, tmp_path / "a.png")]


def test_segmented_run_with_a_reference_equals_the_single_run(tmp_path, colorizer):
    clip = make_video(tmp_path / "film.mp4", n_frames=30, audio_streams=0)
    with av.open(str(clip)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    Image.fromarray(first).save(tmp_path / "poster.png")
    options = ColorizeOptions(crf=0, preset="ultrafast", reference=str(tmp_path / "poster.png"),
                              reference_all_shots=True)
    single, segmented = tmp_path / "single.mp4", tmp_path / "segmented.mp4"
    colorize_file(clip, single, colorizer, options)
    settings = {"render_size": 48, "global_every": 4, "device": "cpu"}
    report = colorize_segmented(clip, segmented, settings, options, 0.4, colorizer=colorizer)
    assert report.segments >= 3

    def decoded(path):
        with av.open(str(path)) as container:
            return [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]

    ours, theirs = decoded(segmented), decoded(single)
    assert [pts for pts, _ in ours] == [pts for pts, _ in theirs]
    worst = min(_psnr(a, b) if not np.array_equal(a, b) else 99.0 for (_, a), (_, b) in zip(ours, theirs))
    assert worst >= 50, f"worst frame PSNR {worst:.1f} dB"
    # and the reference was used: each of the first frames is nearer the clip's own colours than an
    # automatic run's (the reference is the clip's first frame in colour)
    from facecolor_video.training.metrics import ciede2000

    plain = tmp_path / "plain.mp4"
    colorize_file(clip, plain, colorizer, ColorizeOptions(crf=0, preset="ultrafast", audio=False, max_frames=3))
    truth = [rgb for _, rgb in decoded(clip)]
    gains = [ciede2000(t, a) - ciede2000(t, b) for t, (_, a), (_, b) in zip(truth, decoded(plain), theirs)]
    assert len(gains) == 3 and min(gains) > 4.0, gains  # measured 17.0, 12.3 and 9.3 CIEDE2000 nearer
