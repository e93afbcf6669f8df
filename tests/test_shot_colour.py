"""Steady colour within a shot: CDC, and global features that drift with the shot and reset at cuts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facecolor_video.film.pipeline import AnalyzedBatch, FrameColorizer, batched
from facecolor_video.film.shot_features import ShotGlobalFeatures
from facecolor_video.media.video import VideoFrame
from facecolor_video.model.colorizer import Colorizer
from facecolor_video.training.metrics import color_distribution_consistency

# ---------------------------------------------------------------- CDC


def _flat(value: int, size=(4, 6)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


def test_cdc_of_identical_frames_is_zero():
    assert color_distribution_consistency([_flat(7)] * 6) == 0.0


def test_cdc_of_alternating_disjoint_histograms():
    # d=1: disjoint histograms, JS = ln 2; d=2 and d=4: the same frame, 0
    frames = [_flat(0), _flat(255)] * 3
    assert color_distribution_consistency(frames) == pytest.approx(math.log(2) / 3)


def test_cdc_of_half_overlapping_histograms():
    # p = (1/2, 1/2) on bins 0 and 255, q = (1, 0): JS = 3/4 ln(4/3), for d = 1 only (two frames)
    half = _flat(0)
    half[:2] = 255
    assert color_distribution_consistency([half, _flat(0)]) == pytest.approx(0.75 * math.log(4 / 3))
    assert color_distribution_consistency([half]) == 0.0


# ---------------------------------------------------------------- ShotGlobalFeatures


def _batch(cuts, anchors, values):
    vectors = torch.tensor([[float(v), 2.0 * v] for v in values]) if values else torch.empty(0, 2)
    return AnalyzedBatch(None, list(cuts), vectors, list(anchors))


def _settle(blend, batches, window=1):
    shots = ShotGlobalFeatures(blend, anchor_window=window)
    settled = []
    for batch in batches:
        settled += shots.push([None] * len(batch.new_shot), batch)
    settled += shots.flush()
    return torch.cat([analyzed.global_vectors for _, analyzed in settled])[:, 0].tolist()


# anchors at 0, 4 and 8 (values 0, 4, 12), a cut at 10 (value 100), then an anchor at 12 (value 104)
SCHEDULE = [
    _batch([False, False, False], [True, False, False], [0]),
    _batch([False, False, False], [False, True, False], [4]),
    _batch([False, False, False], [False, False, True], [12]),
    _batch([False, True, False], [False, True, False], [100]),
    _batch([False, False], [True, False], [104]),
]


def test_interpolation_between_anchors_and_reset_at_cut():
    values = _settle("interpolate", SCHEDULE)
    # linear inside the shot: no step at the anchors 4 and 8
    assert values[:9] == pytest.approx([0, 1, 2, 3, 4, 6, 8, 10, 12])
    # after the shot's last anchor the vector holds; nothing of the next shot leaks back
    assert values[9] == pytest.approx(12)
    # the new shot starts from its own anchor, nothing of the old one leaks forward
    assert values[10:] == pytest.approx([100, 102, 104, 104])


def test_anchor_window_averages_the_shots_last_anchors():
    values = _settle("interpolate", SCHEDULE, window=2)
    # anchor values: 0, (0 + 4) / 2, (4 + 12) / 2; linear between them; held after the last
    assert values[:10] == pytest.approx([0, 0.5, 1, 1.5, 2, 3.5, 5, 6.5, 8, 8])
    # the window never reaches back over the cut
    assert values[10:] == pytest.approx([100, 101, 102, 102])


def test_hold_steps_at_anchors():
    values = _settle("hold", SCHEDULE)
    assert values[:10] == pytest.approx([0, 0, 0, 0, 4, 4, 4, 4, 12, 12])


def test_batches_wait_for_the_next_anchor():
    shots = ShotGlobalFeatures("interpolate", anchor_window=1)
    assert shots.push([None] * 3, SCHEDULE[0]) == []  # frames 1, 2 need the anchor at 4
    released = shots.push([None] * 3, SCHEDULE[1])
    assert len(released) == 1  # the first batch; the second still waits for 8
    assert len(shots.flush()) == 1


# ---------------------------------------------------------------- through the pipeline


def _texture(seed: int, size=(64, 96)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = rng.normal(0, 1, (size[0] // 8 + 2, size[1] // 8 + 2))
    big = np.kron(field, np.ones((8, 8)))
    gray = np.clip(128 + 50 * big, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def _pan(picture: np.ndarray, count: int, first_index: int, height=48, width=64) -> list[VideoFrame]:
    return [VideoFrame(rgb=np.ascontiguousarray(picture[:height, step:step + width]), pts=first_index + step,
                       index=first_index + step) for step in range(count)]


_COLORIZER = []


def _cheap_global_vectors(small_lightness, fresh_global=None):
    # stands in for VGG16 where only the schedule is under test: 512 values that follow the picture
    return torch.nn.functional.adaptive_avg_pool2d(small_lightness.float(), (16, 32)).flatten(1)


def _global_vectors_used(frames: list[VideoFrame], blend: str = "interpolate", vgg: bool = False) -> torch.Tensor:
    """The global vectors the head got for each frame (one shared colorizer, no smoothing)."""
    if not _COLORIZER:
        _COLORIZER.append(Colorizer(render_size=48, global_every=4, device="cpu"))
    colorizer = _COLORIZER[0]
    used = []
    if not vgg:
        colorizer.global_vectors = _cheap_global_vectors

    def spy(small_lightness, fresh_global=None, global_vectors=None):
        used.append(global_vectors.clone())
        return Colorizer.predict(colorizer, small_lightness, fresh_global, global_vectors)

    colorizer.predict = spy
    try:
        stream = FrameColorizer(colorizer, "none", 0, global_blend=blend)
        out = []
        for batch in batched(frames, 3):
            out += stream.process(batch)
        out += stream.finish()
    finally:
        del colorizer.predict
        colorizer.__dict__.pop("global_vectors", None)
    assert [frame.index for frame in out] == [frame.index for frame in frames]
    return torch.cat(used)


@pytest.fixture(scope="module")
def two_shots() -> tuple[list[VideoFrame], list[VideoFrame]]:
    first = _pan(_texture(1), 10, 0)
    second = [VideoFrame(rgb=255 - frame.rgb[::-1], pts=frame.pts + 10, index=frame.index + 10)
              for frame in _pan(_texture(2), 10, 0)]
    return first, second


def test_global_features_of_a_still_shot_are_constant():
    frames = [VideoFrame(rgb=_texture(3)[:48, :64], pts=i, index=i) for i in range(9)]
    vectors = _global_vectors_used(frames, vgg=True)
    assert torch.equal(vectors, vectors[:1].expand_as(vectors))


def test_global_features_drift_without_steps_and_reset_at_a_cut(two_shots):
    first, second = two_shots
    joined = _global_vectors_used(first + second)
    alone_first = _global_vectors_used(first)
    alone_second = _global_vectors_used(second)
    # the cut resets: each shot gets exactly the vectors it gets on its own
    torch.testing.assert_close(joined[:10], alone_first)
    torch.testing.assert_close(joined[10:], alone_second)
    # within the pan, changes are spread evenly between anchors 0, 4, 8: no step
    steps = (joined[1:9] - joined[:8]).norm(dim=1)
    torch.testing.assert_close(steps[:4], steps[:1].expand(4), rtol=1e-4, atol=1e-5)
    held = _global_vectors_used(first, blend="hold")
    held_steps = (held[1:9] - held[:8]).norm(dim=1)
    assert held_steps[3] > 3 * steps[3]  # the former schedule stepped at the anchor
