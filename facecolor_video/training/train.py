"""Training: image folders (or a pack, see :mod:`.pack`; the data side is :mod:`.data`) in, a colorization head out.

The paper's recipe: L in, a*b* target, MSE loss (eq. 2), Adam, dropout, a
frozen VGG16 giving global features. Augmentation is a random resized crop and
a horizontal flip (both keep colours as they are), optionally a random tone
curve on the L the network sees (``lightness_jitter``: old film's gray levels
are rarely those of a colour photo's L). Options measured against the paper's
recipe: a class-rebalanced MSE (``loss="rebalanced"``: rare, saturated a*b*
weigh more, so the mean is not pulled to brown), a predicted variance that
fades unsure colours to gray (``uncertainty``), batch norm, and a cosine
learning-rate decay (the default). Runs on CUDA (bf16 autocast) or on the CPU
(bf16 autocast where the processor has it). Checkpoints are written every N
steps, at each epoch's end and on Ctrl-C, and ``resume=True`` continues from
the newest one, learning-rate schedule included.

Launched by torchrun (``torchrun --nproc-per-node K -m facecolor_video train
...``), each process trains a DistributedDataParallel copy of the head on its
own share of the images; rank 0 alone validates and writes the run folder.
"""

from __future__ import annotations

import csv
import math
import random
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..devices import autocast_dtype
from ..errors import InputError
from ..model.backbone import build_global_features
from ..model.color import lab_to_rgb
from ..model.network import AB_SCALE, ColorizationNet
from . import pack as packs
from .augment import jitter_lightness
from .campaign import Campaign
from .config import (
    BEST_NAME,
    CHECKPOINT_NAME,
    FINE_TUNE_LEARNING_RATE,
    HEAD_NAME,
    LOG_NAME,
    LOSSES,
    PLOT_NAME,
    SCRATCH_LEARNING_RATE,
    TrainConfig,
    effective_learning_rate,
    learning_rate_factor,
)
from .data import (
    GLOBAL_FEATURES_NAME,
    ImageFolders,
    evenly_spaced,
    lab_batch,
    mix_shares,
    training_sources,
    weighted_sampler,
    whole_image_global_features,
)
from .distributed import DistributedContext, distributed_context, one_thread_per_worker
from .export import export_best, export_head, with_uncertainty_strength
from .global_size import regrounded_head
from .losses import PRIOR_SAMPLE, ChromaPrior, colorization_loss, prior_sample
from .run_log import plot_history, progress_bar, write_log
from .starting_head import INITIAL_LOG_VARIANCE, initial_head

# The settings, losses, processes and export of a run have their own modules; this one still
# offers their public names, as it did when it held them.
__all__ = [
    "BEST_NAME", "CHECKPOINT_NAME", "FINE_TUNE_LEARNING_RATE", "HEAD_NAME", "INITIAL_LOG_VARIANCE", "LOG_NAME",
    "LOSSES", "PLOT_NAME", "PRIOR_SAMPLE", "SCRATCH_LEARNING_RATE", "ChromaPrior", "DistributedContext",
    "TrainConfig", "Trainer", "colorization_loss", "effective_learning_rate", "export_head", "initial_head",
    "jitter_lightness", "learning_rate_factor", "plot_history", "train", "train_and_export",
    "with_uncertainty_strength",
]

