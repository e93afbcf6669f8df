"""`train` and `eval` end to end on tiny photo folders the test makes itself."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecolor_video.cli import execute
from facecolor_video.errors import WeightsError
from facecolor_video.model.colorizer import load_head

DATA = Path(__file__).parent / "data"
# the bundled pictures whose colour is known (see test_colour_truth.py)
BUNDLED = ("webmorph_neutral_front_002_03.webp", "ex_p0.png", "ex_p1.png", "ex_ref.png")


def _photo_folder(folder, count, size=40, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        # smooth colour fields: something a network can learn a little of in a few steps
        base = rng.integers(0, 255, size=3)
        ramp = np.linspace(0, 1, size)[:, None, None]
        rgb = np.clip(base * (0.5 + ramp) + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"photo_{index:02d}.png")
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = _photo_folder(root / "data", 8)
    val = _photo_folder(root / "val", 4, seed=1)
    run_dir = root / "run"
    args = ["train", "--data", str(data), "--val", str(val), "-o", str(run_dir), "--epochs", "1",
            "--batch-size", "4", "--crop-size", "32", "--workers", "0", "--quiet", "--seed", "3"]
    assert execute(args) == 0
    return root, run_dir, args


def test_train_writes_head_log_plot_and_checksum(trained_run):
    _, run_dir, _ = trained_run
    for name in ("head.pt", "head.pt.sha256", "log.csv", "losses.png", "checkpoint.pt"):
        assert (run_dir / name).is_file(), name
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    assert len(rows) == 1 and float(rows[0]["train_loss"]) > 0
    assert "val_val_psnr" in rows[0]
    head, metadata = load_head(run_dir / "head.pt")
    assert metadata["epochs"] == 1 and metadata["steps"] == 2


def test_resume_continues_from_the_checkpoint(trained_run):
    _, run_dir, args = trained_run
    resumed = [a if a != "1" else "2" for a in args] + ["--resume"]
    assert execute(resumed) == 0
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert int(rows[1]["step"]) == 4  # two more steps, not four from scratch


def test_altered_head_is_refused(trained_run, tmp_path):
    _, run_dir, _ = trained_run
    altered = tmp_path / "head.pt"
    data = bytearray((run_dir / "head.pt").read_bytes())
    data[-100] ^= 0xFF
    altered.write_bytes(bytes(data))
    (tmp_path / "head.pt.sha256").write_text((run_dir / "head.pt.sha256").read_text())
    with pytest.raises(WeightsError, match="sha256"):
        load_head(altered)


def test_epoch_size_sets_the_samples_per_epoch(tmp_path):
    data = _photo_folder(tmp_path / "data", 8)
    run_dir = tmp_path / "run"
    args = ["train", "--data", str(data), "-o", str(run_dir), "--epochs", "1", "--epoch-size", "4",
            "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--quiet"]
    assert execute(args) == 0
    _, metadata = load_head(run_dir / "head.pt")
    assert metadata["steps"] == 2  # 4 samples of 8 images, 2 per batch


def test_training_starts_from_the_shipped_model_unless_told_otherwise(tmp_path):
    import torch

    from facecolor_video.training.train import (
        TrainConfig,
        Trainer,
        effective_learning_rate,
    )

    data = _photo_folder(tmp_path / "data", 2)
    shipped, _ = load_head("general")
    fine_tune = Trainer(TrainConfig(data=[str(data)], init="general", workers=0), tmp_path / "a", progress=False)
    scratch = Trainer(TrainConfig(data=[str(data)], workers=0), tmp_path / "b", progress=False)
    for name, value in shipped.state_dict().items():
        assert torch.equal(fine_tune.model.state_dict()[name].cpu(), value), name
    first = "encoder.layers.0.weight"
    assert not torch.equal(scratch.model.state_dict()[first].cpu(), shipped.state_dict()[first])
    assert effective_learning_rate(fine_tune.config) == 1e-4
    assert effective_learning_rate(scratch.config) == 3e-4
    assert fine_tune.optimizer.param_groups[0]["lr"] == 1e-4


def test_init_that_does_not_fit_is_one_clear_line(tmp_path, capsys):
    data = _photo_folder(tmp_path / "data", 2)
    args = ["train", "--data", str(data), "-o", str(tmp_path / "run"), "--batch-norm", "--quiet", "--workers", "0"]
    assert execute(args) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "general" in error and "batch norm" in error
    assert execute(args + ["--init", str(tmp_path / "missing.pt")]) == 1
    assert "missing.pt" in capsys.readouterr().err


def test_eval_reports_model_and_baselines(tmp_path, capsys):
    """On the bundled pictures (colour known), the shipped model beats gray and the mean-colour guess."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    for name in BUNDLED:
        shutil.copy(DATA / name, folder / name)
    assert execute(["eval", "--images", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"model", "gray", "mean_ab"}
    model, gray, mean_ab = (report["results"][name] for name in ("model", "gray", "mean_ab"))
    assert gray["colorfulness_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert model["n_images"] == 4
    # measured on the shipped model: PSNR 19.73 dB against gray's 18.43 and the mean colour's 19.05;
    # CIEDE2000 14.56 against 17.12 and 14.89
    assert model["psnr"] - gray["psnr"] >= 0.9
    assert gray["ciede2000"] - model["ciede2000"] >= 1.7
    assert model["psnr"] > mean_ab["psnr"] and model["ciede2000"] < mean_ab["ciede2000"]


def test_eval_video_reports_flicker(tmp_path, capsys):
    from tests.media import make_portrait_video

    # the colour portrait panning: eval makes it gray and compares the model's colour with the original
    clip = make_portrait_video(tmp_path / "colour.mp4", n_frames=8, size=(96, 96), gray=False)
    assert execute(["eval", "--video", str(clip), "--render-size", "64", "--json", "--smooth", "none"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 8
    # measured: 31.23 dB against gray's 29.96
    assert report["model_psnr"] - report["gray_psnr"] >= 0.85
    assert np.isfinite(report["excess_flicker"])


def test_eval_video_with_hint_patches_gains_over_the_automatic_run(tmp_path, capsys):
    from tests.media import make_portrait_video

    clip = make_portrait_video(tmp_path / "colour.mp4", n_frames=8, size=(96, 96), gray=False)
    assert execute(["eval", "--video", str(clip), "--render-size", "64", "--json", "--smooth", "none",
                    "--hint-patches", "0,10"]) == 0
    report = json.loads(capsys.readouterr().out)
    automatic, hinted = report["results"]["automatic"], report["results"]["10 patches"]
    assert report["frames"] == automatic["n_images"] == hinted["n_images"] == 8
    # measured: 31.23 dB automatic, 36.68 with 10 patches on the first frame carried through the pan
    assert hinted["psnr_gain"] == pytest.approx(hinted["psnr"] - automatic["psnr"])
    assert hinted["psnr_gain"] >= 3.0
