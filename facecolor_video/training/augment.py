"""Augmentation of the network's input during training."""

from __future__ import annotations

import torch


def jitter_lightness(lightness: torch.Tensor, spread: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random tone curve per image on L in [0, 100]: gamma exp(U(-s, s)), contrast about mid-gray exp(U(-s/2, s/2)).

    Monotonic, so the picture stays the same picture with other gray levels
    (as an old film's emulsion would render it); the a*b* target is not touched.
    """
    n = lightness.shape[0]
    draws = torch.rand(n, 2, generator=generator).to(lightness.device) * 2 - 1
    gamma = torch.exp(draws[:, 0] * spread).view(n, 1, 1, 1)
    contrast = torch.exp(draws[:, 1] * spread / 2).view(n, 1, 1, 1)
    curved = 100.0 * (lightness.clamp(0, 100) / 100.0).pow(gamma)
    return (50.0 + (curved - 50.0) * contrast).clamp(0, 100)
