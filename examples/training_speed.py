"""Training samples per second of the ways to get a crop's global vector, measured on this machine.

    python examples/training_speed.py --data .pack/manifest.json [--steps 40] [--repeats 2]

Each configuration trains a fresh head (the cost of a step does not depend on
its weights) for ``--steps`` steps of 16 crops on the same data, with the
same one image-loading process, and reports crops per second of training
(steps only, no validation). The rows alternate, ``--repeats`` times, so
that a load that comes and goes hits them alike. Pause other work for clean
figures.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from facecolor_video.training.train import TrainConfig, Trainer

CONFIGURATIONS = {
    "per crop, VGG16 at 224, 128 px crops (generation 2)": dict(crop_size=128, global_size=224),
    "per crop, VGG16 at 160, 128 px crops": dict(crop_size=128, global_size=160),
    "per crop, VGG16 at 112, 128 px crops": dict(crop_size=128, global_size=112),
    "per crop, VGG16 at 112, 112 px crops (the campaign)": dict(crop_size=112, global_size=112),
}


def samples_per_second(data: str, steps: int, batch_size: int, **options) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(data=[data], init=None, epochs=1, epoch_size=steps * batch_size,
                             batch_size=batch_size, workers=1, uncertainty=True, checkpoint_every=10**9, **options)
        Trainer(config, run_dir, progress=False).run()
        with open(Path(run_dir) / "log.csv") as stream:
            return float(next(csv.DictReader(stream))["images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a pack manifest or an image folder")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    measured: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    for _ in range(args.repeats):
        for name, options in CONFIGURATIONS.items():
            measured[name].append(samples_per_second(args.data, args.steps, args.batch_size, **options))
    baseline = statistics.median(next(iter(measured.values())))
    for name, values in measured.items():
        median = statistics.median(values)
        print(f"{name}: {median:.1f} crops/s (runs {', '.join(f'{v:.1f}' for v in values)}), "
              f"{median / baseline:.2f}x generation 2")


if __name__ == "__main__":
    main()
