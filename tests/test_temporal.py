"""Tests for facecolor_video.film.temporal on synthetic clips (CPU, a few seconds)."""

import math

import pytest
import torch
import torch.nn.functional as F

from facecolor_video.film.temporal import SceneCutDetector, TemporalSmoother, flicker

H, W = 72, 128


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    # The clips are tiny; on a busy machine torch's intra-op thread pool costs
    # far more than it saves (measured 10x+ slower with 2 threads under load).
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ---------------------------------------------------------------- helpers


def texture(h, w, seed, lo=15.0, hi=85.0):
    """1 x h x w smooth multi-scale random 'scene' lightness in [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(1, 1, h, w)
    for cells, amp in ((4, 1.0), (12, 0.5), (40, 0.25)):
        n = torch.rand(1, 1, cells, cells * w // h + 1, generator=g)
        img += amp * F.interpolate(n, size=(h, w), mode="bicubic", align_corners=False)
    img = (img - img.min()) / (img.max() - img.min())
    return (lo + (hi - lo) * img)[0]


def chroma_of(L):
    """A deterministic 'true' a*b* field (2 x h x w) that follows the scene."""
    return torch.cat([L - 50.0, 30.0 - 0.5 * L])


def colour_noise(T, seed, low_amp=6.0, pix_amp=3.0):
    """T x 2 x H x W per-frame prediction error: blotchy low-frequency + per-pixel."""
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.randn(T, 2, 3, 4, generator=g) * low_amp, size=(H, W),
                        mode="bilinear", align_corners=False)
    return low + pix_amp * torch.randn(T, 2, H, W, generator=g)


def run(smoother, L, ab, keys=None):
    """Push a whole clip frame by frame + flush; returns (keys, T x 2 x h x w)."""
    keys = list(range(len(L))) if keys is None else keys
    out = []
    for t in range(len(L)):
        out += smoother.push(L[t], ab[t], keys[t])
    out += smoother.flush()
    return [k for k, _ in out], torch.stack([a for _, a in out])


def moving_square(T, fg=80.0, bg=20.0, step=3):
    """Bright square sliding right over a flat background, soft (antialiased) edges.

    Returns L (T x 1 x H x W), true ab (T x 2 x H x W) -- square and background
    have clearly different colours -- and a mask (H x W) of pixels near the
    moving edges (where smearing would show)."""
    Ls, abs_ = [], []
    for t in range(T):
        f = torch.full((1, 1, H, W), bg)
        x = 4 + step * t
        f[..., 20:50, x:x + 30] = fg
        f = F.avg_pool2d(F.pad(f, (1, 1, 1, 1), mode="replicate"), 3, 1)[0]
        m = (f[0] - bg) / (fg - bg)  # coverage 0..1
        abs_.append(torch.stack([-20 + 80 * m, 40 - 90 * m]))
        Ls.append(f)
    L, ab = torch.stack(Ls), torch.stack(abs_)
    occ = L > (fg + bg) / 2
    edge = (occ[1:] != occ[:-1]).any(0).float()  # 1 x H x W
    edge = F.max_pool2d(edge[None], 7, 1, 3)[0, 0] > 0
    return L, ab, edge


def edge_error(ab, ab_true, edge):
    return float(torch.linalg.vector_norm(ab - ab_true, dim=1)[:, edge].mean())


# ---------------------------------------------------------------- flicker()


def test_flicker_metric_counts_only_steady_pixels():
    L = torch.full((3, 1, 2, 2), 50.0)
    L[1, 0, 0, 0] = 60.0  # this pixel's lightness changes at t=1 and t=2
    ab = torch.zeros(3, 2, 2, 2)
    ab[1, 0] = 3.0  # a* jumps by 3 at t=1 ...
    ab[1, 1] = 4.0  # ... and b* by 4: |delta ab| = 5 everywhere, then back
    # steady pixels: 3 per pair, 2 pairs -> every counted change is 5
    assert flicker(L, ab) == pytest.approx(5.0)
    # the changed-L pixel is excluded: give it a huge jump, result unchanged
    ab[1, :, 0, 0] = 100.0
    assert flicker(L, ab) == pytest.approx(5.0)
    # threshold large enough to include it -> the mean rises
    assert flicker(L, ab, lum_threshold=20.0) > 5.0
    assert flicker(L[:1], ab[:1]) == 0.0


# ---------------------------------------------------------------- smoothing quality


def test_window_cuts_flicker_on_static_scene():
    T = 24
    L0 = texture(H, W, 7)
    L = L0.expand(T, 1, H, W).clone()
    pred = chroma_of(L0) + colour_noise(T, seed=1)
    f_none = flicker(L, run(TemporalSmoother("none"), L, pred)[1])
    f_win = flicker(L, run(TemporalSmoother("window"), L, pred)[1])
    f_ema = flicker(L, run(TemporalSmoother("ema"), L, pred)[1])
    assert f_none == pytest.approx(flicker(L, pred))
    assert f_win <= 0.25 * f_none
    assert f_ema <= 0.3 * f_none


def test_window_still_smooths_with_film_grain_on_L():
    # L grain of 1.5 units must not close the luminance gate everywhere.
    T = 24
    L0 = texture(H, W, 8)
    g = torch.Generator().manual_seed(3)
    L = L0.expand(T, 1, H, W) + 1.5 * torch.randn(T, 1, H, W, generator=g)
    pred = chroma_of(L0) + colour_noise(T, seed=2)
    f_none = flicker(L, pred, lum_threshold=3.0)
    f_win = flicker(L, run(TemporalSmoother("window"), L, pred)[1], lum_threshold=3.0)
    assert f_win <= 0.3 * f_none


@pytest.mark.parametrize("fg", [80.0, 32.0])  # high- and low-contrast object
@pytest.mark.parametrize("mode", ["window", "ema"])
def test_moving_object_colour_is_not_smeared(mode, fg):
    T = 16
    L, ab_true, edge = moving_square(T, fg=fg)
    # exact prediction: any error after smoothing is smearing
    _, out = run(TemporalSmoother(mode), L, ab_true)
    err = edge_error(out, ab_true, edge)
    assert err <= 3.0  # a*b* span ~120 units between the objects
    # the same filter without the luminance gate smears badly: the test can fail
    _, ungated = run(TemporalSmoother(mode, lum_sigma=1e6), L, ab_true)
    assert edge_error(ungated, ab_true, edge) > err + 3.0

    # noisy prediction: smoothing must be no worse than none near the edges
    pred = ab_true + colour_noise(T, seed=4)
    e_none = edge_error(pred, ab_true, edge)
    e_smooth = edge_error(run(TemporalSmoother(mode), L, pred)[1], ab_true, edge)
    assert e_smooth <= e_none + 0.5


def test_window_matches_offline_formula():
    # out_t = sum_s k(|s-t|) g_s ab_s / sum_s k g_s over |s-t| <= radius, computed
    # offline on the whole clip: checks the weights and that the streaming
    # version waits for all `radius` future frames before emitting.
    T, r, lum_sigma, time_sigma = 9, 2, 3.0, 2.0
    L, ab_true, _ = moving_square(T, fg=40.0)
    ab = ab_true + colour_noise(T, seed=9)
    _, got = run(TemporalSmoother("window", radius=r, lum_sigma=lum_sigma,
                                  time_sigma=time_sigma, detector=None), L, ab)
    for t in range(T):
        num, den = torch.zeros(2, H, W), torch.zeros(1, H, W)
        for s in range(max(0, t - r), min(T, t + r + 1)):
            w = math.exp(-((s - t) ** 2) / (2 * time_sigma**2)) * torch.exp(
                -((L[t] - L[s]) ** 2) / (2 * lum_sigma**2))
            num += w * ab[s]
            den += w
        assert torch.allclose(got[t], num / den, atol=1e-4), t


# ---------------------------------------------------------------- scene cuts


def two_shots(T1=10, T2=10):
    """Shot A (slow pan over one scene) then shot B (another scene), with noise."""
    big_a, big_b = texture(H, 2 * W, 11), texture(H, 2 * W, 12, 25, 75)
    La = torch.stack([big_a[:, :, 2 * t:2 * t + W] for t in range(T1)])
    Lb = torch.stack([big_b[:, :, 3 * t:3 * t + W] for t in range(T2)])
    aba = torch.stack([chroma_of(x) for x in La]) + colour_noise(T1, 5)
    abb = torch.stack([-chroma_of(x) for x in Lb]) + colour_noise(T2, 6)
    return La, aba, Lb, abb


@pytest.mark.parametrize("mode", ["window", "ema"])
def test_cut_stops_bleeding(mode):
    La, aba, Lb, abb = two_shots()
    L, ab = torch.cat([La, Lb]), torch.cat([aba, abb])
    sm = TemporalSmoother(mode)
    _, joined = run(sm, L, ab)
    assert sm.cuts == [len(La)]  # key of the first frame of shot B
    _, sep_a = run(TemporalSmoother(mode), La, aba)
    _, sep_b = run(TemporalSmoother(mode), Lb, abb)
    separate = torch.cat([sep_a, sep_b])
    assert torch.allclose(joined, separate, atol=1e-5)
    # without cut detection the frames at the boundary do change: the test bites
    _, blind = run(TemporalSmoother(mode, detector=None), L, ab)
    c = len(La)
    bleed_frames = [c - 1, c] if mode == "window" else [c]
    for t in bleed_frames:
        assert (blind[t] - separate[t]).abs().max() > 1.0


def test_forced_cut_argument():
    La, aba, Lb, abb = two_shots(6, 6)
    L, ab = torch.cat([La, Lb]), torch.cat([aba, abb])
    sm = TemporalSmoother("window", detector=None)
    cuts = [t == 6 for t in range(12)]
    out = sm.push_batch(L, ab, list(range(12)), cuts=cuts) + sm.flush()
    assert sm.cuts == [6]
    _, sep_b = run(TemporalSmoother("window", detector=None), Lb, abb)
    assert torch.allclose(out[6][1], sep_b[0], atol=1e-5)


def test_detector_finds_exactly_the_cut():
    La, _, Lb, _ = two_shots(12, 12)
    det = SceneCutDetector()
    assert det.detect(torch.cat([La, Lb])) == [12]
    assert det.detect(torch.cat([Lb, La])) == [12]
    # a cut between two flat frames of different brightness (no structure)
    flat = torch.cat([torch.full((5, 1, H, W), 30.0), torch.full((5, 1, H, W), 60.0)])
    assert det.detect(flat) == [5]


def test_detector_no_false_cuts_in_pan_fade_and_motion():
    det = SceneCutDetector()
    big = texture(H, 4 * W, 21)
    # speed 14 scores ~0.3-0.4 per frame, above the fixed threshold: only the
    # adaptive part (ratio to the shot's recent median) keeps it quiet
    for speed in (1, 4, 10, 14):  # pixels per frame at 128 px width
        pan = torch.stack([big[:, :, speed * t:speed * t + W] for t in range(24)])
        assert det.detect(pan) == [], f"pan speed {speed}"
    a = texture(H, W, 22)
    T = 12  # half a second
    fades = {
        "dim": [a * (1 - 0.5 * t / T) for t in range(T + 1)],
        "to_black": [a] * 3 + [a * (1 - t / T) for t in range(T + 1)] + [a * 0] * 3,
        "from_black": [a * 0] * 3 + [a * (t / T) for t in range(T + 1)] + [a] * 3,
        "to_white": [a * (1 - t / T) + 100 * t / T for t in range(T + 1)],
    }
    for name, frames in fades.items():
        assert det.detect(torch.stack(frames)) == [], name
    L, _, _ = moving_square(20, step=6)
    assert det.detect(L) == []


def test_detector_streaming_matches_detect_and_is_pure_score():
    La, _, Lb, _ = two_shots(5, 5)
    L = torch.cat([La, Lb])
    det = SceneCutDetector()
    s1 = det.score(L[4], L[5])
    assert det.score(L[4], L[5]) == s1  # no hidden state in score()
    assert det.score(L[0], L[0]) == 0.0
    flags = [det.update(x) for x in L]
    assert [t for t, f in enumerate(flags) if f] == det.detect(L) == [5]
    assert det.score(L[0], L[0][:, :40]) == math.inf  # size change = new shot


# ---------------------------------------------------------------- streaming contract


@pytest.mark.parametrize("mode", ["window", "ema", "none"])
@pytest.mark.parametrize("sizes", [[1] * 13, [3, 3, 3, 4], [7, 6], [13], [2, 5, 1, 5]])
def test_every_key_once_in_order(mode, sizes):
    La, aba, Lb, abb = two_shots(6, 7)  # includes a cut at frame 6
    L, ab = torch.cat([La, Lb]), torch.cat([aba, abb])
    keys = [("pts", 1001 * t) for t in range(13)]
    sm = TemporalSmoother(mode, radius=2)
    out, i = [], 0
    for n in sizes:
        ready = sm.push_batch(L[i:i + n], ab[i:i + n], keys[i:i + n])
        out += ready
        i += n
        # latency bound: at most `radius` frames held back
        assert i - len(out) == sm.pending <= (2 if mode == "window" else 0)
    out += sm.flush()
    assert [k for k, _ in out] == keys
    assert all(a.shape == (2, H, W) for _, a in out)
    # batching must not change the result
    _, ref = run(TemporalSmoother(mode, radius=2), L, ab, keys)
    assert torch.equal(torch.stack([a for _, a in out]), ref)
    assert sm.pending == 0 and sm.flush() == []


def test_none_mode_passes_through():
    La, aba, _, _ = two_shots(4, 1)
    sm = TemporalSmoother("none")
    out = sm.push_batch(La, aba, [0, 1, 2, 3])
    assert [k for k, _ in out] == [0, 1, 2, 3]
    assert all(torch.equal(a, aba[i]) for i, (_, a) in enumerate(out))


def test_ema_is_causal_and_window_is_not():
    T = 10
    L0 = texture(H, W, 31)
    L = L0.expand(T, 1, H, W).clone()
    ab = chroma_of(L0) + colour_noise(T, 7)
    ab_alt = ab.clone()
    ab_alt[6:] += 25.0  # change only the future of frame 5
    _, e1 = run(TemporalSmoother("ema"), L, ab)
    _, e2 = run(TemporalSmoother("ema"), L, ab_alt)
    assert torch.equal(e1[:6], e2[:6])
    assert not torch.allclose(e1[6], e2[6])
    # ema output is available as soon as the frame is pushed
    sm = TemporalSmoother("ema")
    assert [k for k, _ in sm.push(L[0], ab[0], "a")] == ["a"]
    # the centred window does look ahead (so the causality check above can fail)
    _, w1 = run(TemporalSmoother("window"), L, ab)
    _, w2 = run(TemporalSmoother("window"), L, ab_alt)
    assert not torch.allclose(w1[5], w2[5])


def test_dtype_and_shape_handling():
    L0 = texture(H, W, 41).double()
    ab = chroma_of(L0)
    sm = TemporalSmoother("window", radius=1)
    out = sm.push(L0, ab, 0) + sm.push(L0[0], ab, 1) + sm.flush()  # h x w L accepted
    assert [k for k, _ in out] == [0, 1]
    assert all(a.dtype == torch.float64 for _, a in out)
    assert torch.allclose(out[0][1], ab)  # identical frames average to themselves
    with pytest.raises(ValueError):
        sm.push(L0, ab[:1], 2)
    with pytest.raises(ValueError):
        TemporalSmoother("median")
