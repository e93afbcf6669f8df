"""Colour hints: strokes of colour on a frame that correct the network where it is wrong.

A hint image is an RGBA picture (a PNG with alpha) of the frame's shape: its
opaque pixels carry a colour, of which only the a*b* is used (the film's own L
stays). Within the hinted frame, at the render size:

1. the correction ``hint a*b* - network a*b*`` is known where the strokes are
   (weighted by their alpha, area-averaged to the render size);
2. it spreads edge-aware on L by Levin, Lischinski and Weiss 2004's
   optimisation (``spread``): neighbours of like lightness take like
   corrections, a strong luminance edge cuts the tie, and a weak pull towards
   zero fades the correction where no stroke reaches. Inside a stroke's region
   that is the stroke's full correction however far the region goes; across a
   strong edge the network's colour stays. Where the strokes agree with the
   network the correction is zero and nothing changes.

Through the shot: the hinted frame is found before the film is decoded (a scan
of its start with the pipeline's scene-cut detector, which also gives the
hinted frame's shot, forwards and backwards). Every other frame of that shot
gets the strokes themselves, carried by the reference matcher's dense VGG16
conv3_3 features (``reference.warp_cells``: the hinted frame's stroke colours
and weights are warped to the frame 4x4 pixels at a time, weighted by the
match's confidence), and the same solve spreads them on that frame's own L. So
the hint's colour lands on the same things as they move and stops at their
edges in every frame; the strokes, not the network's colours of the hinted
frame, are what is carried. (Carrying the hinted frame's spread correction
instead, warped 4x4 cells and all, gave carphone +1.77 dB with 20 patches;
the strokes re-solved give +2.74.) That solve starts from the carried
correction, so a fifth of the steps do. Frames of other shots are untouched. Frame
positions count from the film's first frame, so a segment decoded from a seek
gets the same colours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..model.color import rgb_to_lab
from .reference import cell_patches, dense_features, read_references_file, warp_cells
from .temporal import SceneCutDetector

# The spread (Levin et al.'s optimisation on L at the render size, L in 0..100; see ``spread``): the L step between
# neighbours at which their tie has fallen to exp(-1/2), and the pull towards no correction where no stroke reaches.
# Chosen on 40 BSDS500 validation photos with 20 patches (PSNR gain over automatic): range 4, anchor 1e-5: +2.56 dB
# (the domain transform's normalized spread it replaced: +1.52; a guided filter of radius 80: +1.64); range 2: +2.51,
# range 8: +2.49; anchor 1e-4: +2.52, 1e-6: +2.56. The same solve at full size did worse (+1.99 in 300 iterations).
RANGE_SIGMA = 4.0
ANCHOR = 1e-5
# Conjugate-gradient iterations from zero, same photos (192 x 128 renders): 100 +2.24 dB, 200 +2.55, 300 +2.58,
# 500 +2.59. A correction needs more steps to cross a larger render, so the count grows with its long side.
SOLVER_ITERATIONS = 300
SOLVER_SIDE = 192
# Carried frames start their solve from the hinted frame's correction, warped: carphone, 20 patches, +2.66 dB in 50
# iterations, +2.77 in 100 (from zero: +2.60 in 100, +2.74 in 300). Per SOLVER_SIDE pixels of the long side.
CARRY_ITERATIONS = 30
# A stroke pixel is opaque from this alpha on (0..1); a hint image with none is empty.
OPAQUE = 0.5
# A hint image's aspect ratio may differ from the frame's by this fraction (rounding of scaled sizes).
ASPECT_TOLERANCE = 0.02


@dataclass
class Hint:
    """One hint image: where it applies (seconds from the film's start, or a frame position) and its strokes."""

    rgba: np.ndarray  # (H, W, 4) uint8 or uint16
    seconds: float | None = None
    index: int | None = None  # the hinted frame's position in the film; found from ``seconds`` by the scan
    name: str = "hint"


# ---------------------------------------------------------------- files


def read_hint_image(path: str | Path) -> np.ndarray:
    """An RGBA hint image (uint8 or uint16, (H, W, 4)); InputError naming the file when it is unusable."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such hint image")
    try:
        with Image.open(path) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                image.mode == "P" and "transparency" in image.info)
            if not has_alpha:
                raise InputError(f"{path}: the hint image has no alpha channel (draw the strokes on a "
                                 f"transparent background and save it as PNG)")
            rgba = np.asarray(image.convert("RGBA"))
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: cannot read the hint image ({error})") from None
    if not (rgba[..., 3] >= OPAQUE * 255).any():
        raise InputError(f"{path}: the hint image is empty (no opaque pixel)")
    return rgba


def hint_entries(hint: str | Path | None = None, hints: str | Path | None = None) -> list[tuple[float, Path]]:
    """(seconds, image path) of ``--hint IMAGE`` (time 0) or ``--hints FILE`` (``timecode image`` lines)."""
    if hint is not None and hints is not None:
        raise InputError("give --hint or --hints, not both")
    if hints is not None:
        entries = read_references_file(hints)
        for seconds, image in entries:
            if seconds is None:
                raise InputError(f"{hints}: {image}: a hint belongs to one frame: give its timecode, not *")
        return entries
    if hint is not None:
        return [(0.0, Path(hint))]
    return []


def check_hints(entries: Sequence[tuple[float, Path]], width: int, height: int,
                duration: float | None) -> list[Hint]:
    """Read and check the hint images against the film (shape, end); one-line InputError naming the file."""
    checked = []
    for seconds, path in entries:
        rgba = read_hint_image(path)
        ratio, frame_ratio = rgba.shape[1] / rgba.shape[0], width / height
        if abs(ratio / frame_ratio - 1) > ASPECT_TOLERANCE:
            raise InputError(f"{path}: the hint image is {rgba.shape[1]}x{rgba.shape[0]}, the film "
                             f"{width}x{height}: another shape (it must be the frame's size, or scaled from it)")
        if duration is not None and seconds >= duration:
            raise InputError(f"{path}: the hint's timecode {seconds:g} s is past the film's end ({duration:.3f} s)")
        checked.append(Hint(rgba, seconds=float(seconds), name=str(path)))
    return checked


def load_hints(source: str | Path, hint=None, hints=None) -> list[Hint]:
    """The hints asked for, checked against the film at ``source`` (opened, nothing decoded)."""
    entries = hint_entries(hint, hints)
    if not entries:
        return []
    if str(source) == "-":
        raise InputError("hints need the film as a file (its hinted frames are found before it is colorized), not stdin")
    from ..media.video import VideoReader

    with VideoReader(source) as reader:
        duration = None if reader.is_image else reader.duration
        return check_hints(entries, reader.width, reader.height, None if duration is None else float(duration))


# ---------------------------------------------------------------- within a frame


def hint_chroma(rgba: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """An RGBA hint (H, W, 4) -> its a*b* (2, h, w) and stroke weight (1, h, w) in 0..1, area-averaged to ``size``."""
    scale = 65535.0 if rgba.dtype == np.uint16 else 255.0
    picture = torch.from_numpy(np.ascontiguousarray(rgba).astype(np.float32) / scale).permute(2, 0, 1)
    alpha = picture[3:]
    alpha = torch.where(alpha >= 1.0 / scale, alpha, torch.zeros_like(alpha))
    ab = rgb_to_lab(picture[None, :3])[0, 1:]
    weighted = torch.cat([ab * alpha, alpha])[None]
    if tuple(weighted.shape[-2:]) != tuple(size):
        weighted = F.interpolate(weighted, size=tuple(size), mode="area")
    weight = weighted[0, 2:]
    return weighted[0, :2] / weight.clamp(min=1e-6), weight


def _edge_weights(lightness: torch.Tensor, range_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """L (1, h, w) -> how strongly each pixel is tied to its right and lower neighbour (0..1, ~0 across an edge)."""
    across = torch.exp(-0.5 * ((lightness[..., :, 1:] - lightness[..., :, :-1]) / range_sigma) ** 2)
    down = torch.exp(-0.5 * ((lightness[..., 1:, :] - lightness[..., :-1, :]) / range_sigma) ** 2)
    return across, down


def _smoothness(values: torch.Tensor, across: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """The weighted graph Laplacian of the 4-neighbour grid applied to values (K, h, w)."""
    out = torch.zeros_like(values)
    step = across * (values[..., :, 1:] - values[..., :, :-1])
    out[..., :, 1:] += step
    out[..., :, :-1] -= step
    step = down * (values[..., 1:, :] - values[..., :-1, :])
    out[..., 1:, :] += step
    out[..., :-1, :] -= step
    return out


def spread(target: torch.Tensor, weight: torch.Tensor, lightness: torch.Tensor, range_sigma: float = RANGE_SIGMA,
           anchor: float = ANCHOR, iterations: int | None = None, initial: torch.Tensor | None = None) -> torch.Tensor:
    """Values known where ``weight`` > 0 (target (K, h, w), weight (1, h, w)) spread edge-aware on L (1, h, w).

    Levin, Lischinski and Weiss 2004's optimisation, solved for the values x:
    ``sum_p weight_p (x_p - target_p)^2 + sum_{p~q} a_pq (x_p - x_q)^2 + anchor sum_p x_p^2``
    with ``a_pq = exp(-(L_p - L_q)^2 / 2 range_sigma^2)`` between 4-neighbours:
    neighbours of like L take like values, a strong L edge (a near 0) cuts the
    tie, and the small anchor pulls what no stroke reaches back to zero. The
    linear system is solved by conjugate gradients with a Jacobi preconditioner,
    a fixed number of iterations from zero (deterministic, and nothing starts
    on the wrong side of an edge); None: SOLVER_ITERATIONS per SOLVER_SIDE
    pixels of the long side.
    """
    if iterations is None:
        iterations = math.ceil(SOLVER_ITERATIONS * max(1.0, max(lightness.shape[-2:]) / SOLVER_SIDE))
    # thousands of small steps: split across threads they wait on each other (a 192 x 128 solve on a busy
    # 2-core machine took 3.5 s in one thread, 45-53 s in two)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _solve(target, weight, lightness, range_sigma, anchor, iterations, initial)
    finally:
        torch.set_num_threads(threads)


def carry_iterations(size) -> int:
    """Solver steps for a carried frame of render size (h, w)."""
    return math.ceil(CARRY_ITERATIONS * max(1.0, max(size) / SOLVER_SIDE))


def _solve(target: torch.Tensor, weight: torch.Tensor, lightness: torch.Tensor, range_sigma: float, anchor: float,
           iterations: int, initial: torch.Tensor | None = None) -> torch.Tensor:
    target, weight, lightness = target.float(), weight.float(), lightness.float()
    across, down = _edge_weights(lightness, range_sigma)
    degree = torch.zeros_like(lightness)
    degree[..., :, 1:] += across
    degree[..., :, :-1] += across
    degree[..., 1:, :] += down
    degree[..., :-1, :] += down
    diagonal = weight + anchor + degree

    def system(values):
        return (weight + anchor) * values + _smoothness(values, across, down)

    def dot(first, second):
        return (first * second).sum(dim=(-2, -1), keepdim=True)

    values = torch.zeros_like(target) if initial is None else initial.float().clone()
    residual = weight * target if initial is None else weight * target - system(values)
    preconditioned = residual / diagonal
    direction = preconditioned.clone()
    product = dot(residual, preconditioned)
    for _ in range(iterations):
        if not bool((product > 1e-12).any()):
            break
        image = system(direction)
        step = product / dot(direction, image).clamp(min=1e-20)
        values += step * direction
        residual -= step * image
        preconditioned = residual / diagonal
        next_product = dot(residual, preconditioned)
        direction = preconditioned + next_product / product.clamp(min=1e-20) * direction
        product = next_product
    return values


def spread_correction(lightness: torch.Tensor, ab: torch.Tensor, hint_ab: torch.Tensor, weight: torch.Tensor,
                      range_sigma: float = RANGE_SIGMA, anchor: float = ANCHOR) -> torch.Tensor:
    """One frame at the render size: L (1, h, w), network a*b* (2, h, w), the hint's a*b* and weight -> the correction
    (2, h, w) to add to the network's a*b*: the strokes' correction spread edge-aware on L (module docstring)."""
    weight = weight.float()
    if not bool((weight > 0).any()):
        return torch.zeros_like(ab)
    return spread(hint_ab.float() - ab.float(), weight, lightness, range_sigma, anchor)


def apply_still_hints(small_lightness: torch.Tensor, ab: torch.Tensor, hints: Sequence[np.ndarray | None]) -> torch.Tensor:
    """Photos: a*b* (N, 2, h, w) with each one's hint image (RGBA, or None) spread in."""
    out = ab.clone()
    for index, rgba in enumerate(hints):
        if rgba is None:
            continue
        hint_ab, weight = hint_chroma(np.asarray(rgba), ab.shape[-2:])
        out[index] = ab[index] + spread_correction(small_lightness[index].cpu(), ab[index].cpu(), hint_ab,
                                                   weight).to(ab.device)
    return out


# ---------------------------------------------------------------- through the shot


@dataclass
class _HintedFrame:
    hint: Hint
    index: int  # the hinted frame's position in the film
    shot: tuple[int, int]  # positions [first, stop) of its shot
    small_lightness: torch.Tensor  # (1, h, w)
    hint_ab: torch.Tensor  # (2, h, w)
    weight: torch.Tensor  # (1, h, w)
    features: torch.Tensor | None = None  # (C, Q) conv3_3 of the hinted frame
    # (Q, 5 * 16), one 4x4 patch per feature position: its strokes' a*b* times their weight, the weight, and
    # the correction they spread to in this frame (where the solve in the other frames starts from)
    patches: torch.Tensor | None = None


def scan_shots(colorizer, frames: Iterable, hints: Sequence[Hint], start_time: float = 0.0) -> list[tuple]:
    """Find each hint's frame and shot in ``frames`` (``VideoFrame`` in film order, RGB or planes).

    A hint given in seconds takes the frame shown at that time (the last one
    starting at or before it). The shot's cuts are those of the pipeline's
    scene-cut detector on the same thumbnails. Decoding stops at the first cut
    after the last hinted frame. Returns (hint, index, (first, stop), small L).
    """
    detector = SceneCutDetector()
    order = sorted(range(len(hints)), key=lambda i: (hints[i].index if hints[i].index is not None else -1,
                                                    hints[i].seconds or 0.0))
    found: dict[int, list] = {}
    open_shots: list[list] = []
    shot_start = 0
    previous = None  # (index, shot start, small L) of the frame before
    for frame in frames:
        small = colorizer.prepare([frame.picture]).small_lightness[0].cpu()
        cut = detector.update(detector.thumbnail(small))
        index = frame.index
        seconds = None if frame.time is None else float(frame.time) - start_time
        # a hint given in seconds belongs to the last frame that starts at or before its time
        while order and hints[order[0]].index is None and seconds is not None and previous is not None \
                and seconds > hints[order[0]].seconds + 1e-6:
            number = order.pop(0)
            found[number] = record = [hints[number], previous[0], (previous[1], None), previous[2]]
            open_shots.append(record)
        if cut:
            for record in open_shots:
                record[2] = (record[2][0], index)
            open_shots = []
            shot_start = index
            if not order:
                break
        while order and (hints[order[0]].index is not None and index >= hints[order[0]].index
                         or hints[order[0]].index is None and previous is None and seconds is not None
                         and seconds > hints[order[0]].seconds + 1e-6):
            number = order.pop(0)
            found[number] = record = [hints[number], index, (shot_start, None), small]
            open_shots.append(record)
        previous = (index, shot_start, small)
    for number in order:  # hints at or after the last frame: the last frame
        if previous is None:
            raise InputError(f"{hints[number].name}: the film holds no frame to hint")
        found[number] = record = [hints[number], previous[0], (previous[1], None), previous[2]]
        open_shots.append(record)
    for record in open_shots:
        record[2] = (record[2][0], math.inf)
    return [tuple(found[number]) for number in range(len(hints))]


class HintColorizer:
    """Adds hint corrections to predicted a*b*, frame by frame (see the module's docstring).

    scanned: ``scan_shots``'s records. Frames are known by ``frame.index`` (their position in the film).
    """

    def __init__(self, colorizer, scanned: Sequence[tuple], range_sigma: float = RANGE_SIGMA,
                 anchor: float = ANCHOR):
        self.colorizer = colorizer
        self.range_sigma, self.anchor = range_sigma, anchor
        self.hinted: list[_HintedFrame] = []
        for hint, index, shot, small in scanned:
            hint_ab, weight = hint_chroma(hint.rgba, small.shape[-2:])
            self.hinted.append(_HintedFrame(hint, index, shot, small, hint_ab, weight))
        self._analyze()

    @classmethod
    def from_frames(cls, colorizer, frames: Iterable, hints: Sequence[Hint], start_time: float = 0.0,
                    **settings) -> HintColorizer:
        return cls(colorizer, scan_shots(colorizer, frames, hints, start_time), **settings)

    @torch.no_grad()
    def _analyze(self) -> None:
        """Each hinted frame's dense features and, cut in cells, its strokes and their correction: what the other
        frames of its shot match against and take."""
        for hinted in self.hinted:
            small = hinted.small_lightness[None].to(self.colorizer.device)
            vector = self.colorizer.global_vectors(small, [True])
            ab = self.colorizer.predict(small, global_vectors=vector)[0].cpu()
            correction = self._spread(hinted, hinted.small_lightness, ab)
            hinted.features = dense_features(self.colorizer, small)[0].flatten(1).cpu()
            hinted.patches = cell_patches(torch.cat([hinted.hint_ab * hinted.weight, hinted.weight, correction]))

    def _spread(self, hinted: _HintedFrame, lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return spread_correction(lightness, ab, hinted.hint_ab, hinted.weight, self.range_sigma, self.anchor)

    def active(self, index: int) -> list[_HintedFrame]:
        return [hinted for hinted in self.hinted if hinted.shot[0] <= index < hinted.shot[1]]

    @torch.no_grad()
    def apply(self, frames: Sequence, small_lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Predicted a*b* (N, 2, h, w) of ``frames`` -> with the corrections of the hints of their shots added."""
        out = ab.clone()
        carried = []  # rows whose correction is carried from a hinted frame by the feature match
        for row, frame in enumerate(frames):
            index = getattr(frame, "index", None)
            hinted_here = [] if index is None else self.active(index)
            exact = [hinted for hinted in hinted_here if hinted.index == index]
            if exact:
                correction = self._spread(exact[0], small_lightness[row].cpu(), ab[row].cpu())
                out[row] = ab[row] + correction.to(ab.device)
            elif hinted_here:
                carried.append(row)
        if carried:
            # the conv3_3 pass, the match and the solve cost more than the head: split across the cores like it
            indices = torch.tensor([frames[row].index for row in carried])
            out[carried] = ab[carried] + self.colorizer.in_parts(self._carry, small_lightness[carried], ab[carried],
                                                                 indices)
        return out

    @torch.no_grad()
    def _carry(self, small_lightness: torch.Tensor, ab: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Frames' L (n, 1, h, w), network a*b* (n, 2, h, w) and positions -> the corrections (n, 2, h, w) of their
        shots' hints: each hint's strokes warped to the frame by the feature match, then spread on its L, the
        solve starting from the hinted frame's correction warped the same way (so a few steps do)."""
        size = small_lightness.shape[-2:]
        features = dense_features(self.colorizer, small_lightness).cpu()
        corrections = torch.zeros(small_lightness.shape[0], 2, *size)
        for row in range(small_lightness.shape[0]):
            carried = torch.zeros(5, *size)  # strokes' a*b* x weight, weight, correction; all x match confidence
            for hinted in self.active(int(indices[row])):
                warped, confidence = warp_cells(features[row], hinted.features, hinted.patches, size)
                carried += warped * confidence
            weight = carried[2:3]
            if bool((weight > 0).any()):
                target = carried[:2] / weight.clamp(min=1e-6) - ab[row].cpu()
                corrections[row] = spread(target, weight, small_lightness[row].cpu(), self.range_sigma, self.anchor,
                                          iterations=carry_iterations(size), initial=carried[3:])
        return corrections.to(small_lightness.device)


def film_hints(colorizer, source: str | Path, hint=None, hints=None, start_time: float = 0.0) -> HintColorizer | None:
    """A HintColorizer for ``--hint IMAGE`` / ``--hints FILE`` on the film at ``source``; None when neither is given.

    The film is opened a second time and decoded from its start to the end of the last hinted shot.
    """
    checked = load_hints(source, hint, hints)
    if not checked:
        return None
    from ..media.video import VideoReader

    with VideoReader(source) as reader:
        return HintColorizer.from_frames(colorizer, reader.frames(), checked, start_time)


def hint_identity(hint=None, hints=None) -> list:
    """What the colours of a hinted run depend on: each hint image's content and time (for the resume key)."""
    import hashlib

    return [[seconds, str(path), hashlib.sha256(Path(path).read_bytes()).hexdigest()]
            for seconds, path in hint_entries(hint, hints)]
