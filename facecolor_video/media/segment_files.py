"""Segment files at the packet level: where a film can be cut, and joining the pieces back.

Neither step decodes: the cut points are the keyframes the packets declare,
and the join remuxes the encoded packets with their timestamps.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av

from ..errors import EncodeError
from .outputs import MUXER_OPTIONS, VIDEO_CONTAINERS, temporary_path_for
from .reader import VideoReader
from .remux import copier_for, plan_for


def scan_packets(path: str | Path) -> tuple[list[int | None], set[int], Fraction]:
    """pts of every video packet (file order) and the pts of the keyframes; no decoding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts_list, keyframes = [], set()
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's final flush packet
            pts_list.append(packet.pts)
            if packet.is_keyframe and packet.pts is not None:
                keyframes.add(packet.pts)
        return pts_list, keyframes, Fraction(stream.time_base)


def join_segments(
    source: str | Path, files: list[Path], destination: str | Path, audio: bool = True, rotation: int = 0,
) -> list[str]:
    """Remux the segment files, in order, into destination with the source's audio/subtitles as planned.

    Every video packet is kept with its pts, dts and keyframe flag, so the
    output's muxer indexes it (Cues in Matroska, stss in MP4). Audio and
    subtitles follow ``media.streams``: copied where the container takes
    them, converted where it does not. Written to a temporary name and
    renamed. Returns notices.
    """
    destination = Path(destination)
    container_format = VIDEO_CONTAINERS[destination.suffix.lower()]
    temporary = temporary_path_for(destination)
    output = copier = None
    try:
        with VideoReader(source) as reader:
            plan = plan_for(reader, container_format, destination, audio, audio)
            output = av.open(str(temporary), "w", format=container_format,
                             options=MUXER_OPTIONS.get(container_format))
            with av.open(str(files[0])) as first:
                template = first.streams.video[0]
                video = output.add_stream_from_template(template)
                video.time_base = template.time_base
            if rotation:
                video.set_display_rotation(rotation)
            if plan.kept:
                copier = copier_for(reader, output, plan)
            last_dts: Fraction | None = None
            for file in files:
                with av.open(str(file)) as segment:
                    for packet in segment.demux(segment.streams.video[0]):
                        if packet.size == 0:
                            continue  # the demuxer's final flush packet
                        if packet.dts is None:
                            raise EncodeError(f"{file}: a video packet without dts; the segment cannot be joined")
                        last_dts = _monotonic_dts(packet, last_dts, file)
                        if copier is not None:
                            copier.copy_until(last_dts)
                        packet.stream = video
                        output.mux(packet)
            if copier is not None:
                copier.finish()
            output.close()
    except (av.FFmpegError, OSError) as error:
        _discard(copier, output, temporary)
        raise EncodeError(f"{destination}: joining the segments failed ({error})") from None
    except BaseException:
        _discard(copier, output, temporary)
        raise
    os.replace(temporary, destination)
    note = plan.note(destination)
    return [note] if note else []


def _discard(copier, output, temporary: Path) -> None:
    for closable in (copier, output):
        if closable is not None:
            try:
                closable.close()
            except (av.FFmpegError, OSError):
                pass  # the file is being thrown away
    temporary.unlink(missing_ok=True)


def _monotonic_dts(packet, last_dts: Fraction | None, file: Path) -> Fraction:
    # Each segment's encoder starts its dts a reorder delay before its first pts;
    # where that falls on or before the previous segment's last dts, move it up.
    dts = packet.dts * packet.time_base
    if last_dts is not None and dts <= last_dts:
        fixed = math.floor(last_dts / packet.time_base) + 1
        if packet.pts is not None and fixed > packet.pts:
            raise EncodeError(f"{file}: its timestamps overlap the previous segment's")
        packet.dts = fixed
        dts = fixed * packet.time_base
    return dts
