"""Colour that is right, not just present: the shipped model against gray, measured on pictures whose colour is known.

Each bundled picture is made gray (CIE L kept, a* = b* = 0), colorized by the
shipped model (``general``, the defaults a user gets), and compared with its
colour original. Gray is the baseline to beat: a model that adds the wrong
colour scores below it, on PSNR and on CIEDE2000 both. The floors are the
gains over gray measured on the shipped model, less about a third, so that a
different CPU's arithmetic passes and a regression does not.

``test_wrong_colour_fails_the_floors`` shows that the floors bite: the
model's own output with a*b* negated, with a* and b* swapped, or replaced by
a constant, fails them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecolor_video.training import metrics
from facecolor_video.training.evaluate import to_gray_rgb

DATA = Path(__file__).parent / "data"
PORTRAIT = "webmorph_neutral_front_002_03.webp"  # CC BY 4.0, see LICENSE.webmorph
# picture -> (PSNR gain over gray in dB, CIEDE2000 gain over gray), each at least this.
# Measured on the shipped model at its defaults (render size 128, faces auto, bf16 on a CPU):
#   portrait 31.16 vs 30.13 dB (+1.03), CIEDE2000 4.08 vs 4.76 (+0.68)
#   ex_p0    17.88 vs 14.50 dB (+3.38), 14.37 vs 21.56 (+7.19)
#   ex_p1    15.56 vs 14.96 dB (+0.60), 18.91 vs 20.67 (+1.76)
#   ex_ref   14.34 vs 14.15 dB (+0.19), 20.87 vs 21.51 (+0.64)
FLOORS = {
    PORTRAIT: (0.70, 0.45),
    "ex_p0.png": (2.3, 4.8),
    "ex_p1.png": (0.40, 1.2),
    "ex_ref.png": (0.12, 0.42),
}


def truth(name: str) -> np.ndarray:
    with Image.open(DATA / name) as image:
        return np.asarray(image.convert("RGB"))


def gains_over_gray(original: np.ndarray, output: np.ndarray) -> tuple[float, float]:
    """(PSNR of output - PSNR of gray, CIEDE2000 of gray - CIEDE2000 of output), both against the original."""
    gray = to_gray_rgb(original)
    return (metrics.psnr(original, output) - metrics.psnr(original, gray),
            metrics.ciede2000(original, gray) - metrics.ciede2000(original, output))


def passes_floors(name: str, output: np.ndarray) -> bool:
    psnr_gain, ciede_gain = gains_over_gray(truth(name), output)
    psnr_floor, ciede_floor = FLOORS[name]
    return psnr_gain >= psnr_floor and ciede_gain >= ciede_floor


@pytest.fixture(scope="module")
def outputs() -> dict[str, np.ndarray]:
    from facecolor_video.film.stills import Colorizer

    colorizer = Colorizer(device="cpu")
    return {name: colorizer.colorize(to_gray_rgb(truth(name))[None])[0] for name in FLOORS}


@pytest.mark.parametrize("name", list(FLOORS))
def test_shipped_model_beats_gray_by_its_measured_margin(outputs, name):
    psnr_gain, ciede_gain = gains_over_gray(truth(name), outputs[name])
    psnr_floor, ciede_floor = FLOORS[name]
    assert psnr_gain >= psnr_floor, f"{name}: {psnr_gain:+.2f} dB over gray (floor {psnr_floor})"
    assert ciede_gain >= ciede_floor, f"{name}: CIEDE2000 {ciede_gain:+.2f} better than gray (floor {ciede_floor})"


def with_ab(rgb: np.ndarray, change) -> np.ndarray:
    lab = metrics.rgb_to_lab(rgb)
    lab[..., 1], lab[..., 2] = change(lab[..., 1].copy(), lab[..., 2].copy())
    return metrics.lab_to_rgb(lab)


WRONG = {
    "negated": lambda a, b: (-a, -b),
    "swapped": lambda a, b: (b, a),
    "its own mean everywhere": lambda a, b: (np.full_like(a, a.mean()), np.full_like(b, b.mean())),
    "a constant tint a*=3": lambda a, b: (np.full_like(a, 3.0), np.zeros_like(b)),
    "a constant skin tone": lambda a, b: (np.full_like(a, 12.0), np.full_like(b, 15.0)),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_wrong_colour_fails_the_floors(outputs, wrong):
    """The model's output with its a*b* altered: the portrait's floors refuse it (and so the test above would)."""
    failed = [name for name in FLOORS if not passes_floors(name, with_ab(outputs[name], WRONG[wrong]))]
    assert PORTRAIT in failed, f"{wrong} a*b* passes the portrait's floors"
