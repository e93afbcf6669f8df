import numpy as np
import pytest
import skimage.color as skimage_color
import torch

from facecolor_video.model.color import lab_to_rgb, rgb_to_lab, rgb_to_lightness


def _random_rgb(n=4, h=16, w=16, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_rgb_to_lab_agrees_with_skimage():
    rgb = _random_rgb()
    ours = rgb_to_lab(rgb).permute(0, 2, 3, 1).numpy()
    reference = skimage_color.rgb2lab(rgb.permute(0, 2, 3, 1).double().numpy())
    assert np.abs(ours - reference).max() < 1e-3


def test_lab_to_rgb_agrees_with_skimage():
    lab = rgb_to_lab(_random_rgb(seed=1).double()).float()
    ours = lab_to_rgb(lab).permute(0, 2, 3, 1).numpy()
    reference = skimage_color.lab2rgb(lab.permute(0, 2, 3, 1).double().numpy())
    assert np.abs(ours - reference).max() < 1e-3


def test_round_trip_within_one_level():
    rgb = _random_rgb(seed=2)
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1 / 255


def test_extremes_and_gray_have_no_chroma():
    gray = torch.linspace(0, 1, 11).view(1, 1, 1, 11).expand(1, 3, 1, 11)
    lab = rgb_to_lab(gray)
    assert lab[:, 1:].abs().max() < 0.01  # the sRGB matrix rows, as in skimage
    assert lab[0, 0, 0, 0].item() == pytest.approx(0.0, abs=1e-3)
    assert lab[0, 0, 0, -1].item() == pytest.approx(100.0, abs=1e-3)


def test_float16_in_float16_out():
    rgb = _random_rgb(seed=3)
    lab16 = rgb_to_lab(rgb.half())
    assert lab16.dtype == torch.float16
    assert (lab16.float() - rgb_to_lab(rgb)).abs().max() < 0.1  # half precision storage
    back = lab_to_rgb(lab16)
    assert back.dtype == torch.float16
    assert (back.float() - rgb).abs().max() < 2 / 255


def test_any_leading_dims_and_lightness_shortcut():
    rgb = torch.rand(2, 3, 3, 5, 7)
    lab = rgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    assert torch.allclose(rgb_to_lightness(rgb)[..., 0, :, :], lab[..., 0, :, :], atol=1e-4)


def test_rejects_wrong_shapes_and_integer_input():
    with pytest.raises(ValueError):
        rgb_to_lab(torch.rand(4, 4))
    with pytest.raises(TypeError):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
