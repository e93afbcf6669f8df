"""`facecolor-video colorize` on photos: formats, luminance kept, and every bad input of the foundation.

Each bad input gives one line on stderr naming the problem and the file,
exit code 1 (2 for usage errors), nothing under the output name, the input untouched.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecolor_video.cli import execute
from facecolor_video.model.color import rgb_to_lightness
from tests.media import make_image, make_video

FAST = ["--render-size", "64", "--quiet"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lightness(path: Path) -> np.ndarray:
    import torch

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb_to_lightness(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0, 0].numpy()


def _expect_error(capsys, args, needle, code=1):
    assert execute(args) == code
    err = capsys.readouterr().err.strip()
    assert needle in err, err
    if code == 1:
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in err
    return err


@pytest.mark.parametrize("extension", ["png", "jpg", "webp", "tiff", "bmp"])
def test_photo_keeps_size_and_luminance(tmp_path, extension):
    source = make_image(tmp_path / f"face.{extension}", size=(67, 45), mode="L" if extension != "bmp" else "RGB")
    before = _digest(source)
    output = tmp_path / f"out.{extension}"
    assert execute(["colorize", str(source), str(output), *FAST]) == 0
    with Image.open(output) as result:
        assert result.size == (67, 45)
    assert _digest(source) == before
    difference = _lightness(source) - _lightness(output)
    luminance_psnr = 10 * np.log10(100.0**2 / max(np.mean(difference**2), 1e-12))
    # lossless formats keep L to rounding; jpg/webp add their own compression error
    assert luminance_psnr > (45 if extension in ("png", "tiff", "bmp") else 30)


def test_rgba_keeps_alpha_and_16bit_stays_16bit(tmp_path):
    rgba = make_image(tmp_path / "rgba.png", mode="RGBA")
    output = tmp_path / "rgba_out.png"
    assert execute(["colorize", str(rgba), str(output), *FAST]) == 0
    with Image.open(rgba) as a, Image.open(output) as b:
        assert b.mode == "RGBA"
        assert np.array_equal(np.asarray(a)[..., 3], np.asarray(b)[..., 3])
    deep = make_image(tmp_path / "deep.png", mode="RGB16")
    deep_out = tmp_path / "deep_out.png"
    assert execute(["colorize", str(deep), str(deep_out), *FAST]) == 0
    import av

    with av.open(str(deep_out)) as container:
        assert "64" in container.streams.video[0].codec_context.pix_fmt or "48" in container.streams.video[0].codec_context.pix_fmt


def test_many_photos_into_output_dir_with_format(tmp_path):
    sources = [make_image(tmp_path / name, mode="L") for name in ("a.png", "b.jpg", "c.webp")]
    out_dir = tmp_path / "colour"
    out_dir.mkdir()
    assert execute(["colorize", *map(str, sources), "--output-dir", str(out_dir), *FAST]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "b.jpg", "c.webp"]
    assert execute(["colorize", *map(str, sources), "--output-dir", str(out_dir), "--format", "tif", *FAST]) == 0
    assert sorted(p.name for p in out_dir.glob("*.tif")) == ["a.tif", "b.tif", "c.tif"]


def test_gray_photo_gets_colour(tmp_path):
    """The gray portrait, through the command line, comes out nearer its colour original than gray is.

    A stub that returns gray, a constant tint or negated a*b* fails (see test_colour_truth.py).
    """
    from facecolor_video.training.evaluate import to_gray_rgb
    from tests.test_colour_truth import FLOORS, PORTRAIT, gains_over_gray, truth

    original = truth(PORTRAIT)
    source = tmp_path / "gray.png"
    Image.fromarray(to_gray_rgb(original)).save(source)
    output = tmp_path / "colour.png"
    assert execute(["colorize", str(source), str(output), "--quiet"]) == 0
    with Image.open(output) as image:
        psnr_gain, ciede_gain = gains_over_gray(original, np.asarray(image.convert("RGB")))
    assert psnr_gain >= FLOORS[PORTRAIT][0] and ciede_gain >= FLOORS[PORTRAIT][1], (psnr_gain, ciede_gain)


def test_missing_input(tmp_path, capsys):
    _expect_error(capsys, ["colorize", str(tmp_path / "nope.png"), str(tmp_path / "out.png")], "nope.png")
    assert not (tmp_path / "out.png").exists()


def test_directory_input(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    _expect_error(capsys, ["colorize", str(tmp_path / "folder"), str(tmp_path / "out.png")], "directory")


def test_not_media(tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n" * 20)
    before = _digest(text)
    _expect_error(capsys, ["colorize", str(text), str(tmp_path / "out.png")], "notes.png")
    assert _digest(text) == before
    assert not (tmp_path / "out.png").exists()


def test_output_equal_to_input_also_through_links(tmp_path, capsys):
    source = make_image(tmp_path / "photo.png")
    before = _digest(source)
    _expect_error(capsys, ["colorize", str(source), str(source), "--overwrite"], "photo.png")
    link = tmp_path / "link.png"
    link.symlink_to(source)
    _expect_error(capsys, ["colorize", str(source), str(link), "--overwrite"], "link.png")
    hard = tmp_path / "hard.png"
    os.link(source, hard)
    _expect_error(capsys, ["colorize", str(source), str(hard), "--overwrite"], "hard.png")
    assert _digest(source) == before


def test_existing_output_needs_overwrite(tmp_path, capsys):
    source = make_image(tmp_path / "photo.png", mode="L")
    output = tmp_path / "out.png"
    output.write_bytes(b"keep me")
    _expect_error(capsys, ["colorize", str(source), str(output), *FAST], "--overwrite")
    assert output.read_bytes() == b"keep me"
    assert execute(["colorize", str(source), str(output), "--overwrite", *FAST]) == 0
    assert output.read_bytes() != b"keep me"


def test_unknown_extension_and_missing_folder(tmp_path, capsys):
    source = make_image(tmp_path / "photo.png")
    _expect_error(capsys, ["colorize", str(source), str(tmp_path / "out.xyz")], "out.xyz")
    _expect_error(capsys, ["colorize", str(source), str(tmp_path / "no" / "out.png")], "no")
    assert not list(tmp_path.glob("out*"))


def test_usage_errors_exit_2(tmp_path, capsys):
    assert execute(["colorize", "only_one.png"]) == 2
    assert execute(["colorize", "a.png", "b.png", "--smooth", "sideways"]) == 2
    capsys.readouterr()


def test_video_in_photo_out_is_one_clear_error_or_works(tmp_path, capsys):
    """A video written to an image extension holds more than one frame: refused cleanly, no file left."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=6, audio_streams=0)
    code = execute(["colorize", str(clip), str(tmp_path / "frame.png"), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert not (tmp_path / "frame.png").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_a_bad_input_among_several_is_passed_on_and_the_others_still_run(tmp_path, capsys):
    """The library tells what happened through callbacks and prints nothing; the command line prints it."""
    from facecolor_video.errors import InputError
    from facecolor_video.film.pipeline import ColorizeOptions
    from facecolor_video.model.colorizer import Colorizer
    from facecolor_video.scale.batch import colorize_many

    good = make_image(tmp_path / "a.png", mode="L")
    out_dir = tmp_path / "colour"
    out_dir.mkdir()
    jobs = [(tmp_path / "missing.png", out_dir / "missing.png"), (good, out_dir / "a.png")]
    finished, failed = [], []
    failures = colorize_many(jobs, lambda: Colorizer(device="cpu", render_size=64), ColorizeOptions(),
                             on_film=finished.append, on_error=lambda source, error: failed.append((source, error)))
    assert failures == 1
    assert [report.destination for report in finished] == [out_dir / "a.png"]
    assert [source for source, _ in failed] == [tmp_path / "missing.png"]
    assert isinstance(failed[0][1], InputError)
    assert capsys.readouterr().err == ""

    (out_dir / "a.png").unlink()
    assert execute(["colorize", str(tmp_path / "missing.png"), str(good), "--output-dir", str(out_dir), *FAST]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.png" in err and len(err.splitlines()) == 1, err
    assert (out_dir / "a.png").exists()
