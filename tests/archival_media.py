"""Small clips of the kinds archives hold, written with PyAV: DV, DVD MPEG-2, MJPEG, ProRes, FFV1, broadcast H.264.

Each kind is a recipe: container, video codec and options, audio codecs. The
frames are the moving pattern of tests/media.py, made gray; the audio is a
sine tone per stream, in the encoder's own sample format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.media import pattern_frame

AUDIO_RATE = 48000
NTSC = Fraction(30000, 1001)


@dataclass(frozen=True)
class Kind:
    extension: str
    video_codec: str
    pix_fmt: str
    size: tuple[int, int] = (64, 48)
    frame_rate: Fraction = Fraction(25)
    video_options: dict = field(default_factory=dict)
    audio_codecs: tuple[str, ...] = ()
    container_format: str | None = None
    frames: int = 10


KINDS = {
    "dv-pcm": Kind(".avi", "dvvideo", "yuv411p", (720, 480), NTSC, audio_codecs=("pcm_s16le",), frames=6),
    "mpeg2-interlaced-mp2-ac3": Kind(".vob", "mpeg2video", "yuv420p", (64, 48), NTSC,
                                     {"flags": "+ilme+ildct", "top": "1", "b": "2M"}, ("mp2", "ac3"), "vob"),
    "mjpeg-pcm": Kind(".avi", "mjpeg", "yuvj422p", audio_codecs=("pcm_s16le",)),
    "prores-pcm24": Kind(".mov", "prores_ks", "yuv422p10le", audio_codecs=("pcm_s24le",)),
    "ffv1-flac": Kind(".mkv", "ffv1", "yuv420p", audio_codecs=("flac",)),
    "h264-open-gop-b-pyramid": Kind(".ts", "libx264", "yuv420p", video_options={
        "x264-params": "open-gop=1:b-pyramid=normal:bframes=3:keyint=6:min-keyint=6:scenecut=0"},
        audio_codecs=("mp2",), frames=14),
}


def make_kind(folder, name: str) -> Path:
    """Write the clip of one kind into folder and return its path."""
    kind = KINDS[name]
    path = Path(folder) / f"{name}{kind.extension}"
    width, height = kind.size
    with av.open(str(path), "w", format=kind.container_format) as container:
        video = container.add_stream(kind.video_codec, rate=kind.frame_rate, options=dict(kind.video_options))
        video.width, video.height, video.pix_fmt = width, height, kind.pix_fmt
        audio = []
        for codec in kind.audio_codecs:
            stream = container.add_stream(codec, rate=AUDIO_RATE)
            stream.layout = "stereo"
            audio.append(stream)
        for index in range(kind.frames):
            rgb = pattern_frame(index, width, height, gray=True)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=kind.pix_fmt)
            frame.pts, frame.time_base = index, 1 / kind.frame_rate
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        seconds = kind.frames / kind.frame_rate
        for number, stream in enumerate(audio):
            _encode_tone(container, stream, 440.0 * (number + 1), seconds)
    return path


def _encode_tone(container, stream, tone_hz: float, seconds: Fraction) -> None:
    sample_format = stream.codec_context.codec.audio_formats[0].name
    chunk = stream.codec_context.frame_size or 1152
    total = int(seconds * AUDIO_RATE)
    for offset in range(0, total, chunk):
        time = np.arange(offset, offset + chunk) / AUDIO_RATE
        wave = 0.3 * np.sin(2 * np.pi * tone_hz * time)
        frame = av.AudioFrame.from_ndarray(_samples(wave, sample_format), format=sample_format, layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, offset, Fraction(1, AUDIO_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _samples(wave: np.ndarray, sample_format: str) -> np.ndarray:
    planar = sample_format.endswith("p")
    base = sample_format.rstrip("p")
    if base == "s16":
        values = (wave * 32767).astype(np.int16)
    elif base == "s32":
        # low byte zero: a 24-bit source, as PCM 24 and FLAC hold it
        values = ((wave * 2**31).astype(np.int64) & ~0xFF).astype(np.int32)
    else:
        values = wave.astype(np.float32 if base == "flt" else np.float64)
    stereo = np.stack([values, values])
    return stereo if planar else stereo.T.reshape(1, -1)


FILM_RATE = Fraction(24000, 1001)


def make_telecined(folder, film_frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    """Film at 23.976 frames/s telecined (3:2 pulldown, FFmpeg's telecine filter) to 29.97 interlaced MPEG-2.

    Frame k of the film is pattern_frame(k), gray: after inverse telecine each output frame should be one of them.
    """
    path = Path(folder) / "telecined.vob"
    width, height = size
    graph = av.filter.Graph()
    source = graph.add("buffer", f"video_size={width}x{height}:pix_fmt=yuv420p:time_base=1001/24000:"
                                 "pixel_aspect=1/1:frame_rate=24000/1001")
    telecine = graph.add("telecine", "first_field=top:pattern=23")
    sink = graph.add("buffersink")
    source.link_to(telecine)
    telecine.link_to(sink)
    graph.configure()
    with av.open(str(path), "w", format="vob") as container:
        video = container.add_stream("mpeg2video", rate=NTSC, options={"flags": "+ilme+ildct", "b": "2M"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        number = 0

        def encode(frame):
            nonlocal number
            frame.pts, frame.time_base = number, 1 / NTSC
            number += 1
            for packet in video.encode(frame):
                container.mux(packet)

        for index in range(film_frames):
            film = av.VideoFrame.from_ndarray(pattern_frame(index, width, height, gray=True), format="rgb24")
            film = film.reformat(format="yuv420p")
            film.pts, film.time_base = index, 1 / FILM_RATE
            graph.push(film)
            for frame in _pulled(graph):
                encode(frame)
        graph.push(None)
        for frame in _pulled(graph):
            encode(frame)
        for packet in video.encode():
            container.mux(packet)
    return path


def _pulled(graph):
    while True:
        try:
            yield graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def moving_square(moment: int, width: int, height: int, step: int = 5) -> np.ndarray:
    """Gray picture at a moment: a bright square travelling right by step pixels per moment over a dark ramp."""
    picture = np.tile(np.linspace(30, 90, width), (height, 1))
    side = height // 2
    left = (moment * step) % (width - side)
    top = height // 4
    picture[top:top + side, left:left + side] = 220
    return np.repeat(picture.round().astype(np.uint8)[..., None], 3, axis=-1)


def make_interlaced_motion(folder, frames: int = 8, size: tuple[int, int] = (64, 48)) -> Path:
    """Interlaced MPEG-2 whose two fields are two moments, as a video camera records them.

    FFmpeg's MPEG-2 encoder writes it bottom field first (field order 'bb'): frame k holds
    moving_square(2k) on its odd rows (the bottom field, shown first) and moving_square(2k + 1)
    on its even rows, so anything that moves is combed.
    """
    path = Path(folder) / "interlaced_motion.vob"
    width, height = size
    with av.open(str(path), "w", format="vob") as container:
        video = container.add_stream("mpeg2video", rate=Fraction(25),
                                     options={"flags": "+ilme+ildct", "top": "1", "b": "8M"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            woven = moving_square(2 * index + 1, width, height).copy()
            woven[1::2] = moving_square(2 * index, width, height)[1::2]
            frame = av.VideoFrame.from_ndarray(woven, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


def combing(luma: np.ndarray) -> float:
    """Vertical high-frequency energy: mean square of each row minus the mean of the rows above and below it.

    Large where the odd rows and the even rows show different moments (combing), small on a
    progressive picture, whose neighbouring rows agree.
    """
    rows = luma.astype(np.float64)
    return float(np.mean((rows[1:-1] - (rows[:-2] + rows[2:]) / 2) ** 2))


def square_left(luma: np.ndarray) -> float:
    """Where moving_square's square is: the mean column of the bright pixels."""
    return float(np.nonzero(luma > 160)[1].mean())
