"""Global vectors at a smaller VGG16 input, moving a head to them, and a campaign that resumes: on made-up data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.model.backbone import build_global_features, face_prior_key, load_face_prior
from facecolor_video.model.colorizer import Colorizer
from facecolor_video.model.network import ColorizationNet
from facecolor_video.training import metrics
from facecolor_video.training.campaign import Campaign
from facecolor_video.training.global_size import fit_affine, regrounded_head
from facecolor_video.training.train import TrainConfig, Trainer


def test_fit_affine_recovers_a_known_map():
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(400, 12, generator=generator)
    matrix, offset = torch.randn(5, 12, generator=generator), torch.randn(5, generator=generator)
    found_matrix, found_offset = fit_affine(source, source @ matrix.T + offset, ridge=0.0)
    assert torch.allclose(found_matrix.float(), matrix, atol=1e-4)
    assert torch.allclose(found_offset.float(), offset, atol=1e-4)


def test_a_moved_head_gives_on_new_vectors_what_it_gave_on_old_ones():
    torch.manual_seed(0)
    head = ColorizationNet(global_channels=16, uncertainty=True).eval()
    new_vectors = torch.rand(300, 16) * 3
    # the old vectors are an exact affine function of the new ones, with an offset
    old_vectors = new_vectors @ (torch.randn(16, 16) * 0.5).T + torch.randn(16)
    moved, error = regrounded_head(head, old_vectors, new_vectors, 112, ridge=0.0)
    assert error < 1e-3
    assert moved.global_input_size == 112 and moved.config["global_input_size"] == 112
    lightness = torch.rand(4, 1, 24, 32) * 100
    with torch.no_grad():
        before = head(lightness, old_vectors[:4])
        after = moved.eval()(lightness, new_vectors[:4])
        unmoved = head(lightness, new_vectors[:4])
    # the move is what makes them agree (an untrained head's colours are small: compare the two gaps)
    assert (after - before).abs().max() < 0.01 * (unmoved - before).abs().max()


def test_heads_keep_vgg16s_own_size_unless_their_config_says_otherwise(tmp_path):
    assert "global_input_size" not in ColorizationNet().config
    torch.manual_seed(1)
    head = ColorizationNet(global_input_size=112).eval()
    path = tmp_path / "head112.pt"
    torch.save({"config": head.config, "state_dict": head.state_dict(), "metadata": {}}, path)
    colorizer = Colorizer(model=path, device="cpu", precision="fp32", faces="auto")
    assert colorizer.global_features.input_size == 112
    assert torch.equal(colorizer.face_prior.cpu(), load_face_prior(input_size=112))
    assert not torch.equal(load_face_prior(input_size=112), load_face_prior())
    # at 112 the vector is VGG16's of L resized to 112 (not 224's)
    lightness = torch.rand(1, 1, 96, 128) * 100
    at_112 = colorizer.global_features(lightness)
    at_224 = build_global_features()(lightness)
    assert not torch.allclose(at_112, at_224, atol=1e-2)
    assert face_prior_key(112) != face_prior_key()


PORTRAIT = Path(__file__).parent / "data" / "webmorph_neutral_front_002_03.webp"


def test_the_shipped_face_prior_at_112_is_nearer_a_face_crop_than_a_plain_frame():
    from facecolor_video.model.color import rgb_to_lab

    features = build_global_features(input_size=112)
    prior = load_face_prior(input_size=112)
    rgb = torch.from_numpy(np.asarray(Image.open(PORTRAIT).convert("RGB").resize((128, 128))).copy())
    face_like = rgb_to_lab(rgb.permute(2, 0, 1)[None].float() / 255)[:, :1]
    plain = torch.full((1, 1, 128, 128), 50.0)
    cosine = torch.nn.functional.cosine_similarity
    with torch.no_grad():
        assert cosine(prior, features(face_like)[0], dim=0) > cosine(prior, features(plain)[0], dim=0)


def test_false_colour_is_the_chroma_painted_onto_what_has_none():
    truth = np.full((20, 30, 3), 128, np.uint8)
    truth[:, 20:] = (200, 40, 40)  # a red third: not neutral, not counted
    gray = np.repeat(truth.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    orange = gray.copy()
    orange[:, :20] = (170, 120, 80)
    assert metrics.false_colour(truth, truth) < 1.0
    assert metrics.false_colour(truth, gray) < 1.0
    assert metrics.false_colour(truth, orange) > 20.0
    assert np.isnan(metrics.false_colour(np.full((4, 4, 3), (200, 40, 40), np.uint8), orange[:4, :4]))


class PooledLightness(torch.nn.Module):
    """A cheap stand-in for VGG16's global features, of a given input size."""

    out_channels = 512

    def __init__(self, input_size=224):
        super().__init__()
        self.input_size = input_size

    def forward(self, lightness):
        pooled = torch.nn.functional.adaptive_avg_pool2d(lightness / 100, 4).flatten(1)
        return pooled.repeat(1, 32) * (2.0 if self.input_size == 112 else 1.0)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for number in range(12):
        rgb = np.clip(rng.integers(30, 225, size=3) + rng.normal(0, 8, (40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{number}.png")
    return folder


def test_a_campaign_resumes_where_it_stopped_on_another_machine(tmp_path, photos, monkeypatch):
    from facecolor_video.training import train as train_module

    monkeypatch.setattr(train_module, "build_global_features",
                        lambda *args, input_size=224, **kwargs: PooledLightness(input_size))
    campaign = tmp_path / "campaign"

    def config(epochs=1):
        return TrainConfig(data=[str(photos)], epochs=epochs, epoch_size=32, batch_size=8, crop_size=32,
                           workers=0, init=None, global_size=112, campaign=str(campaign), checkpoint_every=2,
                           lr_decay_minutes=60)

    first = Trainer(config(), tmp_path / "run1", progress=False)
    assert not first.resume()
    first.run()
    state = json.loads((campaign / "state.json").read_text())
    assert state["step"] == 4 and state["samples"] == 32 and state["seconds"] > 0
    heads = list(campaign.glob("head-*.pt"))
    assert [h.name for h in heads] == [state["head"]]  # one head, the one the state names
    # a fresh run folder (a new machine): the campaign's head and schedule go on
    second = Trainer(config(epochs=2), tmp_path / "run2", progress=False)
    assert second.model.global_input_size == 112
    assert second.resume()
    assert second.step == 4 and second.epoch == 1 and second.seconds == pytest.approx(state["seconds"], abs=0.2)
    saved = Campaign(campaign).head().state_dict()
    for key, value in second.model.state_dict().items():
        assert torch.equal(value.cpu(), saved[key])
    second.run()
    assert json.loads((campaign / "state.json").read_text())["step"] == 8
    assert len(list(campaign.glob("head-*.pt"))) == 1


def test_a_campaign_head_that_does_not_match_its_hash_is_refused(tmp_path, photos, monkeypatch):
    from facecolor_video.errors import WeightsError
    from facecolor_video.training import train as train_module

    monkeypatch.setattr(train_module, "build_global_features",
                        lambda *args, input_size=224, **kwargs: PooledLightness(input_size))
    campaign = tmp_path / "campaign"
    config = TrainConfig(data=[str(photos)], epochs=1, epoch_size=16, batch_size=8, crop_size=32, workers=0,
                         init=None, campaign=str(campaign))
    Trainer(config, tmp_path / "run", progress=False).run()
    head = Campaign(campaign).head_path
    data = bytearray(head.read_bytes())
    data[-100] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(WeightsError):
        Trainer(config, tmp_path / "run_again", progress=False)


def test_confident_gain_strengthens_sure_colours_and_leaves_guesses():
    from facecolor_video.model.network import neutral_shrink

    torch.manual_seed(2)
    plain = ColorizationNet(uncertainty=True, uncertainty_strength=0.5).eval()
    vivid = ColorizationNet(uncertainty=True, uncertainty_strength=0.5, confident_gain=0.3).eval()
    vivid.load_state_dict(plain.state_dict())
    assert "confident_gain" not in plain.config and vivid.config["confident_gain"] == 0.3
    lightness, vectors = torch.rand(2, 1, 32, 32) * 100, torch.rand(2, 512)
    with torch.no_grad():
        ab, log_variance = plain.predict(lightness, vectors)
        certainty = neutral_shrink(ab, log_variance, 0.5)
        assert torch.equal(plain(lightness, vectors), ab * certainty)  # no gain: as before, bit for bit
        ratio = (vivid(lightness, vectors).norm(dim=1) / plain(lightness, vectors).norm(dim=1).clamp(min=1e-6))
    expected = 1 + 0.3 * certainty[:, 0]
    assert torch.allclose(ratio, expected, atol=1e-4)
    assert ratio.max() > ratio.min()  # the strengthening follows the certainty, not a constant gain
