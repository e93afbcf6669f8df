"""Tests for facecolor_video.training.metrics and facecolor_video.training.evaluate (fast, synthetic data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from PIL import Image

from facecolor_video.training import evaluate as ev
from facecolor_video.training import metrics


def _colour_image(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth colourful gradient plus mild noise: has structure, chroma and texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack(
        [
            40 + 180 * x / max(w - 1, 1),
            60 + 150 * y / max(h - 1, 1),
            200 - 150 * (x + y) / max(h + w - 2, 1),
        ],
        axis=-1,
    )
    img += rng.normal(0, 8, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ metrics


def test_identical_images():
    img = _colour_image()
    assert metrics.psnr(img, img) == math.inf
    assert metrics.luminance_psnr(img, img) == math.inf
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    assert metrics.ciede2000(img, img) == pytest.approx(0.0, abs=1e-9)


def test_psnr_known_noise():
    ref = np.full((8, 8, 3), 100, np.uint8)
    # +-10 everywhere -> MSE = 100 -> PSNR = 10 log10(255^2 / 100)
    sign = np.where((np.indices((8, 8)).sum(axis=0) % 2) == 0, 10, -10)[..., None]
    test = (ref.astype(int) + sign).astype(np.uint8)
    assert metrics.psnr(ref, test) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)


def test_ssim_lower_for_noise_and_small_images():
    img = _colour_image()
    noisy = np.clip(img.astype(int) + np.random.default_rng(1).integers(-40, 41, img.shape), 0, 255)
    assert metrics.ssim(img, noisy.astype(np.uint8)) < 0.95
    # Smaller than skimage's 7 px window, down to a single pixel: finite, in range.
    for h, w in [(5, 9), (4, 4), (2, 3), (1, 1)]:
        a, b = _colour_image(h, w, seed=2), _colour_image(h, w, seed=3)
        value = metrics.ssim(a, b)
        assert math.isfinite(value) and -1.0 <= value <= 1.0
        assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_ciede2000_positive_for_different_colours():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    green = np.zeros((4, 4, 3), np.uint8)
    green[..., 1] = 200
    assert metrics.ciede2000(red, green) > 30


def test_colorfulness_gray_is_zero():
    gray = np.repeat(np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5, 1), 3, axis=-1)
    assert metrics.colorfulness(gray) == 0.0


def test_colorfulness_hand_computed():
    # Red, green / blue, white.
    # rg = R-G: 255, -255, 0, 0            -> mean 0, var (2 * 255^2) / 4 = 32512.5
    # yb = (R+G)/2-B: 127.5, 127.5, -255, 0 -> mean 0, var (2 * 127.5^2 + 255^2) / 4 = 24384.375
    img = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    assert metrics.colorfulness(img) == pytest.approx(math.sqrt(32512.5 + 24384.375))

    # Two red, two black pixels: the mean term is non-zero too.
    # rg: 255, 255, 0, 0      -> mean 127.5, std 127.5
    # yb: 127.5, 127.5, 0, 0  -> mean 63.75, std 63.75
    img = np.array([[[255, 0, 0], [255, 0, 0]], [[0, 0, 0], [0, 0, 0]]], np.uint8)
    expected = math.sqrt(127.5**2 + 63.75**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert metrics.colorfulness(img) == pytest.approx(expected)


def test_input_validation():
    img = _colour_image()
    with pytest.raises(ValueError):
        metrics.psnr(img, img[:-1])
    with pytest.raises(ValueError):
        metrics.colorfulness(img.astype(np.float32))
    with pytest.raises(ValueError):
        metrics.colorfulness(img[..., 0])


def test_mean_chroma():
    assert metrics.mean_chroma(np.full((3, 3, 3), 128, np.uint8)) == pytest.approx(0.0, abs=0.01)  # skimage white point: ~0.003
    assert metrics.mean_chroma(_colour_image()) > 10


# ------------------------------------------------------------------ colour helpers


def test_to_gray_rgb_zero_chroma_keeps_luminance():
    img = _colour_image(40, 50)
    gray = ev.to_gray_rgb(img)
    assert gray.shape == img.shape and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert metrics.colorfulness(gray) == 0.0
    assert metrics.mean_chroma(gray) < 0.01
    assert metrics.luminance_psnr(img, gray) > 40


def test_constant_ab_baseline():
    img = _colour_image()
    out = ev.constant_ab_baseline(img, (10.0, 20.0))
    lab = metrics.rgb_to_lab(out)
    # Mid-tones are in gamut, so the requested a*b* comes back (up to uint8 rounding).
    assert np.median(lab[..., 1]) == pytest.approx(10.0, abs=1.5)
    assert np.median(lab[..., 2]) == pytest.approx(20.0, abs=1.5)
    assert metrics.luminance_psnr(img, out) > 30


# ------------------------------------------------------------------ files


def _write_images(folder, n: int, size=(24, 32)) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = size[0] + i, size[1] + 2 * i  # varied sizes exercise the batching
        p = folder / f"img_{i:03d}.png"
        Image.fromarray(_colour_image(h, w, seed=i)).save(p)
        paths.append(p)
    return paths


def test_iter_images_sorted_filtered_and_evenly_spaced(tmp_path):
    for i in range(10):
        (tmp_path / f"{i:02d}.jpg").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.PNG").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._00.jpg").write_bytes(b"")

    everything = ev.iter_images(tmp_path)
    assert [p.name for p in everything] == [f"{i:02d}.jpg" for i in range(10)] + ["z.PNG"]
    assert len(ev.iter_images(tmp_path, recursive=False)) == 10

    subset = ev.iter_images(tmp_path, recursive=False, limit=5)
    assert [p.name for p in subset] == ["00.jpg", "02.jpg", "04.jpg", "06.jpg", "08.jpg"]
    subset = ev.iter_images(tmp_path, recursive=False, limit=3)
    assert [p.name for p in subset] == ["00.jpg", "03.jpg", "06.jpg"]
    assert len(ev.iter_images(tmp_path, limit=100)) == 11
    assert ev.iter_images(tmp_path, limit=4) == ev.iter_images(tmp_path, limit=4)  # deterministic


def test_load_rgb_converts_modes(tmp_path):
    Image.new("L", (5, 4), 77).save(tmp_path / "g.png")
    Image.new("RGBA", (5, 4), (10, 20, 30, 255)).save(tmp_path / "a.png")
    g = ev.load_rgb(tmp_path / "g.png")
    a = ev.load_rgb(tmp_path / "a.png")
    assert g.shape == a.shape == (4, 5, 3) and g.dtype == a.dtype == np.uint8
    assert (g == 77).all()
    assert (a == [10, 20, 30]).all()


# ------------------------------------------------------------------ evaluate


def test_evaluate_identity_matches_gray_baseline(tmp_path):
    paths = _write_images(tmp_path, 5)
    calls = []

    def identity(grays):
        calls.append(len(grays))
        return [g.copy() for g in grays]

    res = ev.evaluate(identity, paths, baselines={"gray": None, "mean_ab": (2.0, 12.0)}, batch_size=2)
    assert calls == [2, 2, 1]
    assert set(res) == {"model", "gray", "mean_ab"}
    for key in ("psnr", "ssim", "ciede2000", "colorfulness", "colorfulness_ratio", "n_images"):
        assert res["model"][key] == pytest.approx(res["gray"][key]), key
    assert res["model"]["n_images"] == 5
    assert res["model"]["colorfulness_ratio"] == 0.0
    assert res["mean_ab"]["colorfulness_ratio"] > 0
    # Table and JSON are printable.
    table = ev.format_table(res)
    assert table.splitlines()[2].startswith("model")
    for title in ("PSNR dB", "SSIM", "CIEDE2000", "colorfulness ratio", "gray", "mean_ab"):
        assert title in table
    assert json.loads(ev.results_to_json(res))["gray"]["n_images"] == 5


def test_evaluate_oracle(tmp_path):
    paths = _write_images(tmp_path, 3)
    originals = {ev.to_gray_rgb(ev.load_rgb(p)).tobytes(): ev.load_rgb(p) for p in paths}

    def oracle(grays):
        return [originals[g.tobytes()] for g in grays]

    res = ev.evaluate(oracle, paths)  # default baselines: gray + dataset mean a*b*
    assert res["model"]["ciede2000"] == pytest.approx(0.0, abs=1e-9)
    assert res["model"]["colorfulness_ratio"] == pytest.approx(1.0)
    assert res["model"]["ssim"] == pytest.approx(1.0)
    assert res["model"]["psnr"] == math.inf
    assert res["gray"]["ciede2000"] > res["model"]["ciede2000"]
    assert "inf" in ev.format_table(res)
    assert json.loads(ev.results_to_json(res))["model"]["psnr"] is None  # strict JSON


def test_evaluate_rejects_bad_outputs(tmp_path):
    paths = _write_images(tmp_path, 2)
    with pytest.raises(ValueError, match="returned 1 images"):
        ev.evaluate(lambda grays: grays[:1], paths, baselines={})
    with pytest.raises(ValueError, match="uint8"):
        ev.evaluate(lambda grays: [g.astype(np.float32) for g in grays], paths, baselines={})


def test_missing_scikit_image_gives_clear_error(monkeypatch):
    import sys

    # A None entry in sys.modules makes `import skimage...` raise ImportError.
    for mod in ("skimage", "skimage.color", "skimage.metrics"):
        monkeypatch.setitem(sys.modules, mod, None)
    img = _colour_image(4, 4)
    with pytest.raises(metrics.MissingDependencyError, match=r"facecolor-video\[eval\]"):
        metrics.psnr(img, img[::-1].copy())
    with pytest.raises(ImportError):
        ev.to_gray_rgb(img)
    # plain numpy, still works, and gives the value of the formula (the hand-computed case above)
    two_red_two_black = np.array([[[255, 0, 0], [255, 0, 0]], [[0, 0, 0], [0, 0, 0]]], np.uint8)
    assert metrics.colorfulness(two_red_two_black) == pytest.approx(1.3 * math.sqrt(127.5**2 + 63.75**2))
