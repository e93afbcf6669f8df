"""`train` (fine-tune or train the network) and `pack` (the data sets as WebP shards for it)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..settings import DEVICES


@click.command()
@click.option("--data", "data_dirs", multiple=True, required=True, type=click.Path(exists=True),
              help="a folder of colour photos (recursive), or a pack's manifest.json (see `pack`); repeat for several")
@click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True),
              help="validation folder(s) or a pack's manifest.json, scored after every epoch; the best epoch is kept")
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="run folder: checkpoints, log.csv, losses.png, head.pt")
@click.option("--mix", help="sampling share of each data source (a folder, or a set of a pack), in order "
              "(0.5,0.3,0.2) or by name (utkface=0.3,clothing=0.1; unnamed: 0); default: by size")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--epoch-size", type=click.IntRange(1), help="samples per epoch (default: every image once)")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="per process: under torchrun --nproc-per-node K the global batch is this x K")
@click.option("--crop-size", type=click.IntRange(16), default=128, show_default=True)
@click.option("--min-scale", type=click.FloatRange(0.01, 1), default=0.35, show_default=True,
              help="smallest area of the random crop, as a fraction of the image")
@click.option("--init", default="general", show_default=True,
              help="start from this model (a name or a head file); 'none' trains from scratch")
@click.option("--lr", "learning_rate", type=click.FloatRange(0, min_open=True),
              help="Adam learning rate (default: 1e-4 fine-tuning, 3e-4 from scratch)")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.4, show_default=True)
@click.option("--batch-norm", is_flag=True, help="batch normalization after each convolution (the paper's next step)")
@click.option("--loss", type=click.Choice(["mse", "rebalanced"]), default="mse", show_default=True,
              help="mse: the paper's; rebalanced: MSE weighted by the rarity of each pixel's true a*b*")
@click.option("--uncertainty", is_flag=True, help="also predict a*b*'s variance, and fade unsure colours to gray")
@click.option("--lightness-jitter", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="spread of a random gamma/contrast curve on the L the network sees (0: off)")
@click.option("--cache-global-features", is_flag=True,
              help="VGG16's global features once per whole image (kept in the run folder), not per crop: "
              "about 4x faster on a CPU")
@click.option("--global-size", type=click.IntRange(32, 1024),
              help="VGG16's input square for each crop's global vector (default: the start head's; 112 costs a "
              "seventh of 224 on a CPU, and the head is moved to it first)")
@click.option("--campaign", type=click.Path(file_okay=False),
              help="a folder that keeps a long campaign between runs (float16 head + state.json): resumed from "
              "when the run folder has no checkpoint, written at every checkpoint")
@click.option("--images-per-source", type=click.IntRange(1),
              help="use at most this many (evenly spaced) images of each data source")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True)
@click.option("--lr-decay-minutes", type=click.FloatRange(0, min_open=True),
              help="cosine decay over this much training time (across --resume) instead of over all epochs")
@click.option("--lr-decay-samples", type=click.IntRange(1),
              help="cosine decay over this many samples (across --resume and campaign runs); unlike minutes, "
              "it does not run on while the machine is shared")
@click.option("--warmup-steps", type=click.IntRange(0), default=0, show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="autocast: auto is bf16 on CUDA and on CPUs with native bf16")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500, show_default=True, help="steps")
@click.option("--val-limit", type=click.IntRange(1), default=400, show_default=True,
              help="validation images per set (evenly spaced)")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), help="minutes; stop (and keep the best) after this")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=2, show_default=True, help="image-loading processes")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="continue from the run folder's checkpoint")
@click.option("-q", "--quiet", is_flag=True)
def train(data_dirs, val_dirs, run_dir, mix, quiet, resume, init, **settings):
    """Fine-tune the colorization network on your own photos.

    Training starts from the shipped general model (--init), so a few thousand
    photos of one kind (a family album, one film's era) adapt it quickly; on a
    CPU that is what fits in an hour. --init none trains from scratch.

    \b
      facecolor-video train --data photos/ --val held_out/ -o run/
      facecolor-video colorize old.mp4 new.mp4 --model run/head.pt

    On several GPUs (DistributedDataParallel, one process per GPU):

    \b
      torchrun --nproc-per-node 4 -m facecolor_video train --data photos/ -o run/
    """
    from ..training.train import TrainConfig, train_and_export

    mix_values = _parse_mix(mix)
    config = TrainConfig(data=list(data_dirs), val=list(val_dirs), mix=mix_values,
                         init=None if init.lower() == "none" else init,
                         time_limit_minutes=settings.pop("time_limit"), **settings)
    head = train_and_export(config, run_dir, resume=resume, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        click.echo(f"trained head: {head} (use it with --model {head})")


@click.command()
@click.argument("data_root", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="pack folder: manifest.json, train-NNN.webps, val-NNN.webps")
@click.option("--shard-mb", type=click.FloatRange(0.0625), default=6.0, show_default=True, help="byte budget of one shard, MiB")
@click.option("--scale", type=click.IntRange(16), default=128, show_default=True, help="short side the images are stored at")
@click.option("--quality", type=click.IntRange(1, 100), default=75, show_default=True, help="WebP quality")
@click.option("--val-limit", type=click.IntRange(1), default=300, show_default=True,
              help="evenly spaced images packed per validation set")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="encoding processes")
@click.option("--overwrite", is_flag=True, help="replace a pack already in the folder")
@click.option("-q", "--quiet", is_flag=True)
def pack(data_root, out_dir, shard_mb, scale, quality, val_limit, jobs, overwrite, quiet):
    """Pack the training and validation sets as WebP shards for `train --data OUT/manifest.json`.

    DATA_ROOT is the shared data folder (default: FACECOLOR_DATA, else
    ../shared/data). The split into training and held-out images is fixed
    (see facecolor_video/training/splits.py). Any subset of the shards is a
    random sample of all training sets, so a pack can travel in parts.
    """
    from ..training.pack import pack as pack_sets
    from ..training.pack import summary
    from ..training.splits import data_root as find_data_root

    manifest = pack_sets(find_data_root(data_root), out_dir, scale=scale, quality=quality, shard_mb=shard_mb,
                         val_limit=val_limit, jobs=jobs, overwrite=overwrite, progress=not quiet)
    click.echo(summary(manifest))
    click.echo(f"manifest: {manifest}")


def _parse_mix(text: str | None):
    if not text:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if all("=" in part for part in parts):
            return {name.strip(): float(share) for name, share in (part.split("=", 1) for part in parts)}
        return [float(part) for part in parts]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give numbers (0.5,0.5) or name=share pairs", param_hint="--mix") from None
