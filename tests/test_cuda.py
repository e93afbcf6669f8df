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


def test_chroma_planes_on_cuda_are_the_cpu_planes():
    from facecolor_video.media.planes import plane_format
    from facecolor_video.model.chroma import ChromaComposer

    generator = torch.Generator().manual_seed(0)
    luma = torch.randint(16, 236, (3, 1, 37, 50), dtype=torch.int32, generator=generator)
    ab = torch.randn(3, 2, 8, 8, generator=generator) * 30
    for pix_fmt in ("yuv420p", "yuv422p10le", "yuv444p"):
        layout = plane_format(pix_fmt)
        on_gpu = ChromaComposer(torch.device("cuda"), 1 << 22)
        gpu = [on_gpu.compose(luma.cuda(), ab.cuda(), layout, layout) for _ in range(2)]  # the host buffer reused
        cpu = ChromaComposer(torch.device("cpu"), 1 << 17).compose(luma, ab, layout, layout)
        assert gpu[0].dtype == cpu.dtype and gpu[0].shape == cpu.shape
        assert np.array_equal(gpu[0], gpu[1])
        assert np.abs(gpu[0].astype(np.int32) - cpu).max() <= 1


def test_film_on_cuda_keeps_the_luma_plane(tmp_path):
    clip = make_video(tmp_path / "gray.mp4", n_frames=20, size=(64, 48), gray=True, audio_streams=0)
    out = tmp_path / "out.mkv"
    report = colorize_file(clip, out, Colorizer(device="cuda", render_size=64),
                           ColorizeOptions(batch_size=8, codec="ffv1", audio=False))
    assert report.composition == "planes" and report.frames_written == 20
    with VideoReader(clip) as source, VideoReader(out) as result:
        source_luma = [frame.yuv.luma for frame in source.frames(as_planes=True)]
        result_luma = [frame.yuv.luma for frame in result.frames(as_planes=True)]
    assert all(np.array_equal(a, b) for a, b in zip(source_luma, result_luma))