class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | Path, progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.distributed = distributed_context(config.device)
        rank, world_size = self.distributed.rank, self.distributed.world_size
        self.progress = progress and self.distributed.is_main
        self.device = self.distributed.device
        self.amp_dtype = autocast_dtype(self.device, config.precision)
        # each rank augments differently; DDP starts every rank from rank 0's initial weights
        torch.manual_seed(config.seed + rank)
        random.seed(config.seed + rank)
        np.random.seed(config.seed + rank)

        self.sources = {name: evenly_spaced(items, config.images_per_source)
                        for name, items in training_sources(config.data).items()}
        per_source = list(self.sources.values())
        self.train_paths = [p for items in per_source for p in items]
        self.epoch_size = config.epoch_size or len(self.train_paths)
        self.campaign = Campaign(config.campaign) if config.campaign else None
        start = self.campaign.head() if self.campaign is not None and self.campaign.exists() else None
        if start is None:
            start = initial_head(config, 512)
        global_size = config.global_size or start.global_input_size
        self.global_features = build_global_features(input_size=global_size).to(self.device)
        if start.global_input_size != global_size:
            start = self._regrounded(start)
        global_vectors = self._whole_image_global_features() if config.cache_global_features else None
        self.dataset = ImageFolders(self.train_paths, config.crop_size, config.min_scale,
                                    global_vectors=global_vectors)
        # with --mix, each rank draws its own epoch_size / world_size weighted samples
        mix = mix_shares(config.mix, list(self.sources))
        if mix is None and config.epoch_size is not None:
            mix = [len(items) for items in per_source]  # by size: every image equally likely
        self.sampler = weighted_sampler(per_source, mix, max(self.epoch_size // world_size, 1), config.seed + rank)
        if self.sampler is None and self.distributed.enabled:
            self.sampler = DistributedSampler(self.dataset, world_size, rank, shuffle=True, seed=config.seed)
        self.val_sets = {}
        for name, items in training_sources(config.val, split="val").items():
            self.val_sets[name] = evenly_spaced(items, config.val_limit)
        self.steps_per_epoch = max(self.epoch_size // world_size, 1) // config.batch_size \
            if self.sampler is not None else len(self.dataset) // world_size // config.batch_size
        self.total_steps = self.steps_per_epoch * config.epochs
        if config.loss not in LOSSES:
            raise InputError(f"loss {config.loss!r}: choose one of {', '.join(LOSSES)}")
        self.prior = ChromaPrior(ChromaPrior.count(prior_sample(self.dataset, config.seed)),
                                 config.rebalance_uniform) if config.loss == "rebalanced" else None
        self.lightness_generator = torch.Generator().manual_seed(config.seed + 7919 * (rank + 1))

        self.model = start.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            self.model = self.model.to(memory_format=torch.channels_last)
        self.base_learning_rate = effective_learning_rate(config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.base_learning_rate)
        # what train_step runs: the head itself, or its DDP wrapper (which averages gradients over ranks);
        # self.model stays the bare head, so checkpoints carry no "module." prefix
        self.network = self.model
        if self.distributed.enabled:
            self.network = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step = 0
        self.epoch = 0
        self.best_score = -math.inf
        self.seconds = 0.0  # training wall time, summed over resumed runs
        self.epoch_started = time.monotonic()
        self.history: list[dict] = []

    def _regrounded(self, head: ColorizationNet) -> ColorizationNet:
        """``head`` moved to this run's global input size, fitted on the vectors of training crops at both sizes."""
        old_features = build_global_features(input_size=head.global_input_size).to(self.device)
        crops = ImageFolders(self.train_paths, self.config.crop_size, self.config.min_scale)
        order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(self.config.seed))
        old_vectors, new_vectors = [], []
        for start in range(0, min(self.config.regrounding_crops, len(crops)), 32):
            batch = torch.stack([crops[int(i)] for i in order[start:start + 32]])
            lightness, _ = lab_batch(batch.to(self.device))
            with torch.no_grad(), self._autocast():
                old_vectors.append(old_features(lightness).float().cpu())
                new_vectors.append(self.global_features(lightness).float().cpu())
        moved, error = regrounded_head(head.cpu(), torch.cat(old_vectors), torch.cat(new_vectors),
                                       self.global_features.input_size)
        if self.progress:
            print(f"head moved from VGG16 input {head.global_input_size} to {self.global_features.input_size} "
                  f"({sum(map(len, old_vectors))} crops, relative error of the map {error:.3f})", flush=True)
        return moved

    def _whole_image_global_features(self) -> torch.Tensor:
        """Rank 0 computes (or finds) the run's cache; the other ranks wait, then read it."""
        cache_path = self.run_dir / GLOBAL_FEATURES_NAME
        if self.distributed.is_main:
            vectors = whole_image_global_features(self.train_paths, self.global_features, cache_path,
                                                  self.device, self._autocast, self.progress)
        self.distributed.barrier()
        if not self.distributed.is_main:
            vectors = whole_image_global_features(self.train_paths, self.global_features, cache_path,
                                                  self.device, self._autocast, progress=False)
        return vectors

    # ---------------------------------------------------------------- checkpoints
    def save(self, name: str = CHECKPOINT_NAME) -> Path:
        """Write a checkpoint (rank 0 only: every rank holds the same weights)."""
        path = self.run_dir / name
        if not self.distributed.is_main:
            return path
        temporary = path.with_suffix(".tmp")
        torch.save({
            "model": self.model.state_dict(),
            "model_config": self.model.config,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "best_score": self.best_score,
            "seconds": self.seconds,
            "train_config": asdict(self.config),
            "chroma_prior": None if self.prior is None else self.prior.counts,
        }, temporary)
        temporary.replace(path)  # a kill mid-save never leaves a broken checkpoint
        if self.campaign is not None and name == CHECKPOINT_NAME:
            self.campaign.save(self.model, self.campaign_state())
        return path

    def campaign_state(self) -> dict:
        """What a campaign keeps besides the head: where the schedule stands and the log so far."""
        return {"step": self.step, "epoch": self.epoch, "seconds": round(self.training_seconds(), 1),
                "samples": self.samples_seen(), "best_score": self.best_score,
                "train_config": asdict(self.config), "history": self.history}

    def samples_seen(self) -> int:
        return self.step * self.config.batch_size * self.distributed.world_size

    def resume(self) -> bool:
        """Load the run folder's checkpoint (every rank loads the one rank 0 wrote)."""
        path = self.run_dir / CHECKPOINT_NAME
        if not path.is_file():
            return self._resume_campaign()
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.best_score, self.seconds = state["best_score"], state["seconds"]
        if self.prior is not None and state.get("chroma_prior") is not None:
            self.prior = ChromaPrior(state["chroma_prior"].cpu(), self.config.rebalance_uniform)
        if (self.run_dir / LOG_NAME).is_file():
            with open(self.run_dir / LOG_NAME) as stream:
                self.history = [dict(row) for row in csv.DictReader(stream)]
        return True

    def _resume_campaign(self) -> bool:
        """Continue a campaign's schedule (its head was loaded at start; Adam's moments start afresh)."""
        if self.campaign is None or not self.campaign.exists():
            return False
        state = self.campaign.state()
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.seconds, self.best_score = float(state["seconds"]), float(state["best_score"])
        self.history = list(state.get("history", []))
        return True

    # ---------------------------------------------------------------- steps
    def _loader(self) -> DataLoader:
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(self.epoch)  # a new shuffle, split anew across ranks
        generator = torch.Generator().manual_seed(self.config.seed + self.epoch + 100_003 * self.distributed.rank)
        return DataLoader(
            self.dataset,
            batch_size=self.config.batch_size,
            sampler=self.sampler,
            shuffle=self.sampler is None,
            generator=generator,
            num_workers=self.config.workers,
            worker_init_fn=one_thread_per_worker,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            persistent_workers=False,
        )

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def training_seconds(self) -> float:
        return self.seconds + time.monotonic() - self.epoch_started

    def loss(self, predicted: torch.Tensor, log_variance: torch.Tensor | None,
             ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss trained on, the colour loss alone): see ``losses.colorization_loss``."""
        return colorization_loss(predicted, log_variance, ab, self.prior, self.config.uncertainty_weight)

    def train_step(self, batch: torch.Tensor | list[torch.Tensor]) -> float:
        """One step on a batch of uint8 crops, or of (crops, their images' cached global vectors)."""
        rgb_uint8, global_vector = batch if isinstance(batch, (list, tuple)) else (batch, None)
        rgb_uint8 = rgb_uint8.to(self.device, non_blocking=True)
        lightness, ab = lab_batch(rgb_uint8)
        if self.config.lightness_jitter > 0:
            lightness = jitter_lightness(lightness, self.config.lightness_jitter, self.lightness_generator)
        if global_vector is None:
            with torch.no_grad(), self._autocast():
                global_vector = self.global_features(lightness).float()
        else:
            global_vector = global_vector.to(self.device).float()
        if self.device.type == "cuda":
            lightness = lightness.contiguous(memory_format=torch.channels_last)
        factor = learning_rate_factor(self.config, self.step, self.training_seconds(), self.total_steps,
                                      self.samples_seen())
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_learning_rate * factor
        with self._autocast():
            predicted, log_variance = self.network(lightness, global_vector, raw=True)
        loss, colour_loss = self.loss(predicted, log_variance, ab)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return colour_loss.item()  # what the log and the plot follow: comparable between options

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Per validation folder: ab MSE, RGB PSNR and colourfulness ratio at ``val_size``."""
        from .metrics import colorfulness

        self.model.eval()
        results: dict[str, float] = {}
        dataset_scores = []
        for name, paths in self.val_sets.items():
            size = self.config.val_size
            if paths and isinstance(paths[0], packs.PackedImage):
                size = min(size, paths[0].scale)  # packed images are stored at the training scale
            loader = DataLoader(ImageFolders(paths, size, 1.0, augment=False), batch_size=32,
                                num_workers=self.config.workers, worker_init_fn=one_thread_per_worker)
            squared_errors, psnrs, colour_out, colour_ref = [], [], [], []
            for rgb_uint8 in loader:
                rgb_uint8 = rgb_uint8.to(self.device)
                lightness, ab = lab_batch(rgb_uint8)
                with self._autocast():
                    predicted = self.model(lightness, self.global_features(lightness).float()).float()
                squared_errors.append(((predicted - ab) / AB_SCALE).pow(2).mean(dim=(1, 2, 3)))
                output = (lab_to_rgb(torch.cat([lightness, predicted], 1)) * 255).round()
                mse = (output - rgb_uint8.float()).pow(2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
                psnrs.append(10 * torch.log10(255.0**2 / mse))
                for out_image, ref_image in zip(output.byte().permute(0, 2, 3, 1).cpu().numpy(),
                                                rgb_uint8.permute(0, 2, 3, 1).cpu().numpy()):
                    colour_out.append(colorfulness(out_image))
                    colour_ref.append(colorfulness(ref_image))
            results[f"val_{name}_loss"] = torch.cat(squared_errors).mean().item()
            results[f"val_{name}_psnr"] = torch.cat(psnrs).mean().item()
            results[f"val_{name}_colorfulness"] = float(np.mean(colour_out) / max(np.mean(colour_ref), 1e-6))
            dataset_scores.append(results[f"val_{name}_psnr"])
        self.model.train()
        if dataset_scores:
            results["val_score"] = float(np.mean(dataset_scores))
        return results

    # ---------------------------------------------------------------- loop
    def run(self) -> Path:
        config = self.config
        deadline = None if config.time_limit_minutes is None else time.monotonic() + config.time_limit_minutes * 60
        interrupted = False

        def on_terminate(signum, frame):  # SIGTERM behaves like Ctrl-C: save, then stop
            raise KeyboardInterrupt

        previous_handler = signal.signal(signal.SIGTERM, on_terminate)
        self.model.train()
        try:
            while self.epoch < config.epochs and not interrupted:
                losses = []
                started = self.epoch_started = time.monotonic()
                bar = progress_bar(self.progress, len(self._loader()), f"epoch {self.epoch + 1}/{config.epochs}")
                for batch in self._loader():
                    losses.append(self.train_step(batch))
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}")
                    if self.step % config.checkpoint_every == 0:
                        self.save()
                    if deadline is not None and self.distributed.any(time.monotonic() > deadline):
                        interrupted = True
                        break
                bar.close()
                self.seconds += time.monotonic() - started
                self.epoch_started = time.monotonic()  # what training_seconds() adds from here on
                self.epoch += 1
                self._end_epoch(float(np.mean(losses)) if losses else float("nan"), time.monotonic() - started, len(losses))
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
        self.save()
        return self.run_dir / BEST_NAME

    def _end_epoch(self, train_loss: float, seconds: float, steps: int) -> None:
        train_loss = self.distributed.mean(train_loss)
        if self.distributed.is_main:
            self._log_epoch(train_loss, seconds, steps)
        self.distributed.barrier()  # the other ranks wait while rank 0 validates and saves

    def _log_epoch(self, train_loss: float, seconds: float, steps: int) -> None:
        images = steps * self.config.batch_size * self.distributed.world_size
        row = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss,
               "learning_rate": self.optimizer.param_groups[0]["lr"],
               "images_per_second": images / max(seconds, 1e-9),
               "wall_seconds": self.seconds}
        row.update(self.validate())
        self.history.append(row)
        write_log(self.run_dir / LOG_NAME, self.history)
        plot_history(self.history, self.run_dir / PLOT_NAME)
        score = row.get("val_score", -train_loss)
        if score > self.best_score:
            self.best_score = score
            self.save(BEST_NAME)
        self.save()
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float))
        print(f"epoch {self.epoch}: {shown}", flush=True)


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    trainer = Trainer(config, run_dir, progress)
    try:
        if (resume or config.campaign) and trainer.resume() and trainer.progress:
            print(f"resumed from step {trainer.step}, epoch {trainer.epoch}", flush=True)
        return trainer.run()
    finally:
        trainer.distributed.close()


def train_and_export(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train, then write the best epoch's head as ``run_dir/head.pt`` with its sha256 beside it.

    Under torchrun every rank trains; rank 0 writes the head while the others wait.
    """
    run_dir = Path(run_dir)
    trainer = Trainer(config, run_dir, progress)
    try:
        if (resume or config.campaign) and trainer.resume() and trainer.distributed.is_main:
            print(f"resumed from step {trainer.step}, epoch {trainer.epoch}", flush=True)
        best = trainer.run()
        if trainer.distributed.is_main:
            export_best(trainer, best)
        trainer.distributed.barrier()
    finally:
        trainer.distributed.close()
    return run_dir / HEAD_NAME


