"""Scene cuts: where a film changes shot, found from the lightness channel alone.

Smoothing, face tracks and hints reset at a cut, so that no colour of one shot
is carried into the next.

Tensor conventions: ``L`` is ``1 x h x w`` Lab lightness, 0..100 (``h x w`` is
accepted); work happens on the device of the inputs, in float32.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F


def as_frame(x: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    """Return ``x`` as a ``channels x h x w`` tensor (accepting ``h x w`` for L)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 2 and channels == 1:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] != channels:
        raise ValueError(
            f"{name} must have shape {channels} x h x w, got {tuple(x.shape)}"
        )
    return x


class SceneCutDetector:
    """Hard-cut detector working on the lightness channel only.

    The per-pair *score* (:meth:`score`, a pure function of two frames) adds two
    cues computed on a small thumbnail (short side ``thumb`` pixels):

    * **structure**: mean absolute difference of the thumbnails after each is
      normalised to zero mean / unit contrast. The normalisation makes fades
      (L scaled or offset globally) nearly free. Each pixel is matched to the
      best pixel within ``search`` thumbnail pixels in the other frame (both
      directions, averaged), so pans and moving objects up to about
      ``search * (render_short_side / thumb)`` render pixels per frame cost
      little, while unrelated content still differs everywhere. Contrast is
      floored at ``contrast_floor`` L units (so noise in a near-black frame is
      not blown up) and the term is scaled down by ``max(std) / contrast_ref``
      when both frames are nearly flat: a fade from black "reveals" structure
      that is not a cut.
    * **brightness**: jump of mean lightness divided by ``brightness_scale``.
      It catches cuts between two flat / similar-looking frames that the
      normalised structure term cannot see, and a fade moves the mean only a
      little per frame.

    The decision (:meth:`is_cut`) is adaptive: a pair is a cut when its score is
    above ``threshold`` *and* ``ratio`` times the median score of the last
    ``history`` pairs (so fast motion, whose scores are all high, does not fire
    every frame), or unconditionally above
    ``hard_threshold``. :meth:`update` keeps that history for streaming use;
    :meth:`detect` runs over a whole clip.
    """

    def __init__(
        self,
        thumb: int = 32,
        search: int = 2,
        contrast_floor: float = 3.0,
        contrast_ref: float = 6.0,
        brightness_scale: float = 25.0,
        threshold: float = 0.35,
        ratio: float = 3.0,
        hard_threshold: float = 0.9,
        history: int = 12,
    ) -> None:
        if thumb < 4 or search < 0 or history < 1:
            raise ValueError("thumb >= 4, search >= 0 and history >= 1 required")
        self.thumb = thumb
        self.search = search
        self.contrast_floor = contrast_floor
        self.contrast_ref = contrast_ref
        self.brightness_scale = brightness_scale
        self.threshold = threshold
        self.ratio = ratio
        self.hard_threshold = hard_threshold
        self.history = history
        self.reset()

    # -- pure parts --------------------------------------------------------

    def thumbnail(self, L: torch.Tensor) -> torch.Tensor:
        """``1 x h x w`` lightness -> ``1 x th x tw`` float32 area-averaged thumbnail."""
        L = as_frame(L, 1, "L").float()
        h, w = L.shape[-2:]
        s = self.thumb / min(h, w)
        if s >= 1:
            return L
        size = (max(1, round(h * s)), max(1, round(w * s)))
        # adaptive average pooling is an area filter: averages away grain
        # and compression noise, which would otherwise look like change.
        return F.adaptive_avg_pool2d(L.unsqueeze(0), size)[0]

    def _matched_diff(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Mean over pixels of a of min_{|d|<=search} |a(p) - b(p+d)|; inputs 1 x th x tw."""
        r = self.search
        if r == 0:
            return (a - b).abs().mean()
        k = 2 * r + 1
        bp = F.pad(b.unsqueeze(0), (r, r, r, r), mode="replicate")
        # all (2r+1)^2 shifted copies of b at once: 1 x k*k x th*tw
        shifted = F.unfold(bp, kernel_size=k)
        return (shifted - a.reshape(1, 1, -1)).abs().amin(dim=1).mean()

    def score(self, L_prev: torch.Tensor, L_cur: torch.Tensor) -> float:
        """Dissimilarity of two consecutive ``1 x h x w`` frames (0 = identical;
        unrelated textured shots score around 1 or more)."""
        a = self.thumbnail(L_prev)
        b = self.thumbnail(L_cur)
        if a.shape != b.shape:  # resolution changed: certainly a new shot
            return math.inf
        ma, mb = a.mean(), b.mean()
        sa, sb = a.std(unbiased=False), b.std(unbiased=False)
        za = (a - ma) / sa.clamp_min(self.contrast_floor)
        zb = (b - mb) / sb.clamp_min(self.contrast_floor)
        structure = 0.5 * (self._matched_diff(za, zb) + self._matched_diff(zb, za))
        structure = structure * (torch.maximum(sa, sb) / self.contrast_ref).clamp(max=1.0)
        brightness = (ma - mb).abs() / self.brightness_scale
        return float(structure + brightness)

    def is_cut(self, score: float, recent: Sequence[float] = ()) -> bool:
        """Decision for one score given the recent scores of the same shot."""
        if score >= self.hard_threshold:
            return True
        if score < self.threshold:
            return False
        if not recent:
            return True
        med = sorted(recent)[len(recent) // 2]
        return score >= self.ratio * med

    # -- streaming ---------------------------------------------------------

    def reset(self) -> None:
        """Forget the previous frame and the score history (start of a stream)."""
        self._prev: torch.Tensor | None = None
        self._recent: deque[float] = deque(maxlen=self.history)
        self.last_score: float | None = None

    def update(self, L: torch.Tensor) -> bool:
        """Feed the next frame (``1 x h x w``); True if it starts a new shot.

        The first frame after :meth:`reset` returns False (nothing to cut from).
        """
        L = as_frame(L, 1, "L")
        prev, self._prev = self._prev, L
        if prev is None:
            self.last_score = None
            return False
        s = self.score(prev, L)
        self.last_score = s
        cut = self.is_cut(s, tuple(self._recent))
        # Every score goes into the history, cuts included: the median ignores
        # an isolated spike, and if "cuts" keep coming every frame (a whip pan)
        # the median rises and stops them. The history is kept across cuts
        # because the film's pace (camera motion, grain) usually carries over.
        self._recent.append(s)
        return cut

    def detect(self, L_frames: torch.Tensor | Iterable[torch.Tensor]) -> list[int]:
        """Indices t (>= 1) of a ``T x 1 x h x w`` clip where frame t starts a new shot.

        Uses a fresh history; does not disturb this detector's streaming state.
        """
        saved = (self._prev, self._recent, self.last_score)
        self.reset()
        try:
            return [t for t, L in enumerate(L_frames) if self.update(L)]
        finally:
            self._prev, self._recent, self.last_score = saved
