"""What training minimises: the colour loss (MSE, or rebalanced by how often each a*b* occurs) and the variance's NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..model.network import AB_SCALE
from .data import lab_batch, load_uint8


class ChromaPrior:
    """How often each a*b* bin occurs in the training images, and the rebalancing weight of each bin.

    Zhang, Isola, Efros (Colorful Image Colorization, 2016), eq. 4: a bin's
    weight is 1 / ((1 - lambda) p + lambda / Q), p the bin's smoothed
    frequency, Q the number of bins that occur, normalised so that the
    expected weight under p is 1. Here it weights a per-pixel MSE.
    """

    BIN = 10.0  # a*b* units per bin
    BINS = 22  # -110 .. 110 on each axis

    def __init__(self, counts: torch.Tensor, uniform: float = 0.5):
        counts = counts.double().reshape(1, 1, self.BINS, self.BINS)
        kernel = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)  # smoothing of about half a bin
        smoothed = F.conv2d(counts, (kernel[:, None] * kernel[None, :])[None, None], padding=1)[0, 0]
        self.counts = counts.reshape(self.BINS, self.BINS).float()
        probability = smoothed / smoothed.sum().clamp(min=1e-12)
        occurring = probability > 0
        weights = torch.zeros_like(probability)
        weights[occurring] = 1.0 / ((1 - uniform) * probability[occurring] + uniform / occurring.sum())
        weights /= (probability * weights).sum().clamp(min=1e-12)
        self.weights = weights.float()

    @classmethod
    def bin_index(cls, ab: torch.Tensor) -> torch.Tensor:
        """a*b* (N, 2, H, W) -> flat bin index (N, 1, H, W)."""
        index = ((ab + cls.BINS * cls.BIN / 2) / cls.BIN).floor().long().clamp(0, cls.BINS - 1)
        return index[:, :1] * cls.BINS + index[:, 1:]

    @classmethod
    def count(cls, images: list[torch.Tensor]) -> torch.Tensor:
        counts = torch.zeros(cls.BINS * cls.BINS, dtype=torch.float64)
        for rgb in images:
            _, ab = lab_batch(rgb[None])
            counts += torch.bincount(cls.bin_index(ab).flatten(), minlength=cls.BINS * cls.BINS).double()
        return counts.reshape(cls.BINS, cls.BINS)

    def pixel_weights(self, ab: torch.Tensor) -> torch.Tensor:
        """The weight of each pixel's true a*b* (N, 2, H, W) -> (N, 1, H, W)."""
        return self.weights.to(ab.device).flatten()[self.bin_index(ab)]


PRIOR_SAMPLE = 512  # training images counted for the a*b* prior


def prior_sample(dataset: Dataset, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator)[:PRIOR_SAMPLE]
    return [load_uint8(dataset.paths[int(i)]) for i in order]


def colorization_loss(predicted: torch.Tensor, log_variance: torch.Tensor | None, ab: torch.Tensor,
                      prior: ChromaPrior | None = None,
                      uncertainty_weight: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss trained on, the colour loss alone) on a*b* / AB_SCALE.

    The colour loss is MSE (the paper's eq. 2), or the rebalanced MSE when a
    prior is given; with a predicted log-variance its NLL, weighted by
    ``uncertainty_weight``, is added to what is trained on.
    """
    squared_error = ((predicted.float() - ab) / AB_SCALE).pow(2).sum(dim=1, keepdim=True)
    if prior is not None:
        colour_loss = (prior.pixel_weights(ab) * squared_error).mean() / 2
    else:
        colour_loss = squared_error.mean() / 2  # = F.mse_loss over both channels
    if log_variance is None:
        return colour_loss, colour_loss
    # Gaussian NLL of the error the colour head makes (detached: the variance learns the colour's
    # spread, it does not reweight how the colour itself is learnt)
    log_variance = log_variance.float().clamp(-20, 5)
    variance_loss = (squared_error.detach() * torch.exp(-log_variance) + log_variance).mean()
    return colour_loss + uncertainty_weight * variance_loss, colour_loss
