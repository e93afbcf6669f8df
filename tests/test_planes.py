"""The planes path: the source's luma kept bit for bit, chroma composed at chroma resolution.

Outputs are written losslessly (FFV1 in Matroska, x264 at qp 0) so the
comparisons see the planes handed to the encoder, not its rounding.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from facecolor_video.film.pipeline import (
    ColorizeOptions,
    FrameColorizer,
    colorize_file,
    run_stream,
)
from facecolor_video.media.planes import (
    PlaneFormat,
    YuvPlanes,
    convert_luma,
    plane_format,
)
from facecolor_video.media.prefetch import BackgroundWriter, ByteQueue
from facecolor_video.media.video import VideoFrame, VideoReader
from facecolor_video.model.chroma import ChromaComposer, chroma_matrix
from facecolor_video.model.colorizer import Colorizer
from tests.media import make_portrait_video, make_video, portrait_frame

LOSSLESS = {"codec": "ffv1", "audio": False, "batch_size": 4}
# RGB PSNR between the two compositions, written losslessly (measured 47.5 dB on the moving test
# pattern and 48.5 dB on the gray portrait clip at 4:4:4; 44.7 dB on bikes.mp4 in gray at 640x480, 4:2:0)
PLANES_VS_LAB_MIN_PSNR_DB = 36.0


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer(device="cpu", render_size=64, global_every=4)


def _planes(path: Path, index: int) -> list[np.ndarray]:
    """The planes of every frame of a file, as stored (no conversion), without row padding."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    result = []
    for frame in frames:
        dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
        plane = frame.planes[index]
        rows = np.frombuffer(plane, dtype).reshape(plane.height, -1)
        result.append(rows[:, :plane.width].copy())
    return result


def _format(path: Path) -> av.VideoFormat:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).format


