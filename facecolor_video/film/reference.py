"""Colour from a reference: a photo (a poster, a costume photo, a colour frame) whose colours a shot takes.

No training is needed. For each frame, at the render size:

1. dense features of the frame's L and of the reference's L from the shipped
   VGG16 (conv3_3 after ReLU, a quarter of the render size), each position's
   vector normalized;
2. cosine similarity between every frame position and every reference
   position, softmax over the reference positions (temperature ``TEMPERATURE``);
3. the reference's a*b* is warped through it 4x4 pixels at a time (each frame
   cell gets the attention-weighted mean of the reference cells' 4x4 patches),
   so a match keeps the reference's colour edges;
4. the warped a*b* replaces the network's where the match is confident (best
   cosine similarity between ``MATCH_FLOOR`` and ``MATCH_FULL``), so objects
   absent from the reference keep the network's colour.

The reference also tells how far to trust the network on this film: its look.
The network colours the reference's own L, and a chroma gain and a*b* offset are
fitted to the reference's true colours (``g * predicted + offset``, least
squares, the gain held to 0..``LOOK_GAIN_MAX``). Every frame the reference is in
force for takes the look before the warp, in every shot: a film whose colours
the network gets wrong (or too strong, or of the wrong cast) on the reference
is toned down the same way everywhere. Measured, first frame as the reference,
the look alone (no warp): bikes +1.7 dB over automatic (+0.9 on the five shots
unlike the reference), the panning crowd +1.1, carphone +1.8, Big Buck Bunny +0.1.

Per shot: the blend is also weighted by how alike the frame's VGG16 global
features (the shot's slowly changing vector, see ``shot_features``) and the
reference's are, between ``SHOT_FLOOR`` (none) and ``SHOT_FULL`` (all). A cut
to an unrelated shot therefore drops the reference, and a cut back to a
matching shot takes it again; ``all_shots=True`` applies it everywhere. The
weight depends on the frame alone (its settled global vector and its time), so
a segment decoded from a seek gets the same colours as a run from the start.

A references file has lines ``timecode image``; each reference applies from
its timecode (seconds, ``MM:SS`` or ``HH:MM:SS``, fractions allowed) on. A line
``* image`` places a reference nowhere in time: each frame then takes, of these
and the timed reference in force, the one whose global features are nearest
its own (the shot's slowly changing vector, so a shot keeps its choice), still
subject to the shot weight. Stills of several scenes need no timecodes.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..model.color import rgb_to_lab

# Softmax temperature over cosine similarities: low enough that a clear match
# takes nearly all the weight, high enough to average a few near-equal ones.
TEMPERATURE = 0.02
# Best cosine similarity (conv3_3) of a frame cell with the reference: below
# MATCH_FLOOR the network's colour stays, above MATCH_FULL the reference's is taken.
# Measured (first frame as reference): cells of unrelated clips score 0.51-0.57
# at the median, cells of the reference's own shot 0.72-1.0.
MATCH_FLOOR = 0.55
MATCH_FULL = 0.75
# Cosine similarity of the frame's and the reference's global features (conv5
# averaged): below SHOT_FLOOR the reference does not apply to the shot at all.
# Measured: frames of the reference's own shot 0.86-1.0, other shots and clips 0.22-0.55.
SHOT_FLOOR = 0.6
SHOT_FULL = 0.8
# The look's chroma gain is held to 0..LOOK_GAIN_MAX: a negative fit (the network's
# colours opposite to the truth) means gray plus the offset. Big Buck Bunny's first
# frame fits 1.6 (the best gain over its whole clip is 1.2-1.3); 1.5 measured +0.2 dB
# over a cap of 1.0 there.
LOOK_GAIN_MAX = 1.5
# A reference with less chroma than this (mean a*b* distance from gray, Lab units)
# is black and white: it has no colour to give.
LEAST_CHROMA = 1.0
# conv3_3 after its ReLU in torchvision's vgg16().features: two poolings, a quarter of the size
FEATURE_LAYERS = 16
CELL = 4
# Frame positions matched at a time: bounds the similarity matrix (rows x reference positions).
ROWS_PER_STEP = 2048


ANY_TIME = "*"  # the timecode of a reference that any shot may take


@dataclass
class _Reference:
    start: float | None  # seconds from the film's start; None: any shot, the nearest by global features
    path: str
    features: torch.Tensor  # (C, Q) normalized
    patches: torch.Tensor  # (Q, 2 * CELL * CELL): the reference's a*b*, one 4x4 patch per position
    global_vector: torch.Tensor  # (C_global,)
    look_gain: float  # the look: g * predicted a*b* + offset, fitted on the reference (see the module's docstring)
    look_offset: torch.Tensor  # (2,) Lab units


class ReferenceColorizer:
    """Blends reference colours into predicted a*b*, frame by frame.

    references: (start seconds or None for any shot, RGB image (H, W, 3) uint8/uint16, name) in any order.
    start_time: the film's start time in seconds (frame times count from it).
    """

    def __init__(self, colorizer, references: Sequence[tuple[float, np.ndarray, str]], all_shots: bool = False,
                 start_time: float = 0.0, temperature: float = TEMPERATURE,
                 match_floor: float = MATCH_FLOOR, match_full: float = MATCH_FULL,
                 shot_floor: float = SHOT_FLOOR, shot_full: float = SHOT_FULL):
        self.colorizer = colorizer
        self.all_shots = all_shots
        self.start_time = float(start_time)
        self.temperature = temperature
        self.match_floor, self.match_full = match_floor, match_full
        self.shot_floor, self.shot_full = shot_floor, shot_full
        analyzed = [self._analyze(start, image, name) for start, image, name in references]
        # the timed references in time order (``active`` bisects their starts), then the untimed ones
        self.references = sorted((reference for reference in analyzed if reference.start is not None),
                                 key=lambda reference: reference.start)
        self._starts = [reference.start for reference in self.references]
        self.references += [reference for reference in analyzed if reference.start is None]

    @classmethod
    def from_images(cls, colorizer, images: Sequence[tuple[float, np.ndarray]], **settings) -> ReferenceColorizer:
        return cls(colorizer, [(start, image, f"reference {number}") for number, (start, image) in enumerate(images)],
                   **settings)

    # ------------------------------------------------------------ analysis
    def _features(self, small_lightness: torch.Tensor) -> torch.Tensor:
        return dense_features(self.colorizer, small_lightness)

    @torch.no_grad()
    def _analyze(self, start: float | None, image: np.ndarray, name: str) -> _Reference:
        prepared = self.colorizer.prepare([image])
        small_lightness = prepared.small_lightness
        rgb, _ = self.colorizer.to_tensor([image])
        rgb = F.interpolate(rgb, size=small_lightness.shape[-2:], mode="area")
        ab = rgb_to_lab(rgb)[:, 1:]
        require_colour(image, name)
        features = self._features(small_lightness)[0].flatten(1)
        patches = cell_patches(ab[0])
        global_vector = self.colorizer.global_vectors(small_lightness, [True])[0].float()
        predicted = self.colorizer.predict(small_lightness, global_vectors=global_vector[None])
        gain, offset = fit_look(predicted[0], ab[0])
        return _Reference(None if start is None else float(start), name, features, patches, global_vector,
                          gain, offset)

    def active(self, seconds: float | None) -> int | None:
        """Index of the timed reference that applies at this time (the last one started), None before the first."""
        if not self._starts:
            return None
        if seconds is None:
            return 0
        index = bisect.bisect_right(self._starts, seconds + 1e-9) - 1
        return index if index >= 0 else None

    def similarity(self, global_vector: torch.Tensor, reference: _Reference) -> float:
        return float(F.cosine_similarity(global_vector.float(), reference.global_vector, dim=0))

    def choose(self, seconds: float | None, global_vector: torch.Tensor) -> int | None:
        """The reference a frame takes: of the timed one in force and the untimed ones, the nearest in global features."""
        timed = self.active(seconds)
        candidates = ([] if timed is None else [timed]) + list(range(len(self._starts), len(self.references)))
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return max(candidates, key=lambda index: self.similarity(global_vector, self.references[index]))

    def shot_weight(self, global_vector: torch.Tensor, reference: _Reference) -> float:
        if self.all_shots:
            return 1.0
        similarity = self.similarity(global_vector, reference)
        return min(1.0, max(0.0, (similarity - self.shot_floor) / (self.shot_full - self.shot_floor)))

    # ------------------------------------------------------------ blending
    @torch.no_grad()
    def apply(self, frames: Sequence, small_lightness: torch.Tensor, ab: torch.Tensor,
              global_vectors: torch.Tensor) -> torch.Tensor:
        """Predicted a*b* (N, 2, h, w) -> a*b* with the active reference's look and colours blended in."""
        out = ab.clone()
        rows, actives, weights = [], [], []
        for index, frame in enumerate(frames):
            time = getattr(frame, "time", None)
            active = self.choose(None if time is None else float(time) - self.start_time, global_vectors[index])
            if active is None:
                continue
            reference = self.references[active]
            out[index] = ab[index] * reference.look_gain + reference.look_offset.view(2, 1, 1)
            weight = self.shot_weight(global_vectors[index], reference)
            if weight > 0:
                rows.append(index)
                actives.append(active)
                weights.append(weight)
        if rows:
            # the conv3_3 pass and the match cost about as much as the head: split across the cores like it
            out[rows] = self.colorizer.in_parts(self._warp_in, small_lightness[rows], out[rows],
                                                torch.tensor(actives), torch.tensor(weights))
        return out

    @torch.no_grad()
    def _warp_in(self, small_lightness: torch.Tensor, ab: torch.Tensor, actives: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
        """Frames' L and a*b* -> a*b* with each frame's reference warped in, by its weight times the match confidence."""
        features = self._features(small_lightness)
        blended = ab.clone()
        for row in range(ab.shape[0]):
            warped, confidence = self._warp(features[row], self.references[int(actives[row])], ab.shape[-2:])
            blended[row] += float(weights[row]) * confidence * (warped - ab[row])
        return blended

    def _warp(self, features: torch.Tensor, reference: _Reference, size) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame's features (C, h/4, w/4) -> the reference's a*b* warped (2, h, w) and the match confidence (1, h, w)."""
        return warp_cells(features, reference.features, reference.patches, size, self.temperature,
                          self.match_floor, self.match_full)


@torch.no_grad()
def dense_features(colorizer, small_lightness: torch.Tensor) -> torch.Tensor:
    """L at the render size (N, 1, h, w) -> normalized conv3_3 features of the shipped VGG16 (N, C, h/4, w/4), float32."""
    backbone = colorizer.global_features
    gray = (small_lightness.float() / 100.0).expand(-1, 3, -1, -1)
    with colorizer.autocast():
        features = backbone.features[:FEATURE_LAYERS](
            ((gray - backbone.mean) / backbone.std).contiguous(memory_format=torch.channels_last))
    return F.normalize(features.float(), dim=1)


def cell_patches(values: torch.Tensor) -> torch.Tensor:
    """A picture's values (C, h, w) -> one CELL x CELL patch per feature position (Q, C * CELL * CELL)."""
    return F.unfold(values[None], kernel_size=CELL, stride=CELL)[0].T.contiguous()


def warp_cells(features: torch.Tensor, reference_features: torch.Tensor, patches: torch.Tensor, size,
               temperature: float = TEMPERATURE, match_floor: float = MATCH_FLOOR,
               match_full: float = MATCH_FULL) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame's features (C, h/4, w/4) matched to a picture's (C, Q): that picture's ``patches`` (Q, K * CELL * CELL)
    warped to the frame (K, h, w), and the match confidence (1, h, w), 0 below ``match_floor``, 1 above ``match_full``."""
    grid = features.shape[-2:]
    queries = features.flatten(1).T  # (P, C)
    warped_patches, best = [], []
    for start in range(0, queries.shape[0], ROWS_PER_STEP):
        similarity = queries[start:start + ROWS_PER_STEP] @ reference_features  # (rows, Q)
        best.append(similarity.max(dim=1).values)
        attention = torch.softmax(similarity / temperature, dim=1)
        warped_patches.append(attention @ patches)
    patches = torch.cat(warped_patches).T.unsqueeze(0)  # (1, K * CELL * CELL, P)
    warped = F.fold(patches, output_size=(grid[0] * CELL, grid[1] * CELL), kernel_size=CELL, stride=CELL)[0]
    confidence = ((torch.cat(best) - match_floor) / (match_full - match_floor)).clamp(0, 1)
    confidence = F.interpolate(confidence.view(1, 1, *grid), size=tuple(size), mode="bilinear", align_corners=False)[0]
    if warped.shape[-2:] != tuple(size):
        warped = F.interpolate(warped[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    return warped, confidence


def fit_look(predicted: torch.Tensor, true: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The network's a*b* and the true a*b* of one picture (2, h, w) -> (gain, offset (2,)).

    Least squares of ``true ~ gain * predicted + offset`` with one gain for both
    channels (a 2x2 matrix fitted on one picture swings wildly from film to
    film), the gain held to 0..LOOK_GAIN_MAX.
    """
    predicted, true = predicted.flatten(1).double(), true.flatten(1).double()
    predicted_mean, true_mean = predicted.mean(1, keepdim=True), true.mean(1, keepdim=True)
    spread = float(((predicted - predicted_mean) ** 2).sum())
    covariance = float(((predicted - predicted_mean) * (true - true_mean)).sum())
    gain = min(LOOK_GAIN_MAX, max(0.0, covariance / spread)) if spread > 0 else 0.0
    offset = (true_mean - gain * predicted_mean)[:, 0].float()
    return gain, offset


# ---------------------------------------------------------------- files


def parse_timecode(text: str) -> float:
    """``12.5``, ``01:02.5`` or ``1:00:02`` -> seconds; ValueError if it is none of these."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or any(not part for part in parts):
        raise ValueError(text)
    seconds = 0.0
    for part in parts[:-1]:
        if not part.isdigit():
            raise ValueError(text)
        seconds = seconds * 60 + int(part)
    last = float(parts[-1])
    if not math.isfinite(last) or last < 0 or (len(parts) > 1 and last >= 60):
        raise ValueError(text)
    return seconds * 60 + last if len(parts) > 1 else last


def read_references_file(path: str | Path) -> list[tuple[float | None, Path]]:
    """Lines ``timecode image`` (blank lines and ``#`` comments ignored) -> (seconds, image path), by time.

    A ``*`` timecode gives None: a reference any shot may take (they come last).

    Relative image paths are taken from the file's folder. Any problem raises
    ``InputError`` naming the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the references file ({getattr(error, 'strerror', None) or error})") from None
    entries: list[tuple[float | None, Path]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 1)
        if len(fields) != 2:
            raise InputError(f"{path}:{number}: expected 'timecode image', got {line!r}")
        try:
            seconds = None if fields[0] == ANY_TIME else parse_timecode(fields[0])
        except ValueError:
            raise InputError(f"{path}:{number}: {fields[0]!r} is not a timecode (seconds, MM:SS or HH:MM:SS, "
                             f"or {ANY_TIME} for any shot)") from None
        image = Path(fields[1]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            raise InputError(f"{path}:{number}: {image}: no such image")
        if seconds is not None and any(seconds == earlier for earlier, _ in entries):
            raise InputError(f"{path}:{number}: a second reference at {fields[0]}")
        entries.append((seconds, image))
    if not entries:
        raise InputError(f"{path}: no references in the file (lines of 'timecode image')")
    return sorted(entries, key=lambda entry: math.inf if entry[0] is None else entry[0])


def require_colour(rgb: np.ndarray, name: str) -> None:
    """InputError naming the reference when it is black and white: it has no colour to give."""
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    sample = torch.from_numpy(np.ascontiguousarray(rgb[::4, ::4, :3])).permute(2, 0, 1)[None].float() / scale
    if float(rgb_to_lab(sample)[:, 1:].norm(dim=1).mean()) < LEAST_CHROMA:
        raise InputError(f"{name}: the reference is black and white; it has no colour to give")


def read_reference_image(path: str | Path) -> np.ndarray:
    """The first picture of an image (or video) file as RGB; InputError naming the file if it cannot be
    read or holds no colour."""
    from ..media.video import VideoReader

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such reference image")
    try:
        picture = None
        with VideoReader(path) as reader:
            for picture in reader.frames():
                break
    except InputError as error:
        raise InputError(f"reference {error}") from None
    if picture is None:
        raise InputError(f"{path}: the reference holds no picture")
    require_colour(picture.rgb, str(path))
    return picture.rgb


def reference_images(reference: str | Path | None, references: str | Path | None) -> list[tuple[float | None, Path]]:
    """(start seconds, path) of the references asked for; checks the files but reads no picture."""
    if reference is not None and references is not None:
        raise InputError("give --reference or --references, not both")
    if references is not None:
        return read_references_file(references)
    if reference is not None:
        if not Path(reference).is_file():
            raise InputError(f"{reference}: no such reference image")
        return [(0.0, Path(reference))]
    return []


def load_references(colorizer, reference=None, references=None, all_shots: bool = False,
                    start_time: float = 0.0) -> ReferenceColorizer | None:
    """A ReferenceColorizer for ``--reference IMAGE`` / ``--references FILE``, or None when neither is given."""
    entries = reference_images(reference, references)
    if not entries:
        return None
    images = [(start, read_reference_image(image), str(image)) for start, image in entries]
    return ReferenceColorizer(colorizer, images, all_shots=all_shots, start_time=start_time)
