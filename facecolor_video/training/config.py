"""What a training run is asked to do: its settings, the learning rate they give at each step, and the
names of the files it writes in its run folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
LOG_NAME = "log.csv"
PLOT_NAME = "losses.png"
HEAD_NAME = "head.pt"
LOSSES = ("mse", "rebalanced")
FINE_TUNE_LEARNING_RATE = 1e-4
SCRATCH_LEARNING_RATE = 3e-4


@dataclass
class TrainConfig:
    data: list[str]  # image folders and/or pack manifests (each set of a pack is one source)
    val: list[str] = field(default_factory=list)  # the same; a pack gives its validation sets
    # sampling share of each source (a list in order, or {source name: share}); None = by size
    mix: list[float] | dict[str, float] | None = None
    epochs: int = 10
    epoch_size: int | None = None  # samples per epoch; None = all training images once
    batch_size: int = 32
    crop_size: int = 128
    min_scale: float = 0.35  # smallest crop area of the random resized crop
    # None: 1e-4 when fine-tuning from ``init``, 3e-4 from scratch (the paper's Adam default)
    learning_rate: float | None = None
    # start from this head (a model name such as "general", or a head file); None: from scratch
    init: str | None = None
    dropout: float = 0.4
    batch_norm: bool = False
    val_size: int = 192  # validation images: short side resized, centre square crop
    val_limit: int = 400  # images per validation folder (evenly spaced)
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    time_limit_minutes: float | None = None
    precision: str = "auto"  # autocast: auto (bf16 where fast), fp32, bf16
    loss: str = "mse"  # "mse" (the paper's eq. 2) or "rebalanced" (rare a*b* weigh more)
    rebalance_uniform: float = 0.5  # rebalanced: mix of the a*b* prior with a uniform one (Zhang et al.'s lambda)
    uncertainty: bool = False  # predict a*b*'s variance too, and fade unsure colours to gray
    uncertainty_weight: float = 0.1  # weight of the variance's loss next to the colour loss
    lightness_jitter: float = 0.0  # 0: off; else the spread of a random gamma/contrast of the L input
    # VGG16's global vector of each whole image, computed once and kept in the run folder, instead of
    # one per crop: on a CPU the frozen VGG16 is three quarters of a step, so this trains about 4x faster,
    # and a film's frames are seen whole too
    cache_global_features: bool = False
    images_per_source: int | None = None  # at most this many (evenly spaced) images of each source
    lr_schedule: str = "cosine"  # "cosine" (decay to min_lr_fraction) or "constant"
    # cosine over this many minutes of training (across resumed runs); None: over all epochs' steps
    lr_decay_minutes: float | None = None
    # cosine over this many training samples (across resumed runs): unlike minutes, it does not run on
    # while the machine is shared or the run is paused, so a campaign's schedule means the same every day
    lr_decay_samples: int | None = None
    min_lr_fraction: float = 0.05
    warmup_steps: int = 0
    # VGG16's input square for each crop's global vector; None: the start head's (224 from scratch). 112 costs
    # a seventh of 224 on a CPU; a head of another size is moved to it first (see :mod:`.global_size`)
    global_size: int | None = None
    regrounding_crops: int = 1536  # crops whose vectors at both sizes fit that move
    # a folder that keeps a long training campaign between runs and machines: the head in float16 and a
    # small state (steps, samples, seconds, log); a run resumes from it when the run folder has no checkpoint
    campaign: str | None = None


def effective_learning_rate(config: TrainConfig) -> float:
    if config.learning_rate is not None:
        return config.learning_rate
    return FINE_TUNE_LEARNING_RATE if config.init else SCRATCH_LEARNING_RATE


def learning_rate_factor(config: TrainConfig, step: int, seconds: float, total_steps: int,
                         samples: int = 0) -> float:
    """The multiplier of the base learning rate: linear warm-up, then constant or a cosine decay
    (over samples seen, over training minutes, or over all epochs' steps)."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    if config.lr_decay_samples:
        progress = samples / config.lr_decay_samples
    elif config.lr_decay_minutes:
        progress = seconds / (config.lr_decay_minutes * 60)
    else:
        progress = step / max(total_steps, 1)
    progress = min(max(progress, 0.0), 1.0)
    low = config.min_lr_fraction
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
