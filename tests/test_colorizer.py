"""The frame-level Colorizer: unrelated photos never share global features; luminance is kept."""

import numpy as np

from facecolor_video.model.colorizer import Colorizer, render_shape


def _photo(seed, size=(48, 64)):
    rng = np.random.default_rng(seed)
    gray = np.clip(rng.normal(128, 50, size).cumsum(axis=1) / 8 + 60, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def test_consecutive_stills_do_not_reuse_global_features():
    reused = Colorizer(render_size=64, global_every=8)
    first, second = _photo(1), _photo(2)
    reused.colorize(first[None])
    after_another = reused.colorize(second[None])[0]
    alone = Colorizer(render_size=64, global_every=8).colorize(second[None])[0]
    assert np.array_equal(after_another, alone)


def test_render_shape_never_upscales_and_snaps_to_multiples_of_eight():
    assert render_shape(480, 640, 128) == (128, 168)
    assert render_shape(100, 90, 128) == (96, 88)  # nearest multiples of 8
    assert render_shape(1080, 1920, None) == (1080, 1920)


def test_head_split_across_cores_gives_the_same_colours():
    from facecolor_video.film.pipeline import torch_threads

    frames = np.stack([_photo(seed) for seed in range(5)])
    whole = Colorizer(render_size=64)
    whole._head_pool_size = 1
    split = Colorizer(render_size=64)
    split._head_pool_size = 3
    with torch_threads(1):
        assert split._head_parts(5) == 3 and whole._head_parts(5) == 1
        expected = whole.colorize(frames).astype(np.int16)
        result = split.colorize(frames).astype(np.int16)
    assert split._head_pool is not None and whole._head_pool is None
    assert np.abs(result - expected).max() <= 1


def test_a_sliver_gets_the_same_colours_every_time():
    """A 1-pixel-wide picture renders 8 wide: the network pads it, so its colours are the same at every call.

    Unpadded, the CPU's bfloat16 convolutions gave different a*b* on each call here (sometimes NaN: a black picture).
    """
    import torch

    colorizer = Colorizer(render_size=64, faces="off")
    sliver = _photo(3, size=(37, 1))
    small = colorizer.prepare(sliver[None]).small_lightness
    assert tuple(small.shape[-2:]) == (40, 8)
    vectors = colorizer.global_vectors(small, [True])
    runs = [colorizer.predict(small, global_vectors=vectors) for _ in range(12)]
    assert all(bool(torch.isfinite(run).all()) for run in runs)
    assert all(torch.equal(run, runs[0]) for run in runs)
