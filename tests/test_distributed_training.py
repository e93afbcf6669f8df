"""`train` under torchrun: two CPU processes (gloo) train one head with DistributedDataParallel."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import torch

from facecolor_video.model.colorizer import load_head
from tests.test_train_eval import _photo_folder


def test_torchrun_trains_on_two_processes(tmp_path):
    data = _photo_folder(tmp_path / "data", 8)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "facecolor_video", "train", "--data", str(data), "-o", str(run_dir), "--epochs", "1",
               "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--quiet", "--seed", "3",
               "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("trained head:") == 1  # rank 0 alone reports

    for name in ("head.pt", "head.pt.sha256", "log.csv", "losses.png", "checkpoint.pt"):
        assert (run_dir / name).is_file(), name
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    # 8 images over 2 ranks x batch 2: two steps per epoch, one log row
    assert len(rows) == 1 and int(rows[0]["step"]) == 2 and float(rows[0]["train_loss"]) > 0

    checkpoint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert not any(key.startswith("module.") for key in checkpoint["model"])
    head, metadata = load_head(run_dir / "head.pt")
    assert metadata["steps"] == 2 and metadata["processes"] == 2
