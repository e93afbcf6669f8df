"""Packing, the fixed validation split, the training options and the eval suite, on made-up images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.cli import execute
from facecolor_video.errors import InputError
from facecolor_video.model.network import ColorizationNet, neutral_shrink
from facecolor_video.training import pack as packs
from facecolor_video.training import splits
from facecolor_video.training.data import lab_batch, load_uint8, mix_shares
from facecolor_video.training.train import (
    ChromaPrior,
    TrainConfig,
    Trainer,
    initial_head,
    jitter_lightness,
    learning_rate_factor,
)


def _photo(path: Path, seed: int, size=(40, 32)) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 225, size=3)
    ramp = np.linspace(0.6, 1.3, size[0])[None, :, None]
    rgb = np.clip(base * ramp + rng.normal(0, 6, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


# every folder of splits.TRAINING_SETS / VALIDATION_SETS, with names the split rules read
FAKE_FILES = {
    "faces/utkface/train": [f"{i}_0_0.jpg" for i in range(4)],
    "faces/utkface/val": [f"{i}_1_0.jpg" for i in range(3)],
    "people/youtube_faces": [f"{prefix}_{person}_{i}.jpg" for person in ("Person_A", "Person_B", "Person_N", "Person_S")
                             for prefix, i in (("training", 1), ("test", 2))],
    "people/street_fashion": [f"{i:04d}.jpg" for i in range(1, 16)],
    "scenes/imagenette": ["n01_1.jpg", "n01_2.jpg"],
    "scenes/imagenet_sample": ["n02_a.jpg"],
    "scenes/bsds500/train": ["1.jpg"],
    "scenes/bsds500/val": ["2.jpg"],
    "scenes/bsds500/test": ["3.jpg", "4.jpg"],
    "portraits/mebeauty": ["m1.webp", "m2.webp"],
    "portraits/bundestag": [f"{i}.webp" for i in range(1, 13)],
    "portraits/webmorph": ["neutral_front_1.webp", "smiling_front_1.webp"],
    "objects/clothing": ["c1.webp", "c2.webp"],
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared_data")
    seed = 0
    for folder, names in FAKE_FILES.items():
        for name in names:
            seed += 1
            _photo(root / folder / name, seed, size=(48, 40) if "bsds" in folder else (40, 32))
    return root


# ------------------------------------------------------------------ split


def test_split_is_fixed_by_name_and_keeps_a_person_on_one_side(data_root):
    for _ in range(2):  # the same answer every time, whatever the listing order
        held = splits.set_paths(splits.VALIDATION_SETS["people"], data_root)
        trained = splits.set_paths(splits.TRAINING_SETS["youtube_faces"], data_root)
    yt_held = {splits.youtube_person(p) for p in held if "youtube" in str(p)}
    yt_trained = {splits.youtube_person(p) for p in trained}
    assert yt_held == {"Person_N", "Person_S"} and yt_trained == {"Person_A", "Person_B"}
    assert splits.youtube_person(Path("test_Kate_Winslet_51.jpg")) == "Kate_Winslet"
    street = [p.name for p in held if "street" in str(p)]
    assert street == ["0007.jpg", "0014.jpg"]  # numbers divisible by 7


def test_plain_backdrops_are_webmorph_and_a_bundestag_bucket(data_root):
    plain = splits.set_paths(splits.VALIDATION_SETS["plain_backdrops"], data_root)
    trained = splits.set_paths(splits.TRAINING_SETS["bundestag"], data_root)
    bundestag_held = {p.name for p in plain if "bundestag" in str(p)}
    assert {p.name for p in plain if "webmorph" in str(p)} == {"neutral_front_1.webp", "smiling_front_1.webp"}
    assert bundestag_held == {f"{i}.webp" for i in range(1, 13) if splits.name_hash(str(i)) % 4 == 0}
    assert bundestag_held and not bundestag_held & {p.name for p in trained}
    assert len(bundestag_held) + len(trained) == 12
    # no training set reaches into webmorph
    assert all(s.folder != "portraits/webmorph" for sources in splits.TRAINING_SETS.values() for s in sources)


# ------------------------------------------------------------------ pack


@pytest.fixture(scope="module")
def packed(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack")
    # a small budget: several shards from 30-odd tiny images
    manifest = packs.pack(data_root, out, shard_mb=3 * 1024 / 2**20, val_limit=2, progress=False)
    return manifest


def test_pack_respects_the_budget_and_counts_every_set(packed, data_root):
    manifest = json.loads(packed.read_text())
    budget = manifest["shard_bytes"]
    train_shards = [s for s in manifest["shards"] if s["split"] == "train"]
    assert len(train_shards) >= 2
    for shard in manifest["shards"]:
        path = packed.parent / shard["file"]
        assert path.stat().st_size == shard["bytes"] <= budget
        assert packs._sha256(path) == shard["sha256"]
    for name, sources in splits.TRAINING_SETS.items():
        expected = len(splits.set_paths(sources, data_root))
        assert manifest["sets"][name]["images"] == expected
        assert sum(s["sets"].get(name, 0) for s in train_shards) == expected
    assert manifest["sets"]["plain_backdrops"]["split"] == "val"
    assert manifest["sets"]["plain_backdrops"]["images"] == 2  # val_limit


def test_packed_images_read_back_as_the_originals_at_the_training_scale(packed, data_root):
    images = packs.Pack(packed).images("train")
    assert set(images) == set(splits.TRAINING_SETS)
    for items in images.values():
        for item in items:
            decoded = packs.decode(item).permute(1, 2, 0).numpy().astype(float)
            original = np.asarray(Image.open(data_root / item.source).convert("RGB"), dtype=float)
            assert decoded.shape == original.shape  # smaller than the scale: kept as is
            assert np.abs(decoded - original).mean() < 6  # WebP is lossy, but close


def test_a_pack_in_parts_uses_the_shards_present_and_refuses_a_damaged_one(packed, tmp_path, capsys):
    part = tmp_path / "part"
    part.mkdir()
    manifest = json.loads(packed.read_text())
    (part / packs.MANIFEST_NAME).write_text(packed.read_text())
    first = next(s for s in manifest["shards"] if s["split"] == "train")
    (part / first["file"]).write_bytes((packed.parent / first["file"]).read_bytes())
    images = packs.Pack(part / packs.MANIFEST_NAME).images("train")
    assert sum(len(v) for v in images.values()) == first["images"]
    assert "shards present" in capsys.readouterr().err
    damaged = bytearray((part / first["file"]).read_bytes())
    damaged[10] ^= 0xFF
    (part / first["file"]).write_bytes(bytes(damaged))
    with pytest.raises(InputError, match="sha256"):
        packs.Pack(part / packs.MANIFEST_NAME).images("train")


# ------------------------------------------------------------------ training options


class PooledLightness(torch.nn.Module):
    """A stand-in for VGG16's global features (the tests here are about the head's training, not VGG)."""

    out_channels = 512

    def forward(self, lightness):
        pooled = torch.nn.functional.adaptive_avg_pool2d(lightness / 100, 4).flatten(1)  # (N, 16)
        return pooled.repeat(1, 32)


@pytest.fixture
def small_backbone(monkeypatch):
    from facecolor_video.training import train as train_module

    monkeypatch.setattr(train_module, "build_global_features", lambda *args, **kwargs: PooledLightness())


def test_rebalancing_weighs_rare_colours_more():
    counts = torch.zeros(ChromaPrior.BINS, ChromaPrior.BINS)
    gray_bin = ChromaPrior.bin_index(torch.zeros(1, 2, 1, 1)).item()
    red_bin = ChromaPrior.bin_index(torch.tensor([60.0, 40.0]).view(1, 2, 1, 1)).item()
    counts.view(-1)[gray_bin] = 1000
    counts.view(-1)[red_bin] = 10
    prior = ChromaPrior(counts, uniform=0.5)
    weights = prior.pixel_weights(torch.tensor([[0.0, 0.0], [60.0, 40.0]]).view(2, 2, 1, 1)).flatten()
    assert weights[1] > 2 * weights[0]
    probability = torch.nn.functional.conv2d(counts[None, None], torch.tensor(
        [[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]])[None, None], padding=1)[0, 0]
    expected = (probability / probability.sum() * prior.weights).sum()
    assert expected.item() == pytest.approx(1.0, rel=1e-4)


def test_neutral_shrink_fades_unsure_colours_only():
    ab = torch.tensor([40.0, 30.0]).view(1, 2, 1, 1)
    sure = neutral_shrink(ab, torch.full((1, 1, 1, 1), -12.0))
    unsure = neutral_shrink(ab, torch.full((1, 1, 1, 1), 2.0))
    assert sure.item() > 0.99 and unsure.item() < 0.05


def test_uncertainty_head_starts_from_a_plain_head_with_the_same_colours(tmp_path):
    torch.manual_seed(0)
    plain = ColorizationNet().eval()
    head_file = tmp_path / "plain.pt"
    torch.save({"config": plain.config, "state_dict": plain.state_dict(), "metadata": {}}, head_file)
    grown = initial_head(TrainConfig(data=[], init=str(head_file), uncertainty=True), 512).eval()
    lightness, features = torch.rand(2, 1, 16, 24) * 100, torch.rand(2, 512)
    ab_plain = plain(lightness, features)
    ab_grown, log_variance = grown(lightness, features, raw=True)
    assert torch.allclose(ab_plain, ab_grown, atol=1e-5)
    assert log_variance.shape == (2, 1, 16, 24)
    assert torch.allclose(log_variance, torch.full_like(log_variance, -4.5), atol=1e-5)


def test_the_variance_loss_leaves_the_colour_layers_alone():
    # its gradient reaches the variance's own weights, never the layers the colour is made of
    torch.manual_seed(0)
    head = ColorizationNet(uncertainty=True)
    _, log_variance = head(torch.rand(2, 1, 16, 24) * 100, torch.rand(2, 512), raw=True)
    log_variance.exp().mean().backward()
    last = head.decoder.layers[-2]
    assert last.weight.grad[2].abs().sum() > 0 and last.weight.grad[:2].abs().sum() == 0
    own = f"decoder.layers.{len(head.decoder.layers) - 2}."
    shared = [p for name, p in head.named_parameters() if not name.startswith(own)]
    assert shared and all(p.grad is None or p.grad.abs().sum() == 0 for p in shared)


def test_uncertainty_strength_is_chosen_after_training(tmp_path):
    from facecolor_video.model.colorizer import load_head
    from facecolor_video.training.train import with_uncertainty_strength

    torch.manual_seed(0)
    head = ColorizationNet(uncertainty=True).eval()
    torch.save({"config": head.config, "state_dict": head.state_dict(), "metadata": {}}, tmp_path / "u.pt")
    with_uncertainty_strength(tmp_path / "u.pt", tmp_path / "u0.pt", 0.0)
    plain, _ = load_head(tmp_path / "u0.pt")  # checked against the .sha256 written beside it
    lightness, features = torch.rand(1, 1, 16, 16) * 100, torch.rand(1, 512)
    ab, _ = head(lightness, features, raw=True)
    assert torch.allclose(plain(lightness, features), ab, atol=0.05)  # strength 0: no fading (float16 file)
    assert head(lightness, features).abs().sum() < ab.abs().sum()


def test_lightness_jitter_changes_gray_levels_but_keeps_their_order():
    lightness = torch.linspace(0, 100, 50).view(1, 1, 5, 10).repeat(4, 1, 1, 1)
    jittered = jitter_lightness(lightness, 0.4, torch.Generator().manual_seed(1))
    assert not torch.allclose(jittered, lightness)
    flat = jittered.flatten(1)
    assert bool((flat[:, 1:] >= flat[:, :-1]).all()) and jittered.min() >= 0 and jittered.max() <= 100
    assert torch.allclose(jitter_lightness(lightness, 0.0), lightness, atol=1e-4)


def test_learning_rate_decays_by_steps_training_time_or_samples():
    config = TrainConfig(data=[], warmup_steps=10, min_lr_fraction=0.1)
    assert learning_rate_factor(config, 0, 0, 100) == pytest.approx(0.1)
    assert learning_rate_factor(config, 10, 0, 100) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.1)))
    assert learning_rate_factor(config, 100, 0, 100) == pytest.approx(0.1)
    timed = TrainConfig(data=[], lr_decay_minutes=2)
    assert learning_rate_factor(timed, 5, 60, 10) == pytest.approx(0.05 + 0.95 * 0.5)
    counted = TrainConfig(data=[], lr_decay_samples=1000, lr_decay_minutes=2)  # samples win over minutes
    assert learning_rate_factor(counted, 5, 9999, 10, samples=250) == pytest.approx(
        0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 0.25)))
    assert learning_rate_factor(counted, 5, 0, 10, samples=5000) == pytest.approx(0.05)
    assert learning_rate_factor(TrainConfig(data=[], lr_schedule="constant"), 99, 0, 100) == 1.0


def test_mix_by_name_or_in_order():
    assert mix_shares({"b": 2}, ["a", "b"]) == [0.0, 2.0]
    assert mix_shares([1, 3], ["a", "b"]) == [1.0, 3.0]
    with pytest.raises(InputError, match="no data source"):
        mix_shares({"c": 1}, ["a", "b"])
    with pytest.raises(InputError, match="2 values for 3"):
        mix_shares([1, 2], ["a", "b", "c"])


@pytest.mark.parametrize("options", [
    {"loss": "rebalanced"},
    {"uncertainty": True},
    {"lightness_jitter": 0.3},
    {"batch_norm": True},
])
def test_each_option_trains_a_step_from_a_pack(packed, tmp_path, options, small_backbone):
    config = TrainConfig(data=[str(packed)], val=[str(packed)], epochs=1, batch_size=4, crop_size=32, workers=0,
                         device="cpu", precision="fp32", **options)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert set(trainer.sources) == set(splits.TRAINING_SETS)
    assert set(trainer.val_sets) == set(splits.VALIDATION_SETS)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    batch = next(iter(trainer._loader()))
    assert batch.shape == (4, 3, 32, 32) and batch.dtype == torch.uint8
    loss = trainer.train_step(batch)
    assert np.isfinite(loss) and loss > 0
    changed = [k for k, v in trainer.model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed
    if options.get("uncertainty"):
        last = [k for k in changed if k.startswith("decoder") and k.endswith("bias")][-1]
        assert trainer.model.state_dict()[last].shape[0] == 3  # the variance channel learns too
    if options.get("loss") == "rebalanced":
        assert trainer.prior is not None and trainer.prior.weights.max() > trainer.prior.weights[trainer.prior.weights > 0].min()


class CountingFeatures(PooledLightness):
    """PooledLightness that counts the images it has seen."""

    def __init__(self):
        super().__init__()
        self.images_seen = 0

    def forward(self, lightness):
        self.images_seen += lightness.shape[0]
        return super().forward(lightness)


def test_cached_global_features_come_from_whole_images_once(packed, tmp_path, monkeypatch):
    from facecolor_video.training import train as train_module

    counting = CountingFeatures()
    monkeypatch.setattr(train_module, "build_global_features", lambda *args, **kwargs: counting)
    config = TrainConfig(data=[str(packed)], epochs=1, batch_size=4, crop_size=16, workers=0, device="cpu",
                         precision="fp32", cache_global_features=True, images_per_source=2)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert max(len(items) for items in trainer.sources.values()) == 2
    assert min(len(items) for items in trainer.sources.values()) == 1  # imagenet_sample has one image
    images = len(trainer.train_paths)
    assert counting.images_seen == images
    # a row is the vector of its whole image at VGG16's input size, not of a crop
    whole = lab_batch(load_uint8(trainer.train_paths[3])[None])[0]
    expected = PooledLightness()(torch.nn.functional.interpolate(
        whole, size=(224, 224), mode="bilinear", align_corners=False, antialias=True))[0]
    assert torch.allclose(trainer.dataset.global_vectors[3].float(), expected, atol=2e-3)
    crops, vectors = next(iter(trainer._loader()))
    assert crops.shape == (4, 3, 16, 16) and vectors.shape == (4, 512)
    assert np.isfinite(trainer.train_step([crops, vectors]))
    assert counting.images_seen == images  # the step read the cache: VGG16 did not run
    again = Trainer(config, tmp_path / "run", progress=False)  # a resumed run finds the cache
    assert counting.images_seen == images
    assert torch.equal(again.dataset.global_vectors, trainer.dataset.global_vectors)


def test_train_from_a_pack_on_the_command_line_then_resume(packed, tmp_path, small_backbone):
    run_dir = tmp_path / "run"
    args = ["train", "--data", str(packed), "--val", str(packed), "-o", str(run_dir), "--epochs", "1",
            "--epoch-size", "8", "--batch-size", "4", "--crop-size", "32", "--workers", "0", "--quiet",
            "--init", "none", "--loss", "rebalanced", "--uncertainty", "--mix", "utkface=1,clothing=1",
            "--device", "cpu", "--precision", "fp32", "--cache-global-features", "--images-per-source", "3"]
    assert execute(args) == 0
    log = (run_dir / "log.csv").read_text().splitlines()
    assert "val_plain_backdrops_psnr" in log[0] and "learning_rate" in log[0]
    assert execute([a if a != "1" else "2" for a in args] + ["--resume"]) == 0
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # header and two epochs
    metadata = torch.load(run_dir / "head.pt", weights_only=True)["metadata"]
    assert metadata["options"]["loss"] == "rebalanced" and metadata["steps"] == 4
    assert metadata["options"]["cache_global_features"] and metadata["sources"]["utkface"] == 3


def test_pack_command_refuses_to_overwrite(packed, data_root, capsys):
    assert execute(["pack", str(data_root), "-o", str(packed.parent), "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------ eval suite


class TintingColorizer:
    """Colours every gray image with one warm tint: a model whose scores the suite must tell from gray's."""

    def reset(self):
        pass

    def colorize(self, frames):
        tinted = frames.astype(np.int16) + np.array([12, 0, -12])
        return np.clip(tinted, 0, 255).astype(np.uint8)


def test_eval_suite_reports_every_set_with_baselines_and_sheets(data_root, tmp_path):
    from facecolor_video.training.suite import SHEET_HEIGHT, evaluate_suite

    photo_sets = list(splits.VALIDATION_SETS)
    result = evaluate_suite(TintingColorizer(), data_root, limit=3, sheets_dir=tmp_path, sets=photo_sets)
    assert list(result.rows) == photo_sets
    for name in photo_sets:
        rows = result.rows[name]
        assert list(rows) == ["model", "gray", "mean_ab"]
        assert rows["gray"]["colorfulness_ratio"] == 0 and rows["model"]["colorfulness_ratio"] > 0
        assert rows["model"]["psnr"] != rows["gray"]["psnr"]
        sheet = Image.open(result.sheets[name])
        sample = len(splits.set_paths(splits.VALIDATION_SETS[name], data_root, 8))
        assert sheet.size[1] >= sample * SHEET_HEIGHT
    text = result.to_text()
    assert "plain_backdrops" in text and text.count("mean_ab") == len(photo_sets)
