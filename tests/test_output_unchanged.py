"""A fixed clip through `colorize` gives the stored frames: faces on, with a reference, segmented.

The stored frames (tests/data/golden_outputs.npz, made by tests/golden_outputs.py)
guard refactors: moving code must not move a single output byte. They were first
made with the code before the package's layers were redrawn (commit 73b954c) and
the code after gave the same bytes.

Float32 on the CPU rounds the same on the machine that made the file; elsewhere
(another ISA's kernels, another torch) a few values may land one level off, so
there the frames must match to within that rounding instead of bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.golden_outputs import (
    CASES,
    GOLDEN,
    load,
    machine,
    make_clip,
    run_case,
    weights_identity,
)

# Off the golden file's machine: how far float32 rounding may move a decoded 8-bit value, and how
# many values may move at all. A changed colour moves far more (a tenth of a level in the mean
# fails the second bound at once).
ROUNDING_LEVELS = 2
ROUNDING_SHARE = 0.005


@pytest.fixture(scope="module")
def golden():
    meta, results = load(GOLDEN)
    if meta["weights"] != weights_identity():
        pytest.fail("the shipped weights changed since tests/data/golden_outputs.npz was made: if the new "
                    "colour is meant, rewrite it with `python -m tests.golden_outputs` and say so in the commit")
    return meta, results


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    clip, reference = make_clip(folder)
    return folder, clip, reference


def assert_same_frames(actual: np.ndarray, expected: np.ndarray, exact: bool) -> None:
    assert actual.shape == expected.shape
    if exact:
        differing = np.argwhere(actual != expected)
        assert differing.size == 0, f"{len(differing)} values differ, first at (frame, y, x, channel) {differing[0]}"
        return
    difference = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= ROUNDING_LEVELS, f"a value moved by {difference.max()} levels"
    assert np.mean(difference > 0) <= ROUNDING_SHARE, f"{np.mean(difference > 0):.2%} of the values moved"


@pytest.mark.parametrize("case", list(CASES))
def test_colorize_gives_the_stored_frames(case, golden, inputs):
    meta, results = golden
    folder, clip, reference = inputs
    frames, pts = run_case(case, clip, reference, folder)
    expected_frames, expected_pts = results[case]
    assert pts.tolist() == expected_pts.tolist()
    assert_same_frames(frames, expected_frames, exact=meta["machine"] == machine())


def test_the_comparison_fails_for_a_changed_colour(golden):
    """What the test above would say of a slight change: one level on a tenth of the picture's chroma."""
    _, results = golden
    frames = results["faces"][0]
    changed = frames.copy()
    changed[:, : frames.shape[1] // 10, :, 2] ^= 1
    for exact in (True, False):
        with pytest.raises(AssertionError):
            assert_same_frames(changed, frames, exact=exact)
    assert_same_frames(frames.copy(), frames, exact=True)
