"""The source's audio and subtitle streams in the output: decided before the first frame, then copied.

``plan_streams`` settles, for every audio and subtitle stream, whether the
output container takes it as it is (copy), takes it converted (lossless to
ALAC or FLAC when the source is lossless, else AAC at a high bit rate), or
cannot hold it (a subtitle is then left out; an audio stream that fits in no
way stops the run with a line naming a container that takes it). Each choice
is tried for real first: the header, a packet or two and the trailer are
written to memory with the output's muxer and read back, because a muxer can
accept a stream at the header and fail at the trailer (PCM into MP4) or on the
first packet (FLAC into MOV). So a run never fails after the work for a
reason that was knowable at the start.

``StreamCopier`` then muxes the planned streams, interleaved with the video.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from ..errors import OutputError

# Where a stream that cannot be copied goes, tried in this order, per output muxer.
LOSSLESS_TARGETS = {
    "mp4": ("alac", "flac"),
    "mov": ("alac",),
    "matroska": ("flac", "alac"),
    "nut": ("flac", "alac"),
    "mpegts": (),
}
LOSSY_TARGET = "aac"
# AAC bit rate per channel: transparent for speech and music, and for the hiss of old recordings.
AAC_BITS_PER_CHANNEL = 128_000
# Copies a muxer accepts but few readers read back: FFmpeg writes PCM into MP4 as 'ipcm'
# (ISO 23003-5), which older FFmpeg and most players do not know.
AVOID_COPY = {"mp4": lambda codec: codec.startswith("pcm_")}
# Containers suggested when a stream fits nowhere else, with their extension.
SUGGESTED = (("matroska", ".mkv"), ("mov", ".mov"), ("mp4", ".mp4"))
# Packets of each stream muxed in the trial (some muxers check the second packet, e.g. frame sizes).
TRIAL_PACKETS = 3
# Source packets read, at most, to find TRIAL_PACKETS of every stream.
TRIAL_SCAN_LIMIT = 2000
# Codecs that keep at most 24 bits in a 32-bit sample format, so ALAC and FLAC hold them exactly.
_AT_MOST_24_BITS = ("pcm_s24", "pcm_dvd", "pcm_bluray", "pcm_s24daud", "flac", "alac", "wavpack", "tta", "truehd", "mlp")

_SPOKEN_TYPE = {"audio": "audio", "subtitle": "subtitle"}


@dataclass(frozen=True)
class StreamChoice:
    """What becomes of one source stream: action is 'copy', 'convert' or 'drop'."""

    index: int
    type: str
    codec: str
    action: str
    target: str | None = None  # the encoder, for 'convert'
    sample_format: str | None = None  # the encoder's sample format, for 'convert'
    bit_rate: int | None = None  # for a lossy conversion
    reason: str = ""

    @property
    def label(self) -> str:
        return f"{_SPOKEN_TYPE.get(self.type, self.type)} #{self.index} ({self.codec})"

    def describe(self) -> str:
        if self.action == "copy":
            return f"{self.label} copied"
        if self.action == "convert":
            quality = "lossless" if self.bit_rate is None else f"{self.bit_rate // 1000} kb/s"
            return f"{self.label} converted to {self.target} ({quality}; {self.reason})"
        return f"{self.label} left out ({self.reason})"


@dataclass
class StreamPlan:
    choices: list[StreamChoice]

    @property
    def kept(self) -> list[StreamChoice]:
        return [choice for choice in self.choices if choice.action != "drop"]

    def note(self, destination) -> str | None:
        """One line for the user when anything is not a plain copy; None when everything is copied."""
        if all(choice.action == "copy" for choice in self.choices):
            return None
        return f"{destination}: " + "; ".join(choice.describe() for choice in self.choices)


def codec_name(stream) -> str:
    # The codec's own name ('mp3'), not its decoder's ('mp3float'): muxers list codecs.
    return stream.codec.canonical_name


def plan_streams(source_streams, container_format: str, destination, first_packets=None) -> StreamPlan:
    """Decide every stream of ``source_streams`` (PyAV audio/subtitle streams) for ``container_format``.

    first_packets: stream index -> a few of its packets for the trial mux
    (``read_first_packets``); without them (a pipe) only the header and trailer
    are tried. OutputError when an audio stream fits in no way.
    """
    first_packets = first_packets or {}
    choices = []
    for stream in source_streams:
        choice = _choose(stream, container_format, first_packets.get(stream.index, []))
        if choice is None:
            raise OutputError(_refusal(stream, container_format, destination, first_packets.get(stream.index, [])))
        choices.append(choice)
    return StreamPlan(choices)


def check_video_codec(container_format: str, encoder: str, destination) -> None:
    """OutputError, before any frame, when the container cannot hold what encoder makes (ProRes in .mp4)."""
    codec = av.codec.Codec(encoder, "w").canonical_name
    with av.open(io.BytesIO(), "w", format=container_format) as probe:
        held = probe.supported_codecs
    if held and codec not in held:
        takers = [extension for other, extension in SUGGESTED
                  if other != container_format and codec in av.open(io.BytesIO(), "w", format=other).supported_codecs]
        hint = f"; use {takers[0]} or another --codec" if takers else "; use another --codec"
        raise OutputError(f"{destination}: {container_format} cannot hold {codec} video{hint}")


def read_first_packets(path, indices: list[int]) -> dict[int, list]:
    """The first TRIAL_PACKETS packets of each stream in indices, from a fresh handle on path."""
    wanted = {index: [] for index in indices}
    if not wanted:
        return wanted
    with av.open(str(path)) as container:
        streams = [container.streams[index] for index in indices]
        for count, packet in enumerate(container.demux(*streams)):
            if packet.size and packet.dts is not None and len(wanted[packet.stream.index]) < TRIAL_PACKETS:
                wanted[packet.stream.index].append(packet)
            if count > TRIAL_SCAN_LIMIT or all(len(found) >= TRIAL_PACKETS for found in wanted.values()):
                break
    return wanted


def _choose(stream, container_format: str, packets: list) -> StreamChoice | None:
    codec = codec_name(stream)
    base = {"index": stream.index, "type": stream.type, "codec": codec}
    avoid = AVOID_COPY.get(container_format, lambda _codec: False)(codec)
    if not avoid and _copy_works(stream, container_format, packets):
        return StreamChoice(action="copy", **base)
    reason = (f"few players read {codec} in {container_format}" if avoid
              else f"{container_format} cannot hold {codec}")
    if stream.type != "audio":
        return StreamChoice(action="drop", reason=f"{reason}; .mkv keeps it", **base)
    sample_format = _lossless_sample_format(stream)
    if sample_format is not None:
        for target in LOSSLESS_TARGETS.get(container_format, ()):
            target_format = _encoder_format(target, sample_format)
            if target_format and _encode_works(stream, container_format, target, target_format, None):
                return StreamChoice(action="convert", target=target, sample_format=target_format, reason=reason, **base)
    bit_rate = AAC_BITS_PER_CHANNEL * max(1, stream.codec_context.channels)
    if _encode_works(stream, container_format, LOSSY_TARGET, "fltp", bit_rate):
        return StreamChoice(action="convert", target=LOSSY_TARGET, sample_format="fltp", bit_rate=bit_rate,
                            reason=reason, **base)
    return None


def _refusal(stream, container_format: str, destination, packets: list) -> str:
    label = f"{stream.type} stream #{stream.index} ({codec_name(stream)})"
    for other, extension in SUGGESTED:
        if other != container_format and _copy_works(stream, other, packets):
            return f"{destination}: {label} cannot go into this container, copied or converted; use {extension}"
    return f"{destination}: {label} cannot go into this container, copied or converted; use --no-audio"


def _lossless_sample_format(stream) -> str | None:
    """The sample format that holds the source exactly, when the source is lossless; else None."""
    if not stream.codec.lossless:
        return None
    sample_format = stream.codec_context.format
    name = sample_format.name if sample_format is not None else ""
    if name in ("u8", "u8p", "s16", "s16p"):
        return "s16"
    if name in ("s32", "s32p") and codec_name(stream).startswith(_AT_MOST_24_BITS):
        return "s32"  # ALAC and FLAC keep 24 bits: exact for these codecs, not for 32-bit PCM
    return None


def _encoder_format(encoder: str, sample_format: str) -> str | None:
    if encoder not in av.codecs_available:
        return None
    offered = [fmt.name for fmt in av.codec.Codec(encoder, "w").audio_formats or ()]
    for candidate in (sample_format, sample_format + "p"):
        if candidate in offered:
            return candidate
    return None


def _trial(container_format: str, fill: Callable, read_back: bool = True):
    """Write a file with ``fill(output)`` into memory; the reopened file (or True when not read back),
    None when any step fails."""
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=container_format) as output:
            fill(output)
        if not read_back:
            return True
        buffer.seek(0)
        return av.open(buffer)
    except (av.FFmpegError, ValueError, OSError, KeyError, IndexError):
        return None


def _copy_works(stream, container_format: str, packets: list) -> bool:
    def fill(output):
        target = output.add_stream_from_template(stream)
        for packet in packets:
            copy = av.Packet(bytes(packet))
            copy.pts, copy.dts, copy.duration, copy.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
            copy.is_keyframe = packet.is_keyframe
            copy.stream = target
            output.mux(copy)

    if not packets:  # a pipe: nothing to mux yet, so the header and the trailer are what can be tried
        return _trial(container_format, fill, read_back=False) is not None
    back = _trial(container_format, fill)
    if back is None:
        return False
    with back:
        if not back.streams:
            return False
        copied = back.streams[0]
        same = _family(codec_name(copied)) == _family(codec_name(stream)) and _same_sound(copied, stream)
        if same and packets:
            # compared as one byte string: a demuxer may cut PCM into other packet sizes
            written = b"".join(bytes(packet) for packet in packets)
            read = b"".join(bytes(packet) for packet in back.demux(copied) if packet.size)
            length = min(len(written), len(read))
            same = length > 0 and read[:length] == written[:length]
        return same


def _family(codec: str) -> str:
    # MP4 and MOV have one tag for MPEG audio layers 1 to 3; the decoder reads the layer from each frame.
    return "mpeg audio" if codec in ("mp1", "mp2", "mp3") else codec


def _same_sound(copied, source) -> bool:
    # the sample format is left out: it is the decoder's choice (mp2 gives s16p or fltp), not the file's
    if source.type != "audio":
        return True
    a, b = copied.codec_context, source.codec_context
    return a.sample_rate == b.sample_rate and a.channels == b.channels


def add_encoded_audio(output, encoder: str, source_stream, sample_format: str, bit_rate: int | None):
    """An output stream that encodes source_stream's sound with encoder."""
    context = source_stream.codec_context
    target = output.add_stream(encoder, rate=context.sample_rate)
    target.layout = standard_layout(context.layout)
    target.format = sample_format
    if bit_rate:
        target.bit_rate = bit_rate
    target.metadata.update(source_stream.metadata)
    return target


