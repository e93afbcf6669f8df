import hashlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facecolor_video.errors import (
    DecodeError,
    EncodeError,
    InputError,
    NoVideoStreamError,
    OutputError,
    VideoOpenError,
)
from facecolor_video.media.video import VideoFrame, VideoReader, VideoWriter
from tests.media import (
    VFR_STEPS,
    make_audio_only,
    make_image,
    make_video,
    pattern_frame,
)

DATA = Path(os.environ.get("FACECOLOR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# Helpers that read results back with PyAV directly, not through the code under test.


def frame_times(path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def packet_digests(path, stream_type: str) -> list[list[str]]:
    """sha256 of every payload of each stream of a type, in file order."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == stream_type]
        if not streams:
            return []
        digests = {s.index: [] for s in streams}
        for packet in container.demux(*streams):
            if packet.size:
                digests[packet.stream.index].append(hashlib.sha256(bytes(packet)).hexdigest())
        return [digests[s.index] for s in streams]


def copy_frames(source, destination, **writer_options) -> VideoWriter:
    """The identity colorizer: write back every frame read."""
    with VideoReader(source) as reader, VideoWriter(destination, reader, **writer_options) as writer:
        for frame in reader.frames():
            writer.write(frame)
    return writer


def temporary_leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if ".partial-" in path.name]


# Reader


def test_reader_properties(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=24, size=(64, 48), frame_rate=25)
    with VideoReader(clip) as reader:
        assert (reader.width, reader.height) == (64, 48)
        assert reader.frame_rate == Fraction(25) and isinstance(reader.frame_rate, Fraction)
        assert reader.frame_count == 24
        assert reader.bit_depth == 8 and not reader.has_alpha and not reader.is_image
        assert reader.rotation == 0
        assert [info.codec for info in reader.audio_streams] == ["aac"]
        frames = list(reader.frames())
    assert len(frames) == 24
    assert [frame.index for frame in frames] == list(range(24))
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8
    assert [frame.time for frame in frames] == frame_times(clip)


def test_frames_look_like_the_source(tmp_path):
    clip = make_video(tmp_path / "clip.mkv", codec="ffv1", pix_fmt="yuv444p", audio_streams=0)
    with VideoReader(clip) as reader:
        first = next(reader.frames())
    difference = np.abs(first.rgb.astype(int) - pattern_frame(0, 64, 48))
    assert difference.mean() < 2


def test_frame_count_estimated_when_container_has_none(tmp_path):
    clip = make_video(tmp_path / "clip.mkv", n_frames=30, audio_streams=0)
    with VideoReader(clip) as reader:
        assert abs(reader.frame_count - 30) <= 1


def test_frames_from_start_pts(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=40, audio_streams=0)
    with VideoReader(clip) as reader:
        every = list(reader.frames())
        start = every[25].pts
        tail = list(reader.frames(start_pts=start))
        again = list(reader.frames())
    assert [frame.pts for frame in tail] == [frame.pts for frame in every[25:]]
    assert [frame.pts for frame in again] == [frame.pts for frame in every]


def test_corrupt_packets_are_counted_not_fatal(tmp_path):
    clip = make_video(tmp_path / "bad.mkv", n_frames=12, codec="ffv1", audio_streams=0, corrupt_frames=(4, 7))
    with VideoReader(clip) as reader:
        frames = list(reader.frames())
        assert reader.decode_errors == 2
        assert len(frames) + reader.decode_errors == 12
        assert len(reader.decode_error_pts) == 2


def test_nothing_decodable_is_a_decode_error(tmp_path):
    clip = make_video(tmp_path / "bad.mkv", n_frames=3, codec="ffv1", audio_streams=0, corrupt_frames=(0, 1, 2))
    with VideoReader(clip) as reader, pytest.raises(DecodeError, match="bad.mkv"):
        list(reader.frames())


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda folder: folder / "missing.mp4", InputError),
        (lambda folder: folder, InputError),
        (lambda folder: _write(folder / "empty.mp4", b""), InputError),
        (lambda folder: _write(folder / "text.mp4", b"hello, this is not a video\n" * 50), VideoOpenError),
    ],
    ids=["missing", "directory", "empty", "not-media"],
)
def test_bad_inputs_raise_typed_errors(tmp_path, make, error):
    path = make(tmp_path)
    with pytest.raises(error, match=path.name):
        VideoReader(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = make_audio_only(tmp_path / "tone.m4a")
    with pytest.raises(NoVideoStreamError, match="tone.m4a"):
        VideoReader(path)


# Round trips through the writer


def test_round_trip_keeps_count_pts_and_audio(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=24)
    out = tmp_path / "out.mp4"
    writer = copy_frames(clip, out)
    assert writer.frames_written == 24 and writer.notices == []
    assert frame_times(out) == frame_times(clip)
    assert packet_digests(out, "audio") == packet_digests(clip, "audio")


def test_start_time_is_kept(tmp_path):
    clip = make_video(tmp_path / "late.mp4", start_pts=50, audio_streams=1)
    out = tmp_path / "out.mp4"
    copy_frames(clip, out)
    times = frame_times(out)
    assert times[0] == Fraction(2) and times == frame_times(clip)
    with VideoReader(out) as reader:
        assert reader.start_time * reader.time_base == Fraction(2)


def test_vfr_timestamps_are_kept(tmp_path):
    clip = make_video(tmp_path / "vfr.mkv", n_frames=20, vfr=True, start_pts=300)
    source_times = frame_times(clip)
    gaps = {b - a for a, b in zip(source_times, source_times[1:])}
    assert len(gaps) == len(set(VFR_STEPS))  # the clip really is variable-rate
    for name in ("out.mkv", "out.mp4"):
        copy_frames(clip, tmp_path / name)
        assert frame_times(tmp_path / name) == source_times


def test_odd_size_is_kept(tmp_path):
    clip = make_video(tmp_path / "odd.mkv", size=(67, 45))
    out = tmp_path / "out.mp4"
    copy_frames(clip, out)
    with VideoReader(out) as reader:
        assert (reader.width, reader.height) == (67, 45)
        assert reader.frame_count == 24


def test_ten_bit_round_trip(tmp_path):
    clip = make_video(tmp_path / "deep.mp4", pix_fmt="yuv420p10le", n_frames=8)
    out = tmp_path / "out.mp4"
    with VideoReader(clip) as reader:
        assert reader.bit_depth == 10
        source = list(reader.frames())
    assert source[0].rgb.dtype == np.uint16
    # Values that are not multiples of 257 show that more than 8 bits came through.
    assert np.any(source[0].rgb % 257)
    copy_frames(clip, out)
    with VideoReader(out) as reader:
        assert reader.bit_depth == 10 and reader.pix_fmt == "yuv420p10le"
        copied = list(reader.frames())
    assert len(copied) == 8
    difference = np.abs(copied[0].rgb.astype(int) - source[0].rgb.astype(int)) / 257
    assert difference.mean() < 3


def test_two_audio_streams_are_copied_byte_for_byte(tmp_path):
    clip = make_video(tmp_path / "two.mp4", audio_streams=2)
    out = tmp_path / "out.mkv"
    copy_frames(clip, out)
    source_audio = packet_digests(clip, "audio")
    assert len(source_audio) == 2 and source_audio[0] != source_audio[1]
    assert packet_digests(out, "audio") == source_audio


def test_subtitles_are_copied_into_mkv(tmp_path):
    clip = make_video(tmp_path / "subs.mkv", subtitle=True)
    out = tmp_path / "out.mkv"
    writer = copy_frames(clip, out)
    assert writer.notices == []
    assert packet_digests(out, "subtitle") == packet_digests(clip, "subtitle")
    assert len(packet_digests(out, "subtitle")[0]) == 3


def test_subtitles_mp4_cannot_hold_give_a_notice(tmp_path):
    clip = make_video(tmp_path / "subs.mkv", subtitle=True)
    out = tmp_path / "out.mp4"
    writer = copy_frames(clip, out)
    assert any("subtitle" in notice for notice in writer.notices)
    assert packet_digests(out, "subtitle") == []
    assert packet_digests(out, "audio") == packet_digests(clip, "audio")


def decoded_samples(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])


def test_lossless_audio_the_container_refuses_is_converted_losslessly(tmp_path):
    clip = make_video(tmp_path / "pcm.mkv", audio_codec="pcm_u8")
    out = tmp_path / "out.mp4"
    writer = copy_frames(clip, out)
    assert len(writer.notices) == 1 and "pcm_u8" in writer.notices[0] and "converted to alac (lossless" in writer.notices[0]
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "alac"
    # u8 samples widen to s16 exactly: (u - 128) * 256
    source = decoded_samples(clip).astype(np.int32)
    assert np.array_equal(decoded_samples(out).astype(np.int32), (source - 128) * 256)


def test_lossy_audio_the_container_refuses_is_converted_to_aac(tmp_path):
    clip = make_video(tmp_path / "opus.mkv", audio_codec="libopus")
    out = tmp_path / "out.mov"
    writer = copy_frames(clip, out)
    assert len(writer.notices) == 1 and "opus" in writer.notices[0] and "converted to aac (128 kb/s" in writer.notices[0]
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        decoded = sum(frame.samples for frame in container.decode(audio=0))
    assert decoded > 0.8 * 16000 * 24 / 25


def test_audio_can_be_left_out(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    copy_frames(clip, out, copy_audio=False)
    assert packet_digests(out, "audio") == []


def test_rotation_is_kept(tmp_path):
    clip = tmp_path / "turned.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(pattern_frame(index, 64, 48), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out.mp4"
    copy_frames(clip, out)
    with VideoReader(out) as reader:
        assert reader.rotation == 90


def test_writer_without_template(tmp_path):
    out = tmp_path / "made.mkv"
    with VideoWriter(out, None, frame_rate=Fraction(30000, 1001)) as writer:
        for index in range(5):
            writer.write(VideoFrame(rgb=pattern_frame(index, 32, 32), index=index))
    with VideoReader(out) as reader:
        assert (reader.width, reader.height) == (32, 32)
        assert len(list(reader.frames())) == 5


def test_repeated_pts_are_moved_forward(tmp_path):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, None, frame_rate=25) as writer:
        for index, pts in enumerate([0, 1, 1, None, 4]):
            writer.write(VideoFrame(rgb=pattern_frame(index, 32, 32), pts=pts, time_base=Fraction(1, 25), index=index))
    assert writer.pts_adjusted == 2
    times = frame_times(out)
    assert len(times) == 5 and times == sorted(set(times))


def test_wrong_frame_size_is_an_encode_error(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", audio_streams=0)
    out = tmp_path / "out.mp4"
    with pytest.raises(EncodeError, match="32x32"):
        with VideoReader(clip) as reader, VideoWriter(out, reader) as writer:
            writer.write(VideoFrame(rgb=pattern_frame(0, 32, 32)))
    assert not out.exists() and temporary_leftovers(tmp_path) == []


# Atomic output


def test_exception_mid_write_leaves_nothing(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    out = tmp_path / "out.mkv"
    with pytest.raises(RuntimeError, match="interrupted"):
        # ffv1 is intra-only: packets reach the file at once, so there is a
        # half-written temporary file to clean up.
        with VideoReader(clip) as reader, VideoWriter(out, reader, codec="ffv1") as writer:
            for frame in reader.frames():
                writer.write(frame)
                if frame.index == 10:
                    assert writer.temporary_path.exists()
                    raise RuntimeError("interrupted")
    assert not out.exists()
    assert temporary_leftovers(tmp_path) == []


def test_exception_mid_write_keeps_an_existing_destination(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    out.write_bytes(b"earlier result")
    with pytest.raises(RuntimeError):
        with VideoReader(clip) as reader, VideoWriter(out, reader) as writer:
            writer.write(next(reader.frames()))
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"earlier result"
    assert temporary_leftovers(tmp_path) == []


def test_no_frames_is_an_encode_error(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(EncodeError, match="no frames"):
        with VideoWriter(out, None):
            pass
    assert not out.exists() and temporary_leftovers(tmp_path) == []


def test_unknown_output_extension_fails_before_work(tmp_path):
    with pytest.raises(OutputError, match="unknown output extension"):
        VideoWriter(tmp_path / "out.xyz", None)
    assert list(tmp_path.iterdir()) == []


# Images


def test_rgba_png_keeps_alpha(tmp_path):
    image = make_image(tmp_path / "in.png", (67, 45), "RGBA")
    out = tmp_path / "out.png"
    with VideoReader(image) as reader:
        assert reader.is_image and reader.has_alpha and reader.frame_count == 1
        (frame,) = reader.frames()
    assert frame.alpha is not None and frame.alpha.shape == (45, 67)
    copy_frames(image, out)
    with VideoReader(out) as reader:
        (copied,) = reader.frames()
    np.testing.assert_array_equal(copied.alpha, frame.alpha)
    np.testing.assert_array_equal(copied.rgb, frame.rgb)


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    image = make_image(tmp_path / "deep.png", (40, 30), "RGB16")
    out = tmp_path / "out.png"
    with VideoReader(image) as reader:
        assert reader.bit_depth == 16
        (frame,) = reader.frames()
    assert frame.rgb.dtype == np.uint16 and np.any(frame.rgb % 257)
    copy_frames(image, out)
    with VideoReader(out) as reader:
        assert reader.bit_depth == 16
        (copied,) = reader.frames()
    np.testing.assert_array_equal(copied.rgb, frame.rgb)


def test_sixteen_bit_gray_png_reads_as_uint16_rgb(tmp_path):
    image = make_image(tmp_path / "gray16.png", (40, 30), "I;16")
    with VideoReader(image) as reader:
        (frame,) = reader.frames()
    assert frame.rgb.dtype == np.uint16
    assert np.array_equal(frame.rgb[..., 0], frame.rgb[..., 2])


def test_gray_jpeg_reads_as_replicated_rgb(tmp_path):
    from PIL import Image

    image = make_image(tmp_path / "gray.jpg", (64, 48), "L")
    with VideoReader(image) as reader:
        (frame,) = reader.frames()
    assert frame.rgb.shape == (48, 64, 3)
    assert np.array_equal(frame.rgb[..., 0], frame.rgb[..., 1])
    reference = np.asarray(Image.open(image))
    assert np.abs(frame.rgb[..., 0].astype(int) - reference).max() <= 1


def test_cmyk_jpeg_is_read(tmp_path):
    image = make_image(tmp_path / "cmyk.jpg", (64, 48), "CMYK")
    with VideoReader(image) as reader:
        (frame,) = reader.frames()
    assert np.abs(frame.rgb.astype(int) - pattern_frame(3, 64, 48)).mean() < 8


@pytest.mark.parametrize("extension", ["png", "jpg", "jpeg", "webp", "tiff", "tif", "bmp"])
def test_each_image_format_round_trips(tmp_path, extension):
    image = make_image(tmp_path / "in.png", (67, 45), "RGB")
    out = tmp_path / f"out.{extension}"
    copy_frames(image, out)
    with VideoReader(out) as reader:
        assert reader.is_image and (reader.width, reader.height) == (67, 45)
        (frame,) = reader.frames()
    lossy = extension in ("jpg", "jpeg", "webp")
    assert np.abs(frame.rgb.astype(int) - pattern_frame(3, 67, 45)).mean() < (10 if lossy else 1)


def test_image_output_takes_one_frame(tmp_path):
    out = tmp_path / "out.png"
    with pytest.raises(EncodeError, match="one frame"):
        with VideoWriter(out, None) as writer:
            writer.write(VideoFrame(rgb=pattern_frame(0, 16, 16)))
            writer.write(VideoFrame(rgb=pattern_frame(1, 16, 16)))
    assert not out.exists() and temporary_leftovers(tmp_path) == []


# The shared data set, when present (never the only test of a feature).


@pytest.mark.skipif(not (DATA / "video" / "chaplin.mp4").exists(), reason="shared data set not present")
def test_chaplin_mp3_audio_is_copied_into_mp4(tmp_path):
    source = DATA / "video" / "chaplin.mp4"
    out = tmp_path / "chaplin.mp4"
    with VideoReader(source) as reader:
        assert [info.codec for info in reader.audio_streams] == ["mp3"]
        assert reader.frame_rate == 25
        with VideoWriter(out, reader, preset="ultrafast") as writer:
            for frame in reader.frames():
                writer.write(frame)
    assert writer.notices == []
    assert frame_times(out) == frame_times(source)
    assert packet_digests(out, "audio") == packet_digests(source, "audio")


# Encoders


def test_encoder_options_follow_crf_and_preset():
    from facecolor_video.media.video import encoder_options

    assert encoder_options("libx264", 20, "fast") == {"crf": "20", "preset": "fast"}
    assert encoder_options("libx265", 22, "slow")["crf"] == "22"
    nvenc = encoder_options("h264_nvenc", 19, "medium")
    assert nvenc["cq"] == "19" and nvenc["rc"] == "vbr" and nvenc["preset"] == "p4"
    assert encoder_options("hevc_nvenc", 19, "p7")["preset"] == "p7"
    assert encoder_options("ffv1", 18, "medium") == {}


def test_x265_output_has_the_frames(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=6, audio_streams=0)
    writer = copy_frames(clip, tmp_path / "out.mkv", codec="libx265", crf=30, preset="ultrafast")
    assert writer.frames_written == 6
    with VideoReader(tmp_path / "out.mkv") as reader:
        assert reader.codec_name == "hevc" and len(list(reader.frames())) == 6


def test_hardware_encoder_encodes_with_cuda_and_fails_in_one_clear_line_without(tmp_path):
    """Where a CUDA GPU is visible NVENC must encode the clip; elsewhere one line says what is missing."""
    import torch

    clip = make_video(tmp_path / "clip.mp4", n_frames=6, audio_streams=0)
    out = tmp_path / "out.mp4"
    if torch.cuda.is_available():
        writer = copy_frames(clip, out, codec="h264_nvenc")
        assert writer.frames_written == 6 and out.is_file()
        with VideoReader(out) as reader:
            assert reader.codec_name == "h264" and len(list(reader.frames())) == 6
        return
    with pytest.raises((EncodeError, OutputError)) as raised:
        copy_frames(clip, out, codec="h264_nvenc")
    message = str(raised.value)
    assert "\n" not in message and str(out) in message
    if "h264_nvenc" in av.codecs_available:  # the encoder is there, the GPU is not
        assert isinstance(raised.value, EncodeError) and "NVIDIA GPU" in message and "libx264" in message
    else:
        assert "h264_nvenc" in message and "not available" in message
    assert not out.exists() and temporary_leftovers(tmp_path) == []
