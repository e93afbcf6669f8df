"""Carrying the source's audio and subtitles into an output: what to copy or convert, and the copier."""

from __future__ import annotations

from .reader import VideoReader
from .streams import TRIAL_PACKETS, StreamCopier, StreamPlan, file_packets, plan_streams, read_first_packets


def plan_for(reader: VideoReader, container_format: str, destination, audio: bool = True,
             subtitles: bool = True) -> StreamPlan:
    """The stream plan for writing reader's audio (and subtitles) into container_format."""
    streams = ([*reader.source_streams("audio")] if audio else []) + \
              ([*reader.source_streams("subtitle")] if subtitles else [])
    indices = [stream.index for stream in streams]
    packets = reader.peek_packets(indices, TRIAL_PACKETS) if reader.is_pipe else read_first_packets(reader.path, indices)
    plan = plan_streams(streams, container_format, destination, packets)
    if reader.is_pipe and plan.kept:
        reader.keep_side_packets = True  # before decoding starts: the one demux must keep them
    return plan


def copier_for(reader: VideoReader, output, plan: StreamPlan) -> StreamCopier:
    """A StreamCopier fed from a second handle on the source file, or from the reader's own demux (a pipe)."""
    indices = [choice.index for choice in plan.kept]
    if reader.is_pipe:
        return StreamCopier(reader.source_streams(), output, plan, reader.next_side_packet)
    streams, next_packet, close = file_packets(reader.path, indices)
    return StreamCopier(streams, output, plan, next_packet, close)
