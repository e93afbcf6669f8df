"""The CUDA path on a real GPU: these run where one is visible and skip elsewhere.

The same code paths are covered on the CPU by the other tests (device choice,
autocast, the out-of-memory halving by simulation); here they meet a GPU.
"""

import numpy as np
import pytest
import torch

from facecolor_video.film.pipeline import ColorizeOptions, colorize_file
from facecolor_video.media.video import VideoReader
from facecolor_video.model.colorizer import Colorizer
from tests.media import make_video

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")


def _frames(count=5, height=72, width=96):
    rng = np.random.default_rng(0)
    gray = np.clip(rng.normal(128, 40, (count, height, width)).cumsum(axis=2) / 10 + 50, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def test_cuda_matches_the_cpu_within_half_precision():
    frames = _frames()
    on_gpu = Colorizer(device="cuda", render_size=64)
    assert on_gpu.device.type == "cuda" and on_gpu.amp_dtype in (torch.bfloat16, torch.float16)
    gpu = on_gpu.colorize(frames).astype(np.int16)
    cpu = Colorizer(device="cpu", precision="fp32", render_size=64).colorize(frames).astype(np.int16)
    assert gpu.shape == cpu.shape
    assert np.abs(gpu - cpu).mean() < 2.0  # 8-bit levels; bf16 moves a few pixels by more


def test_cuda_fp32_is_the_cpu_result():
    frames = _frames(count=3)
    gpu = Colorizer(device="cuda", precision="fp32", render_size=64).colorize(frames).astype(np.int16)
    cpu = Colorizer(device="cpu", precision="fp32", render_size=64).colorize(frames).astype(np.int16)
    assert np.abs(gpu - cpu).max() <= 2


def test_film_on_cuda_keeps_every_frame_and_its_time(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=30, vfr=True, audio_streams=1)
    out = tmp_path / "out.mp4"
    report = colorize_file(clip, out, Colorizer(device="cuda", render_size=64), ColorizeOptions(batch_size=8))
    with VideoReader(clip) as source, VideoReader(out) as result:
        source_times = [frame.time for frame in source.frames()]
        result_times = [frame.time for frame in result.frames()]
    assert report.frames_written == 30 and result_times == source_times
