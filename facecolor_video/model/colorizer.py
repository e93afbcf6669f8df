"""The frame-level colorizer: RGB frames in, colorized RGB frames out.

The work is split in three steps so that a temporal smoother can sit between
them (see ``pipeline``):

1. ``prepare``: frames -> full-resolution L (kept as it is, never re-derived
   from the prediction) and a small copy of L at the render size;
2. ``predict``: small L -> a*b* at the render size (VGG16 global features,
   optionally reused for several frames, then the head);
3. ``compose``: full L + a*b* upsampled -> RGB frames of the source's depth.

``colorize`` does all three for programs that bring their own frames (the
network alone: ``film.stills`` adds faces, references and hints on top).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import autocast_dtype, resolve_device, usable_cores
from ..errors import WeightsError
from ..media.planes import PlaneFormat, YuvPlanes
from ..settings import FACE_MODES, default
from . import weights as weights_registry
from .backbone import GlobalFeatures, build_global_features, load_face_prior
from .chroma import ChromaComposer, lightness_from_luma
from .color import (
    RGB_TO_XYZ,
    lab_curve,
    lab_to_rgb,
    rgb_to_lightness,
    srgb_to_linear,
)
from .face_detector import load_face_detector
from .network import SIZE_MULTIPLE, ColorizationNet

# the training crops are 128 px: measured best on faces and on people in context
DEFAULT_RENDER_SIZE = default("render_size")
# Pixels (frames x rows x width) converted from Lab to RGB at a time in ``compose``:
# strips whose float planes fit in a core's cache run the dozen element-wise passes
# faster (640x480, one thread: 36 ms/frame with 4 M-pixel strips, 25-29 with 128 K).
COMPOSE_STRIP_PIXELS = 1 << 17
# On a GPU each pass is one kernel launch: large strips, bounded only for memory.
COMPOSE_STRIP_PIXELS_GPU = 1 << 22


def _no_stage(name: str) -> AbstractContextManager:
    return nullcontext()


@dataclass
class PreparedBatch:
    """Luminance of a batch of frames: full resolution (N, 1, H, W) and render size (N, 1, h, w).

    For RGB frames ``lightness`` is L (float); for frames given as planes it is
    their luma codes as decoded (integers, ``luma_format`` says how to read them).
    """

    lightness: torch.Tensor
    small_lightness: torch.Tensor
    max_value: float  # 255 or 65535: the depth the frames came in and go out with
    luma_format: PlaneFormat | None = None


def load_head(model: str | Path = weights_registry.DEFAULT_MODEL) -> tuple[ColorizationNet, dict]:
    """A colorization head by name (``general``, ``faces``) or path, hash-checked; returns it and its metadata.

    A path is checked against the sha256 in a ``<file>.sha256`` beside it when
    there is one (``facecolor-video train`` writes it).
    """
    declared = weights_registry.MODELS.get(str(model))
    metadata = {}
    if declared is not None:
        path, sha256 = weights_registry.find(declared), declared.sha256
        metadata["chroma_gain"] = declared.chroma_gain
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
    return head.eval(), {**state.get("metadata", {}), **metadata}


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
    them in between (a new shot always gets its own); the CLI's default, so
    the library and the command line give the same film. Stills passed to
    ``colorize`` always get their own.
    chroma_gain: multiplies the predicted a*b*; None takes the model's tuned value.
    faces: ``auto`` finds faces, which the film layer colorizes each from a
    close-up crop of its own (see ``film/faces.py``); ``off`` leaves them to the
    frame's prediction.
    """

    def __init__(
        self,
        model: str | Path = weights_registry.DEFAULT_MODEL,
        device: str = "auto",
        precision: str = "auto",
        render_size: int | None = DEFAULT_RENDER_SIZE,
        global_every: int = default("global_every"),
        chroma_gain: float | None = None,
        backbone_weights: str | Path | None = None,
        faces: str = default("faces"),
    ):
        self.device = resolve_device(device)
        self.amp_dtype = autocast_dtype(self.device, precision)
        head, self.metadata = load_head(model)
        # channels_last lets oneDNN / cuDNN pick their fastest convolution kernels
        # (on an AVX2 CPU in fp32 too: head at render size 128, 368 -> 304 ms/frame)
        self.head = head.to(self.device).to(memory_format=torch.channels_last)
        self.global_features: GlobalFeatures = (
            build_global_features(backbone_weights, input_size=head.global_input_size)
            .to(self.device).to(memory_format=torch.channels_last)
        )
        # sRGB code value -> linear light, so 8-bit frames skip the gamma curve (same values)
        self._linear_lut = srgb_to_linear(torch.arange(256, dtype=torch.float32) / 255.0).to(self.device)
        self._luminance_row = RGB_TO_XYZ[1].clone().to(self.device)
        # Largest batch the device took after an out-of-memory error (None: no limit seen yet).
        self.chunk_limit: int | None = None
        self.oom_retries = 0
        # stage(name) -> context manager around each step; ``bench`` times the stages with it.
        self.stage: Callable[[str], AbstractContextManager] = _no_stage
        self.render_size = render_size
        self.global_every = max(1, int(global_every))
        self.chroma_gain = float(self.metadata.get("chroma_gain", 1.0) if chroma_gain is None else chroma_gain)
        self._frames_since_global = 0
        self._last_global: torch.Tensor | None = None
        # threads that run parts of the head's batch (see _run_head), made on first use
        self._head_pool: ThreadPoolExecutor | None = None
        self._head_pool_size = usable_cores()
        # one ChromaComposer per composing thread: each keeps its own CUDA stream and host buffer
        self._composers = threading.local()
        if faces not in FACE_MODES:
            raise ValueError(f"faces must be one of {FACE_MODES}, got {faces!r}")
        # faces="auto": YuNet finds faces, each colorized from a crop of its own (film/faces.py)
        self.face_detector = load_face_detector().to(self.device) if faces == "auto" else None
        # and its crop takes the face prior for global features: "a face", not the scene
        self.face_prior = (load_face_prior(input_size=head.global_input_size).to(self.device)
                           if faces == "auto" else None)

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
    def prepare(self, frames: list[np.ndarray] | np.ndarray | list[YuvPlanes]) -> PreparedBatch:
        """RGB frames (H x W x 3) or decoded planes (``YuvPlanes``) -> their L at full and render size."""
        if isinstance(frames, list) and frames and isinstance(frames[0], YuvPlanes):
            return self._prepare_planes(frames)
        stacked = np.stack(frames) if isinstance(frames, list) else frames
        if stacked.dtype == np.uint8:
            lightness, max_value = self._lightness_8bit(stacked), 255.0
        else:
            rgb, max_value = self.to_tensor(stacked)
            lightness = rgb_to_lightness(rgb)
        height, width = lightness.shape[-2:]
        small_shape = render_shape(height, width, self.render_size)
        small = lightness
        if small_shape != (height, width):
            small = F.interpolate(lightness, size=small_shape, mode="area")
        return PreparedBatch(lightness, small, max_value)

    def _prepare_planes(self, pictures: list[YuvPlanes]) -> PreparedBatch:
        """Luma planes -> the luma codes as they are (for ``compose_planes``) and L at the render size.

        The model sees the source read as gray, as on the RGB path: each luma
        code is looked up as L, and L is averaged down to the render size.
        """
        layout = pictures[0].format
        stacked = np.stack([picture.luma for picture in pictures])[:, None]
        # uint16 has no torch arithmetic on every device: go through int32
        luma = torch.from_numpy(stacked.astype(np.int32) if stacked.dtype == np.uint16 else stacked)
        if self.device.type == "cuda":
            luma = luma.pin_memory().to(self.device, non_blocking=True)
        height, width = luma.shape[-2:]
        small_shape = render_shape(height, width, self.render_size)
        small = self.lightness_of_luma(luma, layout)
        if small_shape != (height, width):
            small = F.interpolate(small, size=small_shape, mode="area")
        return PreparedBatch(luma, small, float(layout.max_code), luma_format=layout)

    def lightness_of_luma(self, luma: torch.Tensor, layout: PlaneFormat) -> torch.Tensor:
        """Luma codes of ``layout`` (integers, any shape) -> L of the picture read as gray, float32."""
        return lightness_from_luma(luma, self._composer().table(layout))

    def _composer(self) -> ChromaComposer:
        composer = getattr(self._composers, "composer", None)
        if composer is None:
            strip_pixels = COMPOSE_STRIP_PIXELS if self.device.type == "cpu" else COMPOSE_STRIP_PIXELS_GPU
            composer = self._composers.composer = ChromaComposer(self.device, strip_pixels)
        return composer

    def _lightness_8bit(self, stacked: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> L (N, 1, H, W): ``rgb_to_lightness`` with the gamma curve as a 256-entry table.

        The same numbers in about half the time: one gather and one 3-vector dot
        product per pixel instead of a float pass per channel through pow(2.4).
        """
        codes = torch.from_numpy(stacked)
        if self.device.type == "cuda":
            codes = codes.pin_memory().to(self.device, non_blocking=True)
        count, height, width, _ = codes.shape
        linear = self._linear_lut.index_select(0, codes.reshape(-1).int()).view(count, height, width, 3)
        luminance = (linear @ self._luminance_row).unsqueeze(1)
        return lab_curve(luminance).mul_(116).sub_(16)

    def in_chunks(self, function: Callable, *tensors: torch.Tensor):
        """``function(*tensors)``, split along the batch when the device runs out of memory.

        On ``torch.cuda.OutOfMemoryError`` the batch is halved and retried (down
        to one frame); the smaller size is kept for the next batches. Results
        (tensors or numpy arrays) are joined in order: no frame is dropped.
        """
        count = tensors[0].shape[0]
        chunk = min(count, self.chunk_limit or count)
        while True:
            try:
                parts = [function(*(t[start:start + chunk] for t in tensors)) for start in range(0, count, chunk)]
                break
            except torch.cuda.OutOfMemoryError:
                if chunk <= 1:
                    raise
                chunk = max(1, chunk // 2)
                self.chunk_limit = chunk
                self.oom_retries += 1
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else torch.cat(parts)

    @torch.no_grad()
    def predict(
        self,
        small_lightness: torch.Tensor,
        fresh_global: list[bool] | None = None,
        global_vectors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L at the render size (N, 1, h, w) -> a*b* (N, 2, h, w), float32, Lab units.

        fresh_global: per frame, whether VGG16 global features are computed for
        it (else the last ones are reused); None: every ``global_every``-th frame.
        global_vectors: the frames' global features from ``global_vectors``
        (computed elsewhere, e.g. in the decoding thread); then only the head runs.
        """
        if global_vectors is None:
            global_vectors = self.global_vectors(small_lightness, fresh_global)
        with self.stage("head"):
            small_lightness = small_lightness.contiguous(memory_format=torch.channels_last)
            ab = self.in_chunks(self._run_head, small_lightness, global_vectors)
        return ab * self.chroma_gain

    def _run_head(self, small_lightness: torch.Tensor, global_vectors: torch.Tensor) -> torch.Tensor:
        """The head on a batch, split across the cores (see ``in_parts``).

        On 2 cores at 640x480: 8.2 -> 9.6-10 fps end to end.
        """
        return self.in_parts(self.head_ab, small_lightness, global_vectors)

    def in_parts(self, function: Callable, *tensors: torch.Tensor) -> torch.Tensor:
        """``function(*tensors)`` with the batch cut in one part per core, each part run by a thread of its own.

        The pipeline gives torch one thread on a 2-core CPU (decode, VGG16,
        compose and encode run beside the network), so a step of the network
        thread would use one core; cut in parts, it uses whichever core the
        other steps leave idle. ``function`` runs in the pool's threads, so it
        enters no_grad and autocast itself (both are per thread). Elsewhere
        (CUDA, torch with several threads, one frame) it runs as it is.
        """
        parts = self._head_parts(tensors[0].shape[0])
        if parts == 1:
            return function(*tensors)
        if self._head_pool is None:
            self._head_pool = ThreadPoolExecutor(self._head_pool_size, thread_name_prefix="facecolor-head")
        futures = [self._head_pool.submit(function, *part)
                   for part in zip(*(tensor.tensor_split(parts) for tensor in tensors))]
        return torch.cat([future.result() for future in futures])

    @torch.no_grad()
    def head_ab(self, small_lightness: torch.Tensor, global_vectors: torch.Tensor) -> torch.Tensor:
        """The head alone on L (N, 1, h, w) and global vectors (N, 512) -> a*b* (N, 2, h, w), before chroma_gain."""
        # no_grad and autocast are per thread: entered here, in whichever thread runs this part
        with self.autocast():
            return self.head(small_lightness, global_vectors).float()

    def _head_parts(self, count: int) -> int:
        if self.device.type != "cpu" or count < 2 or torch.get_num_threads() != 1:
            return 1
        return min(count, self._head_pool_size)

    @torch.no_grad()
    def global_vectors(self, small_lightness: torch.Tensor, fresh_global: list[bool] | None = None) -> torch.Tensor:
        """VGG16 global features (N, 512) for L at the render size, computed where ``fresh_global`` says.

        A separate step so the pipeline can run it beside the head, in the
        thread that decodes: on a CPU the two then share the cores.
        """
        with self.autocast(), self.stage("global_features"):
            return self._global_vectors(small_lightness, fresh_global)

    def autocast(self) -> AbstractContextManager:
        """The colorizer's mixed precision (bf16 where the device runs it fast), for a step run outside it."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def fresh_global_vectors(self, small_lightness: torch.Tensor) -> torch.Tensor:
        """VGG16 global vectors (N, 512) of every frame, none reused (in the caller's autocast)."""
        small_lightness = small_lightness.contiguous(memory_format=torch.channels_last)
        return self.in_chunks(lambda lightness: self.global_features(lightness).float(), small_lightness)

    def _global_vectors(self, small_lightness: torch.Tensor, fresh_flags: list[bool] | None) -> torch.Tensor:
        """One global vector per frame: computed where asked, reused from the last computed one elsewhere.

        fresh_flags: which frames get new features (the pipeline asks at every
        scene cut and every ``global_every``-th frame of the film). Without it,
        every ``global_every``-th frame of this colorizer's stream is fresh.
        """
        count = small_lightness.shape[0]
        if self.global_every == 1:
            return self.fresh_global_vectors(small_lightness)
        fresh = []
        for index in range(count):
            if fresh_flags is not None:
                wanted = bool(fresh_flags[index])
            else:
                wanted = self._frames_since_global >= self.global_every
            if wanted or self._last_global is None and not fresh:
                fresh.append(index)
                self._frames_since_global = 0
            self._frames_since_global += 1
        computed = self.fresh_global_vectors(small_lightness[fresh]) if fresh else None
        vectors = []
        for index in range(count):
            if index in fresh:
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
        return self.in_chunks(lambda full, chroma: self._compose(full, chroma, max_value), lightness, ab)

    def _compose(self, lightness: torch.Tensor, ab: torch.Tensor, max_value: float) -> np.ndarray:
        if ab.shape[-2:] != lightness.shape[-2:]:
            ab = F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        ab = ab.to(lightness.dtype)
        count, _, height, width = lightness.shape
        deep = max_value > 255
        result = np.empty((count, height, width, 3), np.uint16 if deep else np.uint8)
        # Lab -> RGB in horizontal strips: its float intermediates (a dozen frame-sized
        # planes) stay strip-sized, so they stay in cache and an 8K frame does not need
        # gigabytes. Same values up to float rounding (vectorized tails): at most 1 in
        # 65535 for 16-bit output.
        strip_pixels = COMPOSE_STRIP_PIXELS if lightness.device.type == "cpu" else COMPOSE_STRIP_PIXELS_GPU
        rows = max(1, strip_pixels // max(1, count * width))
        for top in range(0, height, rows):
            strip = slice(top, top + rows)
            rgb = lab_to_rgb(torch.cat([lightness[:, :, strip], ab[:, :, strip]], dim=1))
            scaled = rgb.mul_(max_value).round_().permute(0, 2, 3, 1)
            result[:, strip] = (scaled.to(torch.int32) if deep else scaled.to(torch.uint8)).cpu().numpy()
        return result

    @torch.no_grad()
    def compose_planes(self, luma: torch.Tensor, ab: torch.Tensor, luma_format: PlaneFormat,
                       output: PlaneFormat) -> np.ndarray:
        """Luma codes (N, 1, H, W) read as ``luma_format`` + a*b* -> Cb/Cr planes (N, 2, Hc, Wc) of ``output``.

        The output's luma is the source's: its codes are read with the source's
        depth and range, and only the chroma planes are computed, in ``output``'s
        subsampling, depth, matrix and range.
        """
        composer = self._composer()
        return self.in_chunks(lambda codes, chroma: composer.compose(codes, chroma, luma_format, output), luma, ab)

    def colorize(self, frames: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Colorize a batch of frames (H x W x 3, uint8 or uint16, same size) by the network alone.

        Each frame gets its own global features; no temporal smoothing. Faces,
        references and hints are stages of the film layer: ``facecolor_video.Colorizer``
        (``film.stills``) adds them.
        """
        prepared = self.prepare(frames)
        vectors = self.global_vectors(prepared.small_lightness, [True] * prepared.small_lightness.shape[0])
        ab = self.predict(prepared.small_lightness, global_vectors=vectors)
        return self.compose(prepared.lightness, ab, prepared.max_value)
