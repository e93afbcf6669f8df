"""Reference metrics for judging colorized images.

Every function takes colour images as numpy ``uint8`` arrays of shape
``(H, W, 3)`` in RGB order (sRGB, values 0..255) and returns a plain Python
``float``. Functions comparing two images (``reference`` = the true colour
image, ``test`` = the colorized one) require identical shapes.

scikit-image is an optional dependency (the ``eval`` extra:
``pip install facecolor-video[eval]``). It is imported lazily, inside the
functions that need it, so that the core package imports and runs without it;
calling such a function without it raises :class:`MissingDependencyError`.
:func:`colorfulness` is plain numpy and always works.

Video: :func:`color_distribution_consistency` (CDC) compares the colour
histograms of nearby frames; the excess flicker of a colorized film over its
original lives in ``facecolor_video.film.temporal.flicker``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import FacecolorError

__all__ = [
    "MissingDependencyError",
    "psnr",
    "ssim",
    "ciede2000",
    "colorfulness",
    "luminance_psnr",
    "mean_chroma",
    "color_distribution_consistency",
    "rgb_to_lab",
    "lab_to_rgb",
]


class MissingDependencyError(FacecolorError, ImportError):
    """An optional dependency (scikit-image, the ``eval`` extra) is not installed.

    Also an ``ImportError`` so code that guards optional imports the usual way
    keeps working.
    """


def _skimage():
    """Import scikit-image on first use; raise a clear, fixable error if absent."""
    try:
        import skimage.color  # noqa: F401
        import skimage.metrics  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "scikit-image is needed for evaluation metrics; install it with "
            "`pip install facecolor-video[eval]` (or `pip install scikit-image`)"
        ) from exc
    import skimage

    return skimage


def _check_rgb(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate one ``uint8`` ``(H, W, 3)`` RGB image and return it as an ndarray."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 RGB (0..255), got dtype {img.dtype}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {img.shape}")
    return img


def _check_pair(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = _check_rgb(reference, "reference")
    test = _check_rgb(test, "test")
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs test {test.shape}")
    return reference, test


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``uint8 (H, W, 3)`` -> CIE Lab ``float64 (H, W, 3)`` (D65).

    L is in 0..100; a* and b* are roughly -128..127.
    """
    rgb = _check_rgb(rgb)
    return _skimage().color.rgb2lab(rgb)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab ``float (H, W, 3)`` -> sRGB ``uint8 (H, W, 3)``.

    Colours outside the sRGB gamut are clipped. skimage warns when it has to
    clip (e.g. "negative Z values"); that is expected for arbitrary a*b* on
    dark or bright L, so the warning is silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rgb01 = _skimage().color.lab2rgb(np.asarray(lab, dtype=np.float64))
    return np.clip(np.rint(rgb01 * 255.0), 0, 255).astype(np.uint8)


def _psnr_from_mse(mse: float, data_range: float) -> float:
    # Identical images have mse 0: PSNR is +inf by definition. Return it
    # explicitly instead of letting log10 emit a divide-by-zero warning.
    if mse == 0:
        return math.inf
    return float(10.0 * math.log10(data_range**2 / mse))


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB over all RGB values, peak 255.

    Returns ``math.inf`` for identical images.
    """
    reference, test = _check_pair(reference, test)
    if np.array_equal(reference, test):
        return math.inf
    value = _skimage().metrics.peak_signal_noise_ratio(reference, test, data_range=255)
    return float(value)


def _global_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """SSIM with one window covering the whole image, averaged over channels.

    Used for images under 3 px on a side, where skimage's sliding window (odd,
    at least 3 wide, never larger than the image) cannot be placed.
    """
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    values = []
    for ch in range(x.shape[-1]):
        a = x[..., ch].astype(np.float64).ravel()
        b = y[..., ch].astype(np.float64).ravel()
        mu_a, mu_b = a.mean(), b.mean()
        var_a, var_b = a.var(), b.var()
        cov = ((a - mu_a) * (b - mu_b)).mean()
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        values.append(num / den)
    return float(np.mean(values))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean structural similarity (-1..1, 1 = identical), channels averaged.

    Uses skimage's default 7x7 uniform window. Images smaller than 7 px on a
    side get the largest odd window that fits (skimage refuses a window larger
    than the image); below 3 px a single global window is used.
    """
    reference, test = _check_pair(reference, test)
    if np.array_equal(reference, test):
        return 1.0
    min_side = min(reference.shape[0], reference.shape[1])
    if min_side < 3:
        return _global_ssim(reference, test, 255.0)
    win_size = min(7, min_side if min_side % 2 == 1 else min_side - 1)
    value = _skimage().metrics.structural_similarity(
        reference, test, channel_axis=-1, data_range=255, win_size=win_size
    )
    return float(value)


