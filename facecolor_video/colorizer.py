"""The frame-level colorizer: RGB frames in, colorized RGB frames out.

The work is split in three steps so that a temporal smoother can sit between
them (see ``pipeline``):

1. ``prepare``: frames -> full-resolution L (kept as it is, never re-derived
   from the prediction) and a small copy of L at the render size;
2. ``predict``: small L -> a*b* at the render size (VGG16 global features,
   optionally reused for several frames, then the head);
3. ``compose``: full L + a*b* upsampled -> RGB frames of the source's depth.

``colorize`` does all three for programs that bring their own frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import weights as weights_registry
from .backbone import GlobalFeatures, build_global_features
from .color import lab_to_rgb, rgb_to_lightness
from .devices import autocast_dtype, resolve_device
from .errors import WeightsError
from .model import SIZE_MULTIPLE, ColorizationNet

DEFAULT_RENDER_SIZE = 256


@dataclass
class PreparedBatch:
    """Luminance of a batch of frames: full resolution (N, 1, H, W) and render size (N, 1, h, w)."""

    lightness: torch.Tensor
    small_lightness: torch.Tensor
    max_value: float  # 255 or 65535: the depth the frames came in and go out with


def load_head(model: str | Path = weights_registry.DEFAULT_MODEL) -> tuple[ColorizationNet, dict]:
    """A colorization head by name (``general``, ``faces``) or path, hash-checked; returns it and its metadata.

    A path is checked against the sha256 in a ``<file>.sha256`` beside it when
    there is one (``facecolor-video train`` writes it).
    """
    declared = weights_registry.MODELS.get(str(model))
    if declared is not None:
        path, sha256 = weights_registry.find(declared), declared.sha256
    else:
        path = Path(model)
        if not path.is_file():
            known = ", ".join(sorted(weights_registry.MODELS))
            raise WeightsError(f"{model}: no such model (known names: {known}) and no such file")
        sidecar = path.with_name(path.name + ".sha256")
        sha256 = sidecar.read_text().split()[0] if sidecar.is_file() else None
    state = weights_registry.load_verified(path, sha256)
    if not isinstance(state, dict) or "state_dict" not in state or "config" not in state:
        raise WeightsError(f"{path}: not a colorization head (expected config and state_dict)")
    head = ColorizationNet(**state["config"])
    try:
        head.load_state_dict({k: v.float() for k, v in state["state_dict"].items()})
    except RuntimeError as error:
        raise WeightsError(f"{path}: weights do not fit the network ({str(error).splitlines()[0]})") from None
    return head.eval(), dict(state.get("metadata", {}))


def render_shape(height: int, width: int, render_size: int | None) -> tuple[int, int]:
    """The size a*b* is predicted at: short side ``render_size`` (never upscaled), multiples of 8."""
    if render_size is None or min(height, width) <= render_size:
        scale = 1.0
    else:
        scale = render_size / min(height, width)

    def snap(x: float) -> int:
        return max(SIZE_MULTIPLE, int(round(x / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return snap(height * scale), snap(width * scale)


class Colorizer:
    """Owns the network, the device and the precision.

    device: ``auto`` (CUDA when there is a GPU), ``cuda`` or ``cpu``.
    precision: ``auto`` (bf16 on CUDA and on CPUs with native bf16, fp16 on
    older GPUs, else fp32), ``fp32``, ``bf16`` or ``fp16``.
    render_size: short side at which a*b* is predicted (None: full size).
    global_every: compute VGG16 global features on every Kth frame and reuse
    them in between (a new shot always gets its own).
    chroma_gain: multiplies the predicted a*b*; None takes the model's tuned value.
    """

    def __init__(
        self,
        model: str | Path = weights_registry.DEFAULT_MODEL,
        device: str = "auto",
        precision: str = "auto",
        render_size: int | None = DEFAULT_RENDER_SIZE,
        global_every: int = 1,
        chroma_gain: float | None = None,
        backbone_weights: str | Path | None = None,
    ):
        self.device = resolve_device(device)
        self.amp_dtype = autocast_dtype(self.device, precision)
        head, self.metadata = load_head(model)
        self.head = head.to(self.device)
        self.global_features: GlobalFeatures = build_global_features(backbone_weights).to(self.device)
        if self.device.type == "cuda" or self.amp_dtype is not None:
            # channels_last lets oneDNN / cuDNN pick their fastest convolution kernels
            self.head = self.head.to(memory_format=torch.channels_last)
            self.global_features = self.global_features.to(memory_format=torch.channels_last)
        self.render_size = render_size
        self.global_every = max(1, int(global_every))
        self.chroma_gain = float(self.metadata.get("chroma_gain", 1.0) if chroma_gain is None else chroma_gain)
        self._frames_since_global = 0
        self._last_global: torch.Tensor | None = None

    # ------------------------------------------------------------------ steps
    def to_tensor(self, frames: list[np.ndarray] | np.ndarray) -> tuple[torch.Tensor, float]:
        """H x W x 3 uint8/uint16 frames -> float RGB (N, 3, H, W) in [0, 1] on the device."""
        stacked = np.stack(frames) if isinstance(frames, list) else frames
        max_value = 65535.0 if stacked.dtype == np.uint16 else 255.0
        # uint16 has no torch arithmetic on every device: go through int32
        tensor = torch.from_numpy(stacked.astype(np.int32) if stacked.dtype == np.uint16 else stacked)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        rgb = tensor.permute(0, 3, 1, 2).float().div_(max_value)
        return rgb, max_value

    @torch.no_grad()
    def prepare(self, frames: list[np.ndarray] | np.ndarray) -> PreparedBatch:
        rgb, max_value = self.to_tensor(frames)
        lightness = rgb_to_lightness(rgb)
        height, width = lightness.shape[-2:]
        small_shape = render_shape(height, width, self.render_size)
        small = lightness
        if small_shape != (height, width):
            small = F.interpolate(lightness, size=small_shape, mode="area")
        return PreparedBatch(lightness, small, max_value)

    @torch.no_grad()
    def predict(self, small_lightness: torch.Tensor, new_shot: list[bool] | None = None) -> torch.Tensor:
        """L at the render size (N, 1, h, w) -> a*b* (N, 2, h, w), float32, Lab units."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            vectors = self._global_vectors(small_lightness, new_shot)
            if self.device.type == "cuda" or self.amp_dtype is not None:
                small_lightness = small_lightness.contiguous(memory_format=torch.channels_last)
            ab = self.head(small_lightness, vectors).float()
        return ab * self.chroma_gain

    def _global_vectors(self, small_lightness: torch.Tensor, new_shot: list[bool] | None) -> torch.Tensor:
        count = small_lightness.shape[0]
        if self.global_every == 1:
            return self.global_features(small_lightness).float()
        # which frames get fresh features: every Kth, and the first of each shot
        fresh = []
        for index in range(count):
            shot_starts = bool(new_shot[index]) if new_shot is not None else False
            if self._last_global is None or shot_starts or self._frames_since_global >= self.global_every:
                fresh.append(index)
                self._frames_since_global = 0
            self._frames_since_global += 1
        computed = self.global_features(small_lightness[fresh]).float() if fresh else None
        vectors = []
        for index in range(count):
            if fresh and index in fresh:
                self._last_global = computed[fresh.index(index)]
            vectors.append(self._last_global)
        return torch.stack(vectors)

    def reset(self) -> None:
        """Forget reused global features (call between unrelated videos)."""
        self._last_global = None
        self._frames_since_global = 0

    @torch.no_grad()
    def compose(self, lightness: torch.Tensor, ab: torch.Tensor, max_value: float = 255.0) -> np.ndarray:
        """Full-size L (N, 1, H, W) + a*b* at any size -> RGB frames (N, H, W, 3), uint8 or uint16."""
        if ab.shape[-2:] != lightness.shape[-2:]:
            ab = F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        rgb = lab_to_rgb(torch.cat([lightness, ab.to(lightness.dtype)], dim=1))
        scaled = rgb.mul_(max_value).round_().permute(0, 2, 3, 1)
        if max_value > 255:
            return scaled.to(torch.int32).cpu().numpy().astype(np.uint16)
        return scaled.to(torch.uint8).cpu().numpy()

    def colorize(self, frames: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Colorize a batch of frames (H x W x 3, uint8 or uint16, same size) with no temporal smoothing."""
        prepared = self.prepare(frames)
        ab = self.predict(prepared.small_lightness)
        return self.compose(prepared.lightness, ab, prepared.max_value)
