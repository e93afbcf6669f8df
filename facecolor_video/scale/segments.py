"""Segments: the unit of resume and of parallelism.

A film is cut into segments of about ``segment_seconds`` (at keyframes where the
source has them near the wanted place, else at the nearest frame). Each segment
is colorized on its own -- from a seek, with a lead-in of earlier frames and a
tail of later ones that are fed to the scene-cut detector, the global-feature
schedule and the temporal smoother but not written -- and encoded to its own
file in a work folder beside the output::

    .<output name>.segments/
        plan.json            the key (input identity + settings) and the cut list
        seg_00003.mp4        a finished segment (written to a temporary name, renamed)
        seg_00003.json       its record, written after the rename: the segment is done

The lead-in is long enough that the detector's history, the global-feature
phase (see ``FrameColorizer._fresh_global``) and the smoother's window are the
same as in a run from the start, and it starts on a batch boundary, so a
segment's frames come out as in the single-process run (bit for bit where the
kernels are deterministic). Finished segments are joined without re-encoding,
the source's audio and subtitles are copied in, and the result is renamed onto
the output; then the work folder is removed.

Segment files are always MP4, whatever the output: MP4 stores every packet's
dts and keyframe flag, which the join needs (a Matroska demuxer returns no
dts for the first packets of a B-frame stream). The output's own muxer then
writes its index (Cues in Matroska) at the join.

This module is the segment work itself; ``executors`` runs jobs in this
process, in worker processes or on Ray, ``join`` puts the files together and
``films`` drives whole films through the three.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import DecodeError
from ..film.pipeline import (
    ColorizeOptions,
    FrameColorizer,
    LostFrameFiller,
    batched,
    film_hints_for,
    film_references,
    keeps_luma_planes,
)
from ..film.scene_cuts import SceneCutDetector
from ..film.shot_features import ANCHOR_WINDOW
from ..media.fields import plan_fields
from ..media.outputs import temporary_path_for, write_json_atomic
from ..media.segment_files import scan_packets
from ..media.video import VideoFrame, VideoReader, VideoWriter
from ..model.recipe import ColorizerSettings

DEFAULT_SEGMENT_SECONDS = 20.0
# 2: segment files are MP4 whatever the output (a folder of version 1 is started afresh)
PLAN_VERSION = 2
SEGMENT_SUFFIX = ".mp4"
# Extra lead-in for the EMA smoother: its memory decays by 0.75 a frame, 0.75**40 ~ 1e-5.
EMA_LEAD_IN = 40


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Segment:
    """Frames [start, stop) of the film (presentation order) are written by this segment.

    Frames [decode_from, decode_to) go through the colorizer: the lead-in and
    the tail are overlap, seen by the detector and the smoother, not written.
    """

    index: int
    start: int
    stop: int
    start_pts: int
    stop_pts: int | None  # pts of the next segment's first frame; None for the last
    decode_from: int
    decode_from_pts: int
    decode_to: int
    at_keyframe: bool

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass
class SegmentPlan:
    source: Path
    time_base: Fraction
    frame_count: int
    segments: list[Segment]


def lead_in_frames(options: ColorizeOptions, global_every: int) -> int:
    """Frames before a segment's first frame that make its state equal to a run from the start.

    Detector history + 1 (its cut decisions), the anchors whose global
    features the first frames average (ANCHOR_WINDOW of them, global_every
    apart), the smoother radius (its window), and the EMA memory where used.
    """
    lead = SceneCutDetector().history + 1 + ANCHOR_WINDOW * max(1, global_every)
    if options.smooth == "window":
        lead += options.smooth_radius
    elif options.smooth == "ema":
        lead += EMA_LEAD_IN
    return lead


def plan_segments(
    source: str | Path,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    lead_in: int = 0,
    tail: int = 0,
    align: int = 1,
) -> SegmentPlan:
    """Cut the film into segments of about segment_seconds, at keyframes where possible.

    A boundary goes on the keyframe nearest to each multiple of segment_seconds
    when one lies within half a segment of it, else on the nearest frame (the
    worker then decodes from the keyframe before it). lead_in and tail are the
    overlap frames of each side; align rounds each segment's decode range out
    to multiples of itself (the batch size and the global-feature period), so
    its batches are the single-process run's batches.
    """
    pts_raw, keyframes, time_base = scan_packets(source)
    count = len(pts_raw)
    pts = sorted(p for p in pts_raw if p is not None)
    usable = count > 0 and len(pts) == count and len(set(pts)) == count and segment_seconds > 0
    if not usable:
        # no reliable timestamps: one segment, decoded from the start
        first = pts[0] if pts else 0
        return SegmentPlan(Path(source), time_base, count,
                           [Segment(0, 0, count, first, None, 0, first, count, True)])
    step = Fraction(segment_seconds).limit_denominator(1000) / time_base  # in pts units
    key_sorted = sorted(keyframes)
    starts = [0]
    target = pts[0] + step
    while target < pts[-1] - step / 2 + 1:
        near = [k for k in key_sorted[bisect.bisect_left(key_sorted, target - step / 2):]
                if k <= target + step / 2]
        if near:
            cut_pts = min(near, key=lambda k: abs(k - target))
        else:
            cut_pts = pts[min(count - 1, bisect.bisect_left(pts, target))]
        index = bisect.bisect_left(pts, cut_pts)
        if index > starts[-1] and index < count:
            starts.append(index)
        target += step
    bounds = starts + [count]
    align = max(1, align)
    segments = []
    for number, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        decode_from = 0 if start - lead_in <= 0 else ((start - lead_in) // align) * align
        decode_to = count if stop >= count else min(count, math.ceil((stop + tail) / align) * align)
        segments.append(Segment(
            index=number, start=start, stop=stop, start_pts=pts[start],
            stop_pts=pts[stop] if stop < count else None,
            decode_from=decode_from, decode_from_pts=pts[decode_from], decode_to=decode_to,
            at_keyframe=pts[start] in keyframes,
        ))
    return SegmentPlan(Path(source), time_base, count, segments)


# ---------------------------------------------------------------- one segment


@dataclass
class SegmentJob:
    """Everything a worker needs to make one segment file (picklable)."""

    source: str
    work_dir: str
    segment: Segment
    options: ColorizeOptions
    film: int = 0  # which film of a batch the segment belongs to

    @property
    def name(self) -> str:
        return f"seg_{self.segment.index:05d}"


def segment_path(work_dir: str | Path, index: int) -> Path:
    return Path(work_dir) / f"seg_{index:05d}{SEGMENT_SUFFIX}"


def record_path(work_dir: str | Path, index: int) -> Path:
    return Path(work_dir) / f"seg_{index:05d}.json"


def run_segment(job: SegmentJob, colorizer, work_dir: str | Path | None = None) -> dict:
    """Colorize one segment into ``work_dir`` (default: the job's) and record it; returns the record.

    The frames from decode_from to decode_to go through a fresh FrameColorizer;
    those whose pts lies in [start_pts, stop_pts) are encoded, with their pts,
    to seg_NNNNN.mp4. A frame lost to a damaged packet is filled as in
    ``colorize_file`` (``LostFrameFiller``: the previous frame repeated at its pts).
    """
    segment, options = job.segment, job.options
    work_dir = Path(work_dir or job.work_dir)
    started = time.perf_counter()
    output = segment_path(work_dir, segment.index)
    with VideoReader(job.source) as reader:
        stream = FrameColorizer(colorizer, options.smooth, options.smooth_radius,
                                reference=film_references(colorizer, options, reader),
                                hints=film_hints_for(colorizer, options, reader))
        fields = plan_fields(reader, options.deinterlace, options.codec)  # as colorize_file: same frames out
        fields.attach(reader)
        # composed as colorize_file composes the whole film, so the segments match a single run
        as_planes = keeps_luma_planes(reader, output, options) and not fields.per_field
        start_pts = segment.decode_from_pts if segment.decode_from else None
        frames = reader.frames(start_pts=start_pts, as_planes=as_planes)
        with VideoWriter(output, reader, codec=options.codec, crf=options.crf, preset=options.preset,
                         copy_audio=False, copy_subtitles=False, pix_fmt=options.pix_fmt,
                         **fields.writer_settings) as writer:
            stream.output_planes = writer.planes_format
            kept = _SegmentFrames(writer, segment)
            filler = LostFrameFiller(kept, reader.decode_error_pts)
            write = fields.writer(filler.write)
            numbered = _numbered(frames, segment.decode_from, segment.decode_to)
            for batch in batched(fields.frames(numbered), options.batch_size):
                write(stream.process(batch))
            write(stream.finish())
            if segment.stop_pts is None:  # the last segment read the film to its end
                filler.finish()
            written = kept.pts
            if not written:
                raise DecodeError(f"{job.source}: segment {segment.index} decoded no frames")
        lost = [pts for pts in reader.decode_error_pts if pts is not None and kept.holds(pts)]
    # fewer frames than packets is what a damaged end gives the single pass too: frames the decoder never
    # reported lost cannot be placed
    short = len(written) < segment.frames and reader.decode_errors
    if (len(written) != segment.frames and not short) or written[0] != segment.start_pts:
        output.unlink(missing_ok=True)
        raise DecodeError(
            f"{job.source}: segment {segment.index} gave {len(written)} frames from pts {written[0]}, "
            f"expected {segment.frames} from pts {segment.start_pts} (frames missing or without timestamps?)"
        )
    record = {
        "index": segment.index, "file": output.name, "frames": len(written),
        "first_pts": written[0], "last_pts": written[-1], "decode_errors": len(lost), "filled": len(lost),
        "frames_decoded": segment.decode_to - segment.decode_from,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(record_path(work_dir, segment.index), record)
    return record


class _SegmentFrames:
    """Writes only the frames that belong to the segment (by pts): the lead-in and the tail are overlap."""

    def __init__(self, writer: VideoWriter, segment: Segment):
        self.writer = writer
        self.segment = segment
        self.pts: list[int] = []

    def holds(self, pts: int) -> bool:
        stop = self.segment.stop_pts
        return pts >= self.segment.start_pts and (stop is None or pts < stop)

    def write(self, frame: VideoFrame) -> None:
        if frame.pts is not None and self.holds(frame.pts):
            self.writer.write(frame)
            self.pts.append(frame.pts)


def _numbered(frames: Iterable, first: int, stop: int) -> Iterator:
    # Number frames by their position in the film, and stop at the end of the tail.
    for offset, frame in enumerate(frames):
        frame.index = first + offset
        if frame.index >= stop:
            return
        yield frame


def commit_segment(work_dir: str | Path, record: dict, data: bytes) -> None:
    """Write a segment made elsewhere (a Ray worker) into the work folder: file first, record last."""
    work_dir = Path(work_dir)
    target = work_dir / record["file"]
    temporary = temporary_path_for(target)
    temporary.write_bytes(data)
    os.replace(temporary, target)
    write_json_atomic(record_path(work_dir, record["index"]), record)


# ---------------------------------------------------------------- the work folder


def work_folder(destination: str | Path) -> Path:
    destination = Path(destination)
    return destination.with_name(f".{destination.name}.segments")


def input_identity(source: str | Path) -> dict:
    """Size, mtime and a hash of the first MiB: enough to tell a different or changed input."""
    source = Path(source)
    stat = source.stat()
    with open(source, "rb") as handle:
        head = hashlib.sha256(handle.read(1 << 20)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


def work_key(source, colorizer: ColorizerSettings | Mapping, options: ColorizeOptions, segment_seconds: float) -> str:
    """Hash of what the segment files depend on: the input and every setting that changes pixels.

    colorizer: the recipe (or a mapping of some of its fields, the rest default); all its fields are
    hashed, as text, so the key of a run does not depend on which settings were spelled out.
    """
    settings = ColorizerSettings.of(colorizer).identity()
    encoded = {k: getattr(options, k) for k in ("batch_size", "smooth", "smooth_radius", "codec", "crf", "preset",
                                               "deinterlace", "exact_lab", "pix_fmt")}
    encoded["references"] = reference_identity(options)
    if options.hint is not None or options.hints is not None:
        from ..film.hints import hint_identity

        encoded["hints"] = hint_identity(options.hint, options.hints)
    material = {"version": PLAN_VERSION, "input": input_identity(source), "colorizer": settings,
                "encode": encoded, "segment_seconds": float(segment_seconds)}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def reference_identity(options: ColorizeOptions) -> list:
    """What the colours of a run with references depend on: each reference file's identity and start."""
    from ..film.reference import reference_images

    entries = reference_images(options.reference, options.references)
    return [[start, str(path), input_identity(path)] for start, path in entries] + [options.reference_all_shots]


def prepare_work_folder(folder: Path, key: str, resume: bool) -> set[int]:
    """Make the work folder ready; returns the indices of segments already finished.

    A folder made for another input or other settings (its key differs), or
    any folder when resume is False, is emptied. Leftover temporary files of an
    interrupted run are removed.
    """
    plan_file = folder / "plan.json"
    if folder.exists():
        same = False
        if resume and plan_file.is_file():
            try:
                same = json.loads(plan_file.read_text()).get("key") == key
            except (OSError, ValueError):
                same = False
        if not same:
            shutil.rmtree(folder)
    folder.mkdir(exist_ok=True)
    for leftover in folder.glob(".*"):
        leftover.unlink(missing_ok=True)
    done = set()
    for record_file in folder.glob("seg_*.json"):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            continue
        if (folder / record.get("file", "")).is_file():
            done.add(int(record["index"]))
    return done

