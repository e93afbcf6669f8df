"""Small synthetic media for tests, written with PyAV and Pillow.

Every function writes one deterministic file into a folder the test owns and
returns its path. Files are tiny (a few dozen frames of a few dozen pixels), so
a test can make the exact media it needs in milliseconds.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

AUDIO_SAMPLE_RATE = 16000
# One tone per audio stream, so two copied streams can be told apart.
AUDIO_TONES_HZ = (440.0, 660.0, 880.0)
# Frame durations of the VFR clip, in multiples of the nominal frame period.
VFR_STEPS = (1, 1, 2, 1, 3, 1, 1, 2)
VFR_TIME_BASE = Fraction(1, 1000)
SUBTITLE_LINES = ("Hello", "from a", "test clip")


def pattern_frame(index: int, width: int, height: int, gray: bool = False) -> np.ndarray:
    """A moving coloured pattern: diagonal gradients plus a square that travels."""
    rows = np.arange(height, dtype=np.int32)[:, None]
    cols = np.arange(width, dtype=np.int32)[None, :]
    red = (cols * 255 // max(width - 1, 1) + index * 7) % 256
    green = (rows * 255 // max(height - 1, 1) + index * 5) % 256
    blue = ((rows + cols) * 4 + index * 11) % 256
    rgb = np.stack(np.broadcast_arrays(red, green, blue), axis=-1).astype(np.uint8)
    side = max(min(width, height) // 4, 2)
    left = (index * 3) % max(width - side, 1)
    top = (index * 2) % max(height - side, 1)
    rgb[top:top + side, left:left + side] = (250, 240, 20)
    if gray:
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        rgb = np.repeat(luma.round().astype(np.uint8)[..., None], 3, axis=-1)
    return rgb


def frame_times(n_frames: int, frame_rate: Fraction, vfr: bool, start_pts: int) -> tuple[list[int], Fraction]:
    """The pts of each frame and their time base.

    Constant rate: time base 1/frame_rate, pts start_pts, start_pts+1, ...
    Variable rate: time base 1/1000 and durations that cycle through VFR_STEPS.
    """
    if not vfr:
        return [start_pts + i for i in range(n_frames)], 1 / frame_rate
    period_ms = Fraction(1000) / frame_rate
    pts_list, now = [], Fraction(start_pts)
    for i in range(n_frames):
        pts_list.append(int(now))
        now += period_ms * VFR_STEPS[i % len(VFR_STEPS)]
    return pts_list, VFR_TIME_BASE


def _pick_pix_fmt(codec: str, width: int, height: int) -> str:
    # libx264 refuses odd sizes in 4:2:0; 4:4:4 allows any size.
    if codec == "libx264" and (width % 2 or height % 2):
        return "yuv444p"
    return "yuv420p"


def _to_video_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    # High bit depth targets get 16-bit RGB so the extra bits are real.
    if "10" in pix_fmt or "12" in pix_fmt or "16" in pix_fmt:
        return av.VideoFrame.from_ndarray(rgb.astype(np.uint16) * 257, format="rgb48le")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def _encode_sine(container, stream, tone_hz: float, duration: Fraction, start_seconds: Fraction) -> None:
    sample_rate = AUDIO_SAMPLE_RATE
    total = int(duration * sample_rate)
    first_sample = int(start_seconds * sample_rate)
    chunk = 1024
    for offset in range(0, total, chunk):
        sample_index = np.arange(offset, min(offset + chunk, total)) + first_sample
        samples = (0.3 * np.sin(2 * np.pi * tone_hz * sample_index / sample_rate)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = first_sample + offset
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _mux_subtitles(container, stream, duration: Fraction, start_seconds: Fraction) -> None:
    # Text subtitles are muxed as ready-made packets: an SRT packet is its text.
    step_ms = int(duration * 1000) // len(SUBTITLE_LINES)
    start_ms = int(start_seconds * 1000)
    for i, line in enumerate(SUBTITLE_LINES):
        packet = av.Packet(line.encode())
        packet.pts = packet.dts = start_ms + i * step_ms
        packet.duration = max(step_ms - 10, 1)
        packet.time_base = Fraction(1, 1000)
        packet.stream = stream
        container.mux(packet)


def make_video(
    path,
    n_frames: int = 24,
    size: tuple[int, int] = (64, 48),
    frame_rate=25,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    audio_streams: int = 1,
    audio_codec: str = "aac",
    subtitle: bool = False,
    vfr: bool = False,
    start_pts: int = 0,
    gray: bool = False,
    corrupt_frames: tuple[int, ...] = (),
) -> Path:
    """Write a short clip of a moving pattern and return its path.

    size is (width, height). pix_fmt None picks yuv420p, or yuv444p when
    libx264 gets an odd size. start_pts is the first frame's pts in the clip's
    time base (1/frame_rate, or 1/1000 for vfr=True); audio and subtitles start
    at the same moment. Each audio stream is a sine tone in audio_codec (a
    different pitch per stream); subtitle=True adds an SRT stream (Matroska only).
    corrupt_frames lists packet indices whose payload is replaced by garbage, to
    exercise decode-error handling (use an intra-only codec such as ffv1).
    """
    path = Path(path)
    width, height = size
    frame_rate = Fraction(frame_rate)
    pix_fmt = pix_fmt or _pick_pix_fmt(codec, width, height)
    pts_list, time_base = frame_times(n_frames, frame_rate, vfr, start_pts)
    start_seconds = pts_list[0] * time_base
    duration = n_frames / frame_rate if not vfr else (pts_list[-1] - pts_list[0]) * time_base + 1 / frame_rate

    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=frame_rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.time_base = video.codec_context.time_base = time_base
        audio = []
        for _ in range(audio_streams):
            stream = container.add_stream(audio_codec, rate=AUDIO_SAMPLE_RATE)
            stream.layout = "mono"
            audio.append(stream)
        subtitles = container.add_mux_stream("subrip") if subtitle else None
        if subtitles is not None:
            subtitles.time_base = Fraction(1, 1000)

        packet_index = 0
        rng = np.random.default_rng(0)
        for index, pts in enumerate(pts_list):
            frame = _to_video_frame(pattern_frame(index, width, height, gray), pix_fmt)
            frame.pts, frame.time_base = pts, time_base
            for packet in video.encode(frame):
                if packet_index in corrupt_frames:
                    packet = _garbled(packet, rng)
                container.mux(packet)
                packet_index += 1
        for packet in video.encode():
            container.mux(packet)
        for stream, tone_hz in zip(audio, AUDIO_TONES_HZ):
            _encode_sine(container, stream, tone_hz, duration, start_seconds)
        if subtitles is not None:
            _mux_subtitles(container, subtitles, duration, start_seconds)
    return path


def _garbled(packet: av.Packet, rng: np.random.Generator) -> av.Packet:
    garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
    garbage.pts, garbage.dts, garbage.duration = packet.pts, packet.dts, packet.duration
    garbage.time_base, garbage.stream = packet.time_base, packet.stream
    garbage.is_keyframe = packet.is_keyframe
    return garbage


def make_audio_only(path, container_format: str = "mp4") -> Path:
    """A file with one short silent AAC stream and no video."""
    with av.open(str(path), "w", format=container_format) as container:
        mux_silence(container, container.add_stream("aac", rate=16000))
    return Path(path)


def mux_silence(container, stream) -> None:
    """1024 samples of mono silence, encoded into ``stream`` (an AAC stream of ``container``)."""
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate, frame.pts = stream.rate, 0
    for packet in [*stream.encode(frame), *stream.encode()]:
        container.mux(packet)


def make_image(path, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Path:
    """Write one still image of the pattern and return its path.

    mode: 'L' (gray), 'RGB', 'RGBA' (alpha is a horizontal ramp, opaque at the left), 'CMYK' (JPEG
    only), 'I;16' (16-bit gray PNG), 'RGB16' or 'RGBA16' (16 bits per channel
    PNG, written with PyAV because Pillow cannot). The format follows the
    extension: png, jpg/jpeg, webp, tif/tiff, bmp.
    """
    path = Path(path)
    width, height = size
    rgb = pattern_frame(3, width, height)
    # from opaque at the left: a one-pixel-wide image is opaque, not wholly transparent (whose colour is undefined)
    alpha = np.tile(np.linspace(255, 0, width).round().astype(np.uint8), (height, 1))
    if mode in ("RGB16", "RGBA16"):
        _write_png16(path, rgb, alpha if mode == "RGBA16" else None)
        return path
    image = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        image.putalpha(Image.fromarray(alpha, "L"))
    elif mode == "I;16":
        gray16 = np.asarray(image.convert("L"), dtype=np.uint16) * 257 + 3
        image = Image.fromarray(gray16.astype("<u2"))
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


def _write_png16(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    # Low bits set on purpose: a reader that drops to 8 bits loses them.
    rgb16 = rgb.astype(np.uint16) * 257 + 1
    if alpha is None:
        frame = av.VideoFrame.from_ndarray(rgb16, format="rgb48le")
        pix_fmt = "rgb48be"
    else:
        rgba16 = np.concatenate([rgb16, alpha.astype(np.uint16)[..., None] * 257], axis=-1)
        frame = av.VideoFrame.from_ndarray(rgba16, format="rgba64le")
        pix_fmt = "rgba64be"
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], pix_fmt
        for packet in stream.encode(frame.reformat(format=pix_fmt)):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


PORTRAIT = Path(__file__).parent / "data" / "webmorph_neutral_front_002_03.webp"  # CC BY 4.0, see LICENSE.webmorph


def portrait_frame(index: int, width: int, height: int, gray: bool = False) -> np.ndarray:
    """The bundled colour portrait scaled to cover width x height and cut out, one pixel further right per index.

    A natural picture with a known colour: what a colorizer's output can be compared with.
    gray=True gives it as a gray picture (CIE L kept, a* = b* = 0), as a black-and-white film would hold it.
    """
    with Image.open(PORTRAIT) as image:
        colour = image.convert("RGB")
    side = max(width + index, height)
    scaled = np.asarray(colour.resize((side, side), Image.Resampling.BICUBIC))
    top = (side - height) // 2
    rgb = np.ascontiguousarray(scaled[top:top + height, index:index + width])
    if gray:
        from facecolor_video.training.evaluate import to_gray_rgb

        rgb = to_gray_rgb(rgb)
    return rgb


def make_portrait_video(path, n_frames: int = 6, size: tuple[int, int] = (64, 48), codec: str = "libx264",
                        pix_fmt: str | None = None, gray: bool = True, frame_rate=25) -> Path:
    """A short clip of the portrait panning one pixel a frame (gray by default), no audio.

    Frame i is portrait_frame(i, *size, gray); libx264 is written at qp 0 so the
    decoded frames are the ones given, to the rounding of the YUV conversion.
    """
    path = Path(path)
    width, height = size
    pix_fmt = pix_fmt or _pick_pix_fmt(codec, width, height)
    options = {"qp": "0", "preset": "ultrafast"} if codec == "libx264" else {}
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=frame_rate, options=options)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        for index in range(n_frames):
            frame = _to_video_frame(portrait_frame(index, width, height, gray), pix_fmt)
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path