def _encode_works(stream, container_format: str, encoder: str, sample_format: str, bit_rate: int | None) -> bool:
    if encoder not in av.codecs_available:
        return False

    def fill(output):
        target = add_encoded_audio(output, encoder, stream, sample_format, bit_rate)
        context = stream.codec_context
        layout = standard_layout(context.layout)
        samples = np.zeros((layout.nb_channels, 4096), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout.name)
        frame.sample_rate, frame.pts, frame.time_base = context.sample_rate, 0, Fraction(1, context.sample_rate)
        for packet in [*target.encode(frame), *target.encode(None)]:
            output.mux(packet)

    back = _trial(container_format, fill)
    if back is None:
        return False
    with back:
        return bool(back.streams.audio) and codec_name(back.streams.audio[0]) == encoder.replace("lib", "")


# FFmpeg's default layout for each channel count.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def standard_layout(layout) -> av.AudioLayout:
    # Some containers leave the layout unnamed ("1 channels"), which encoders refuse.
    if layout.name == f"{layout.nb_channels} channels" and layout.nb_channels in _DEFAULT_LAYOUTS:
        return av.AudioLayout(_DEFAULT_LAYOUTS[layout.nb_channels])
    return layout


class StreamCopier:
    """Muxes the planned audio and subtitle streams into the output, interleaved with the video.

    packets: the source's packets of those streams in file order (a second
    handle on the source file, or the reader's own demux for a pipe). Before
    each video packet the writer asks for every packet up to that moment, so
    the muxer never has to buffer more than a moment of either kind.
    next_packet returns None when no packet is there yet; ``finish`` is called
    once the source is exhausted.
    """

    def __init__(self, source_streams, output, plan: StreamPlan, next_packet: Callable[[], object | None],
                 close_source: Callable[[], None] = lambda: None):
        self._output = output
        self._next_packet = next_packet
        self._close_source = close_source
        self._targets: dict[int, object] = {}
        self._converted: set[int] = set()
        by_index = {stream.index: stream for stream in source_streams}
        for choice in plan.kept:
            stream = by_index[choice.index]
            if choice.action == "copy":
                target = output.add_stream_from_template(stream)
                target.metadata.update(stream.metadata)
            else:
                target = add_encoded_audio(output, choice.target, stream, choice.sample_format, choice.bit_rate)
                self._converted.add(choice.index)
            self._targets[choice.index] = target
        self._pending = None

    def copy_until(self, seconds: Fraction | None) -> None:
        """Mux every source packet that starts at or before seconds (None: all there are)."""
        while True:
            packet = self._pending if self._pending is not None else self._next_packet()
            self._pending = None
            if packet is None:
                return
            if packet.dts is None or packet.size == 0 or packet.stream.index not in self._targets:
                continue
            if seconds is not None and packet.dts * packet.time_base > seconds:
                self._pending = packet
                return
            self._mux(packet)

    def _mux(self, packet) -> None:
        target = self._targets[packet.stream.index]
        if packet.stream.index in self._converted:
            for frame in packet.decode():
                for encoded in target.encode(frame):
                    self._output.mux(encoded)
            return
        packet.stream = target
        self._output.mux(packet)

    def finish(self) -> None:
        self.copy_until(None)
        for index in self._converted:
            for encoded in self._targets[index].encode(None):
                self._output.mux(encoded)
        self._close_source()

    def close(self) -> None:
        self._close_source()


def file_packets(path, indices: list[int]) -> tuple[list, Callable[[], object | None], Callable[[], None]]:
    """A second handle on a source file: its streams, a next-packet function and a closer."""
    container = av.open(str(path))
    streams = [container.streams[index] for index in indices]
    packets: Iterator = container.demux(*streams) if streams else iter(())
    return streams, lambda: next(packets, None), container.close