def ciede2000(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference per pixel (0 = identical; ~2.3 = just noticeable)."""
    reference, test = _check_pair(reference, test)
    color = _skimage().color
    delta = color.deltaE_ciede2000(color.rgb2lab(reference), color.rgb2lab(test))
    return float(np.mean(delta))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colorfulness metric M3 of one image.

    ``rg = R - G``, ``yb = 0.5 (R + G) - B`` on 0..255 values, then
    ``sqrt(std_rg^2 + std_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2)`` with
    population standard deviations (ddof=0) over all pixels. 0 for any gray
    image; typical photos score 20..100, the paper calls > ~59 "highly
    colourful". Plain numpy: no optional dependency needed.
    """
    rgb = _check_rgb(rgb).astype(np.float64)  # float: uint8 R - G would wrap around
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    std_root = math.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mean_root = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(std_root + 0.3 * mean_root)


def luminance_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of the CIE L channel (range 0..100, so peak = 100).

    High values show the colorizer kept the input's lightness and only added
    colour. ``math.inf`` when the L channels are identical.
    """
    reference, test = _check_pair(reference, test)
    if np.array_equal(reference, test):
        return math.inf
    color = _skimage().color
    l_ref = color.rgb2lab(reference)[..., 0]
    l_test = color.rgb2lab(test)[..., 0]
    mse = float(np.mean((l_ref - l_test) ** 2))
    return _psnr_from_mse(mse, 100.0)


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean CIE Lab chroma ``sqrt(a*^2 + b*^2)`` over pixels (0 for gray images)."""
    lab = rgb_to_lab(rgb)
    return float(np.mean(np.hypot(lab[..., 1], lab[..., 2])))


NEUTRAL_CHROMA = 5.0  # Lab chroma below which a pixel of the truth counts as neutral (gray, white, black)


def false_colour(reference: np.ndarray, test: np.ndarray, neutral: float = NEUTRAL_CHROMA) -> float:
    """Mean Lab chroma of ``test`` where ``reference`` is near-neutral (chroma < ``neutral``).

    What a colorizer paints onto things that have no colour: a gray studio
    backdrop turned orange scores high, the same backdrop left gray scores
    about 0. ``nan`` when no pixel of the reference is neutral.
    """
    reference, test = _check_pair(reference, test)
    reference_lab, test_lab = rgb_to_lab(reference), rgb_to_lab(test)
    mask = np.hypot(reference_lab[..., 1], reference_lab[..., 2]) < neutral
    if not mask.any():
        return math.nan
    return float(np.mean(np.hypot(test_lab[..., 1], test_lab[..., 2])[mask]))


# Frame distances of CDC, as in the video-colorization literature.
CDC_STEPS = (1, 2, 4)


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """JS divergence (natural log, 0..ln 2) between histograms along the last axis (normalized here)."""
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    middle = (p + q) / 2

    def kl(x: np.ndarray) -> np.ndarray:
        # 0 * log(0 / m) = 0; where x > 0, m > 0 too
        ratio = np.where(x > 0, x / np.where(middle > 0, middle, 1), 1)
        return np.sum(x * np.log(ratio), axis=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


def color_distribution_consistency(frames, steps: tuple[int, ...] = CDC_STEPS) -> float:
    """CDC: mean Jensen-Shannon divergence of each RGB channel's 256-bin histogram between frames t and t+d.

    frames: a sequence of ``uint8 (H, W, 3)`` RGB frames. For each step d the
    divergence is averaged over the three channels and every pair (t, t+d);
    the result is the mean over the steps that fit in the clip (0.0 when none
    does). Lower is steadier; real motion changes histograms too, so compare
    with the colour original's CDC.
    """
    histograms = np.stack([
        np.stack([np.bincount(frame[..., channel].ravel(), minlength=256) for channel in range(3)])
        for frame in (_check_rgb(frame, "frame") for frame in frames)
    ]).astype(np.float64) if len(frames) else np.zeros((0, 3, 256))
    per_step = [float(np.mean(_jensen_shannon(histograms[:-step], histograms[step:])))
                for step in steps if step < len(histograms)]
    return float(np.mean(per_step)) if per_step else 0.0
