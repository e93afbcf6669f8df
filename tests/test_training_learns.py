"""Training learns: a short run from a fixed seed on pictures whose colour follows their lightness.

The pictures are tiny and synthetic, with a colour a network can learn from
L alone: dark is blue, light is orange, in between follows a straight line in
a*b*. The shipped model (the default start of a run) colours them as it
colours the world, so a few steps of fine-tuning show whether training moves
the head towards the data: the validation loss must fall by a stated
fraction, and the trained head must colour a picture it never saw (training
or validation) better than the head it started from.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.training import metrics
from facecolor_video.training.data import lab_batch
from facecolor_video.training.train import TrainConfig, Trainer

SIZE = 48
STEPS = 8
# validation loss after STEPS steps of 4 crops / before: measured 0.61 (0.065 -> 0.040)
MAX_LOSS_RATIO = 0.75
# a*b* error of the trained head on the held-out picture / the start's: measured 0.56 (689 -> 384)
MAX_HELD_OUT_RATIO = 0.75


def learnable_picture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A smooth random lightness field whose a*b* is a fixed function of L: blue where dark, orange where light."""
    field = rng.normal(0, 1, (size // 8 + 2, size // 8 + 2)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC))
    lightness = 50 + 35 * np.tanh(smooth)
    shade = (lightness - 50) / 35
    return metrics.lab_to_rgb(np.stack([lightness, 25 * shade + 5, 45 * shade], axis=-1))


def _folder(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(learnable_picture(rng)).save(folder / f"{index:02d}.png")
    return folder


@torch.no_grad()
def _ab_error(trainer: Trainer, head: torch.nn.Module, rgb: np.ndarray) -> float:
    """Mean squared a*b* error of head on one picture, with the trainer's global features."""
    lightness, ab = lab_batch(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    predicted = head.eval()(lightness, trainer.global_features(lightness).float()).float()
    return float((predicted - ab).pow(2).mean())


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    config = TrainConfig(data=[str(_folder(root / "train", 16, seed=0))], val=[str(_folder(root / "val", 4, seed=1))],
                         epochs=1, epoch_size=4 * STEPS, batch_size=4, crop_size=32, val_size=SIZE, workers=0,
                         seed=0, cache_global_features=True, precision="fp32", init="general")
    trainer = Trainer(config, root / "run", progress=False)
    before = trainer.validate()["val_val_loss"]
    initial = copy.deepcopy(trainer.model)
    trainer.run()
    return trainer, initial, before


def test_a_short_run_lowers_the_validation_loss(short_run):
    trainer, _, before = short_run
    assert trainer.step == STEPS
    after = trainer.history[-1]["val_val_loss"]
    assert after <= MAX_LOSS_RATIO * before, f"validation loss {before:.4f} -> {after:.4f}"


def test_the_trained_head_beats_its_start_on_a_picture_it_never_saw(short_run):
    trainer, initial, _ = short_run
    held_out = learnable_picture(np.random.default_rng(99))
    start, trained = _ab_error(trainer, initial, held_out), _ab_error(trainer, copy.deepcopy(trainer.model), held_out)
    assert trained <= MAX_HELD_OUT_RATIO * start, f"a*b* error on the held-out picture {start:.1f} -> {trained:.1f}"