def _rgb(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _colour_gain(source: Path, output: Path) -> float:
    """Mean CIEDE2000 of the gray source minus that of the output, both against the colour portrait.

    Positive when the output's colour is nearer the truth than no colour at all; a tint or
    wrong a*b* makes it negative.
    """
    from facecolor_video.training.metrics import ciede2000

    gray, colour = _rgb(source), _rgb(output)
    truth = [portrait_frame(index, colour.shape[2], colour.shape[1]) for index in range(len(colour))]
    return float(np.mean([ciede2000(t, g) - ciede2000(t, c) for t, g, c in zip(truth, gray, colour)]))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ------------------------------------------------------------ luma kept, formats
@pytest.mark.parametrize(("pix_fmt", "chroma_shape"), [
    ("yuv420p", (24, 32)), ("yuv422p", (48, 32)), ("yuv444p", (48, 64)), ("yuv420p10le", (24, 32)),
])
def test_luma_plane_is_the_source_bit_for_bit(tmp_path, colorizer, pix_fmt, chroma_shape):
    source = make_portrait_video(tmp_path / "gray.mp4", n_frames=10, size=(64, 48))
    output = tmp_path / "colour.mkv"
    report = colorize_file(source, output, colorizer, ColorizeOptions(**LOSSLESS, pix_fmt=pix_fmt))
    assert report.composition == "planes" and report.frames_written == 10
    assert _format(output).name == pix_fmt
    source_luma, output_luma = _planes(source, 0), _planes(output, 0)
    if pix_fmt.endswith("10le"):  # 8-bit codes in a 10-bit file: the same levels, two bits up
        source_luma = [luma.astype(np.uint16) << 2 for luma in source_luma]
    assert len(output_luma) == 10
    assert all(np.array_equal(a, b) for a, b in zip(source_luma, output_luma))
    chroma = _planes(output, 1)
    assert chroma[0].shape == chroma_shape
    # and the chroma is the right colour: nearer the portrait's than gray (measured 0.41 at 4:2:0, 0.50 at 4:4:4)
    assert _colour_gain(source, output) >= 0.3


def test_ten_bit_source_keeps_its_ten_bit_luma(tmp_path, colorizer):
    source = make_video(tmp_path / "deep.mkv", n_frames=6, size=(48, 32), codec="ffv1", pix_fmt="yuv422p10le",
                        gray=True, audio_streams=0)
    output = tmp_path / "deep_colour.mkv"
    colorize_file(source, output, colorizer, ColorizeOptions(**LOSSLESS))
    assert _format(output).name == "yuv420p10le"  # the writer's default for a deep source
    source_luma, output_luma = _planes(source, 0), _planes(output, 0)
    assert np.asarray(source_luma).max() > 255  # real 10-bit codes
    assert all(np.array_equal(a, b) for a, b in zip(source_luma, output_luma))


def test_x264_lossless_keeps_the_luma(tmp_path, colorizer):
    source = make_video(tmp_path / "gray.mp4", n_frames=8, size=(64, 48), gray=True, audio_streams=0)
    output = tmp_path / "colour.mp4"
    colorize_file(source, output, colorizer, ColorizeOptions(crf=0, preset="ultrafast", audio=False, batch_size=4))
    assert all(np.array_equal(a, b) for a, b in zip(_planes(source, 0), _planes(output, 0)))


@pytest.mark.parametrize(("size", "pix_fmt", "chroma_shape"), [
    ((63, 47), None, (47, 63)),  # x264 default at an odd size: 4:4:4
    ((63, 47), "yuv420p", (24, 32)),  # FFV1 takes 4:2:0 at odd sizes: chroma rounds up
])
def test_odd_sizes(tmp_path, colorizer, size, pix_fmt, chroma_shape):
    source = make_video(tmp_path / "odd.mkv", n_frames=6, size=size, codec="ffv1", pix_fmt="yuv444p", gray=True,
                        audio_streams=0)
    output = tmp_path / "odd_colour.mkv"
    codec = LOSSLESS if pix_fmt else {**LOSSLESS, "codec": "libx264", "crf": 0, "preset": "ultrafast"}
    colorize_file(source, output, colorizer, ColorizeOptions(**codec, pix_fmt=pix_fmt))
    assert _planes(output, 1)[0].shape == chroma_shape
    assert all(np.array_equal(a, b) for a, b in zip(_planes(source, 0), _planes(output, 0)))


# ------------------------------------------------------------ against the Lab path
def test_planes_path_is_the_lab_path_within_tolerance(tmp_path, colorizer):
    source = make_portrait_video(tmp_path / "gray.mp4", n_frames=8, size=(96, 64))
    outputs = {}
    for exact_lab in (True, False):
        outputs[exact_lab] = tmp_path / f"lab_{exact_lab}.mkv"
        report = colorize_file(source, outputs[exact_lab], colorizer,
                               ColorizeOptions(**LOSSLESS, exact_lab=exact_lab, pix_fmt="yuv444p"))
        assert report.composition == ("lab" if exact_lab else "planes")
    lab, planes = _rgb(outputs[True]), _rgb(outputs[False])
    assert lab.shape == planes.shape
    assert _psnr(lab, planes) >= PLANES_VS_LAB_MIN_PSNR_DB
    # and the colour is right: nearer the portrait's than gray (measured 0.81 in CIEDE2000)
    assert _colour_gain(source, outputs[False]) >= 0.45


def test_stills_and_exact_lab_take_the_lab_path(tmp_path, colorizer):
    from tests.media import make_image

    still = make_image(tmp_path / "gray.png")
    report = colorize_file(still, tmp_path / "colour.png", colorizer, ColorizeOptions(audio=False))
    assert report.composition == "lab" and report.frames_written == 1


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full_range", [False, True])
def test_chroma_codes_match_swscale(matrix, full_range):
    """Our R'G'B' -> Cb/Cr is the conversion FFmpeg does for the same matrix and range (4:4:4, within 1 code)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    layout = PlaneFormat("yuv444p", 8, (0, 0), matrix, full_range)
    weights, zero, top = chroma_matrix(layout)
    values = torch.from_numpy(rgb).permute(2, 0, 1).double() / 255
    ours = (torch.einsum("ij,jhw->ihw", weights.double(), values) + zero).round().clamp(0, top).numpy()
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    theirs = frame.reformat(format="yuv444p", dst_colorspace={"bt601": "ITU601", "bt709": "ITU709"}[matrix],
                            dst_color_range="JPEG" if full_range else "MPEG")
    for index in (1, 2):
        plane = np.frombuffer(theirs.planes[index], np.uint8).reshape(16, -1)[:, :16]
        assert np.abs(plane.astype(int) - ours[index - 1]).max() <= 1


def test_no_colour_gives_neutral_chroma():
    for layout in (plane_format("yuv420p"), plane_format("yuv444p10le", "bt709", True)):
        composer = ChromaComposer(torch.device("cpu"), 1 << 10)
        luma = torch.randint(0, layout.max_code + 1, (2, 1, 9, 13), dtype=torch.int32)
        chroma = composer.compose(luma, torch.zeros(2, 2, 4, 4), layout, layout)
        assert chroma.shape == (2, 2, *layout.chroma_size(9, 13)) and chroma.dtype == layout.dtype
        assert np.all(chroma == 1 << (layout.bits - 1))


def test_luma_between_depths_and_ranges():
    limited8, limited10 = plane_format("yuv420p"), plane_format("yuv420p10le")
    full8 = plane_format("yuvj420p")
    codes = np.array([[0, 16, 128, 235, 255]], np.uint8)
    assert convert_luma(codes, limited8, limited8) is codes
    assert convert_luma(codes, limited8, limited10).tolist() == [[0, 64, 512, 940, 1020]]
    assert convert_luma(codes, limited8, full8).tolist() == [[0, 0, 130, 255, 255]]


def test_output_keeps_the_source_matrix_tag(tmp_path, colorizer):
    source = tmp_path / "bt709.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.colorspace = 1
        for index in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((48, 32), 60 + 20 * index, np.uint8), format="yuv420p")
            frame.colorspace, frame.pts = 1, index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    output = tmp_path / "colour.mkv"
    colorize_file(source, output, colorizer, ColorizeOptions(**LOSSLESS))
    with av.open(str(output)) as container:
        assert next(container.decode(video=0)).colorspace == 1  # BT.709


# ------------------------------------------------------------ threads and queues
def test_composer_and_encoder_threads_deliver_every_frame_with_its_pts(tmp_path, colorizer):
    source = make_video(tmp_path / "vfr.mkv", n_frames=23, size=(48, 32), vfr=True, start_pts=40, audio_streams=0)
    with VideoReader(source) as reader:
        expected = [frame.pts for frame in reader.frames()]
        stream = FrameColorizer(colorizer, "window", 2)
        written: list[VideoFrame] = []
        threads: set[str] = set()

        def write(frames):
            threads.add(threading.current_thread().name)
            written.extend(frames)

        busy: dict[str, float] = {}
        read = run_stream(stream, reader.frames(as_planes=True), 4, write, overlap=True, busy=busy)
    assert read == 23
    assert [frame.pts for frame in written] == expected
    assert all(frame.yuv is not None and frame.yuv.chroma is not None for frame in written)
    assert threads == {"facecolor-encoder"}
    assert set(busy) == {"reader", "network", "composer", "encoder", "wall"}
    assert all(seconds > 0 for seconds in busy.values())


def test_byte_queue_bounds_bytes_and_takes_one_large_item():
    queue = ByteQueue(max_bytes=100, size_of=len)
    queue.put(b"x" * 500)  # larger than the bound, into an empty queue: taken
    with pytest.raises(Exception):  # noqa: B017 - queue.Full
        queue.put(b"y", timeout=0.05)
    assert queue.get() == b"x" * 500
    queue.put(b"a" * 60)
    with pytest.raises(Exception):  # noqa: B017
        queue.put(b"b" * 60, timeout=0.05)  # 120 > 100
    queue.put(b"c" * 40)
    assert queue.bytes == 100 and queue.peak_bytes == 500


def test_writer_queue_by_bytes_keeps_order_and_blocks_the_producer():
    written, gate = [], threading.Event()

    def slow_write(item):
        gate.wait(5)
        written.append(item)

    writer = BackgroundWriter(slow_write, depth=None, max_bytes=3, size_of=lambda item: 1)
    started = time.perf_counter()
    putter = threading.Thread(target=lambda: [writer.put(index) for index in range(8)])
    putter.start()
    putter.join(0.3)
    assert putter.is_alive()  # bounded: the producer waits for the writer
    gate.set()
    putter.join()
    writer.close()
    assert written == list(range(8)) and time.perf_counter() - started < 5


def test_planes_reader_keeps_timestamps_and_sizes(tmp_path):
    source = make_video(tmp_path / "clip.mp4", n_frames=5, size=(40, 30), start_pts=7, audio_streams=0)
    with VideoReader(source) as reader:
        frames = list(reader.frames(as_planes=True, keep_chroma=True))
        rgb_frames = list(reader.frames())
    assert [f.pts for f in frames] == [f.pts for f in rgb_frames]
    assert frames[0].size == (30, 40) and frames[0].rgb is None
    assert isinstance(frames[0].yuv, YuvPlanes) and frames[0].yuv.chroma.shape == (2, 15, 20)
    assert [f.time_base for f in frames] == [f.time_base for f in rgb_frames]


def test_an_rgb_only_encoder_gets_rgb_composed_from_the_luma(tmp_path, colorizer):
    source = make_video(tmp_path / "gray.mp4", n_frames=6, size=(48, 32), gray=True, audio_streams=0)
    outputs = {}
    for exact_lab in (True, False):
        outputs[exact_lab] = tmp_path / f"rgb_{exact_lab}.mkv"
        report = colorize_file(source, outputs[exact_lab], colorizer,
                               ColorizeOptions(codec="libx264rgb", crf=0, preset="ultrafast", audio=False,
                                               batch_size=4, exact_lab=exact_lab))
        assert report.frames_written == 6
    # L read from the luma codes rather than from swscale's 8-bit RGB: measured 33.8 dB on this
    # saturated pattern (a level of L moves a clipped channel by a few codes)
    assert _psnr(_rgb(outputs[True]), _rgb(outputs[False])) >= 30.0
