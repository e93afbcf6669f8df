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

Where segments run: in this process (``workers=1``), in N spawned processes on
this machine, or as Ray tasks (``distributed.py``).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from ..errors import DecodeError, EncodeError, FacecolorError
from ..film.pipeline import (
    ColorizeOptions,
    ColorizeReport,
    FrameColorizer,
    batched,
    colorize_file,
    keeps_luma_planes,
)
from ..film.temporal import SceneCutDetector
from ..media.outputs import VIDEO_CONTAINERS, check_output_path
from ..media.video import VideoReader, VideoWriter, _PacketCopier, _temporary_path

DEFAULT_SEGMENT_SECONDS = 20.0
PLAN_VERSION = 1
# Extra lead-in for the EMA smoother: its memory decays by 0.75 a frame, 0.75**40 ~ 1e-5.
EMA_LEAD_IN = 40
# Settings of the Colorizer that workers rebuild it from (all keyword arguments).
COLORIZER_KEYS = ("model", "device", "precision", "render_size", "global_every", "chroma_gain", "backbone_weights")


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


def lead_in_frames(options: ColorizeOptions, global_every: int) -> int:
    """Frames before a segment's first frame that make its state equal to a run from the start.

    Detector history + 1 (its cut decisions), global_every (the last global
    features before the segment), the smoother radius (its window), and the
    EMA memory where used.
    """
    lead = SceneCutDetector().history + 1 + max(1, global_every)
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
    suffix: str
    segment: Segment
    options: ColorizeOptions
    film: int = 0  # which film of a batch the segment belongs to

    @property
    def name(self) -> str:
        return f"seg_{self.segment.index:05d}"


def segment_path(work_dir: str | Path, index: int, suffix: str) -> Path:
    return Path(work_dir) / f"seg_{index:05d}{suffix}"


def record_path(work_dir: str | Path, index: int) -> Path:
    return Path(work_dir) / f"seg_{index:05d}.json"


def run_segment(job: SegmentJob, colorizer, work_dir: str | Path | None = None) -> dict:
    """Colorize one segment into ``work_dir`` (default: the job's) and record it; returns the record.

    The frames from decode_from to decode_to go through a fresh FrameColorizer;
    those from start to stop are encoded, with their pts, to seg_NNNNN<suffix>.
    """
    segment, options = job.segment, job.options
    work_dir = Path(work_dir or job.work_dir)
    started = time.perf_counter()
    output = segment_path(work_dir, segment.index, job.suffix)
    with VideoReader(job.source) as reader:
        stream = FrameColorizer(colorizer, options.smooth, options.smooth_radius)
        # composed as colorize_file composes the whole film, so the segments match a single run
        as_planes = keeps_luma_planes(reader, output, options)
        start_pts = segment.decode_from_pts if segment.decode_from else None
        frames = reader.frames(start_pts=start_pts, as_planes=as_planes)
        written: list[int] = []
        with VideoWriter(output, reader, codec=options.codec, crf=options.crf, preset=options.preset,
                         copy_audio=False, copy_subtitles=False, pix_fmt=options.pix_fmt) as writer:
            stream.output_planes = writer.planes_format

            def write(done):
                for frame in done:
                    if segment.start <= frame.index < segment.stop:
                        writer.write(frame)
                        written.append(frame.pts)

            for batch in batched(_numbered(frames, segment.decode_from, segment.decode_to), options.batch_size):
                write(stream.process(batch))
            write(stream.finish())
            if not written:
                raise DecodeError(f"{job.source}: segment {segment.index} decoded no frames")
        decode_errors = reader.decode_errors
    if len(written) != segment.frames or written[0] != segment.start_pts:
        output.unlink(missing_ok=True)
        raise DecodeError(
            f"{job.source}: segment {segment.index} gave {len(written)} frames from pts {written[0]}, "
            f"expected {segment.frames} from pts {segment.start_pts} (frames missing or without timestamps?)"
        )
    record = {
        "index": segment.index, "file": output.name, "frames": len(written),
        "first_pts": written[0], "last_pts": written[-1], "decode_errors": decode_errors,
        "frames_decoded": segment.decode_to - segment.decode_from,
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write_json_atomic(record_path(work_dir, segment.index), record)
    return record


def _numbered(frames: Iterable, first: int, stop: int) -> Iterator:
    # Number frames by their position in the film, and stop at the end of the tail.
    for offset, frame in enumerate(frames):
        frame.index = first + offset
        if frame.index >= stop:
            return
        yield frame


def _write_json_atomic(path: Path, value) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(value, indent=1, default=str))
    os.replace(temporary, path)


def commit_segment(work_dir: str | Path, record: dict, data: bytes) -> None:
    """Write a segment made elsewhere (a Ray worker) into the work folder: file first, record last."""
    work_dir = Path(work_dir)
    target = work_dir / record["file"]
    temporary = _temporary_path(target)
    temporary.write_bytes(data)
    os.replace(temporary, target)
    _write_json_atomic(record_path(work_dir, record["index"]), record)


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


def work_key(source, colorizer_settings: dict, options: ColorizeOptions, segment_seconds: float) -> str:
    """Hash of what the segment files depend on: the input and every setting that changes pixels."""
    settings = {k: (str(v) if v is not None else None) for k, v in sorted(colorizer_settings.items())}
    encoded = {k: getattr(options, k) for k in ("batch_size", "smooth", "smooth_radius", "codec", "crf", "preset")}
    material = {"version": PLAN_VERSION, "input": input_identity(source), "colorizer": settings,
                "encode": encoded, "segment_seconds": float(segment_seconds)}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


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


# ---------------------------------------------------------------- join


def join_segments(
    source: str | Path, files: list[Path], destination: str | Path, audio: bool = True, rotation: int = 0,
) -> list[str]:
    """Remux the segment files, in order, into destination with the source's audio/subtitles copied.

    No video re-encoding. Written to a temporary name and renamed. Returns notices.
    """
    destination = Path(destination)
    temporary = _temporary_path(destination)
    notices: list[str] = []
    output = copier = None
    try:
        output = av.open(str(temporary), "w", format=VIDEO_CONTAINERS[destination.suffix.lower()])
        with av.open(str(files[0])) as first:
            template = first.streams.video[0]
            video = output.add_stream_from_template(template)
            video.time_base = template.time_base
        if rotation:
            video.set_display_rotation(rotation)
        if audio:
            copier = _PacketCopier(Path(source), output, True, True, notices)
        last_dts: Fraction | None = None
        for file in files:
            with av.open(str(file)) as segment:
                for packet in segment.demux(segment.streams.video[0]):
                    if packet.size == 0 or packet.dts is None:
                        continue
                    last_dts = _monotonic_dts(packet, last_dts, file)
                    if copier is not None:
                        copier.copy_until(packet.dts * packet.time_base)
                    packet.stream = video
                    output.mux(packet)
        if copier is not None:
            copier.finish()
        output.close()
    except (av.FFmpegError, OSError) as error:
        for closable in (copier, output):
            if closable is not None:
                try:
                    closable.close()
                except (av.FFmpegError, OSError):
                    pass
        temporary.unlink(missing_ok=True)
        raise EncodeError(f"{destination}: joining the segments failed ({error})") from None
    except BaseException:
        for closable in (copier, output):
            if closable is not None:
                try:
                    closable.close()
                except (av.FFmpegError, OSError):
                    pass
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, destination)
    return notices


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


# ---------------------------------------------------------------- running segments


def colorizer_settings_of(settings: dict) -> dict:
    """The Colorizer keyword arguments in settings, with the defaults filled in (so equal settings hash equal)."""
    import inspect

    from ..model.colorizer import Colorizer

    defaults = {name: parameter.default for name, parameter in inspect.signature(Colorizer).parameters.items()
                if name in COLORIZER_KEYS}
    return {**defaults, **{k: v for k, v in settings.items() if k in COLORIZER_KEYS}}


def run_jobs(
    jobs: list[SegmentJob],
    colorizer_settings: dict,
    workers: int = 1,
    ray_address: str | None = None,
    colorizer=None,
    on_done: Callable[[SegmentJob, dict], None] | None = None,
) -> None:
    """Run segment jobs in this process, in ``workers`` spawned processes, or on Ray; on_done after each."""
    on_done = on_done or (lambda job, record: None)
    if not jobs:
        return
    if ray_address:
        from .executors import run_jobs_ray

        run_jobs_ray(jobs, colorizer_settings, ray_address, on_done)
    elif workers <= 1:
        if colorizer is None:
            from ..model.colorizer import Colorizer

            colorizer = Colorizer(**colorizer_settings)
        for job in jobs:
            on_done(job, run_segment(job, colorizer))
    else:
        _run_jobs_processes(jobs, colorizer_settings, workers, on_done)


_WORKER_COLORIZER = None


def _init_worker(colorizer_settings: dict, threads: int) -> None:
    import signal

    import torch

    from ..model.colorizer import Colorizer

    # Ctrl-C goes to the whole process group: the parent decides, workers just stop when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    global _WORKER_COLORIZER
    _WORKER_COLORIZER = Colorizer(**colorizer_settings)


def _worker_run(job: SegmentJob) -> dict:
    return run_segment(job, _WORKER_COLORIZER)


def _run_jobs_processes(jobs, colorizer_settings, workers, on_done) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = min(workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(colorizer_settings, threads))
    try:
        pending = {executor.submit(_worker_run, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                on_done(job, future.result())
    except BaseException:
        # an error, Ctrl-C or SIGTERM: stop the workers we started; finished segments stay recorded
        processes = list((executor._processes or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        raise
    executor.shutdown(wait=True)


# ---------------------------------------------------------------- films


@dataclass
class SegmentedReport(ColorizeReport):
    segments: int = 0
    segments_skipped: int = 0  # finished by an earlier, interrupted run
    segments_run: int = 0
    frames_decoded: int = 0  # including the overlap frames


@dataclass
class _Film:
    source: Path
    destination: Path
    folder: Path
    plan: SegmentPlan
    report: SegmentedReport
    audio: bool
    rotation: int
    remaining: set[int] = field(default_factory=set)
    started: float = 0.0


def _prepare_film(source, destination, colorizer_settings, options, segment_seconds, resume, film_number):
    source, destination = Path(source), Path(destination)
    check_output_path(source, destination, overwrite=options.overwrite)
    global_every = colorizer_settings.get("global_every") or 1
    with VideoReader(source) as reader:
        is_image, rotation = reader.is_image, reader.rotation
    if is_image:
        return None
    align = math.lcm(max(1, options.batch_size), max(1, global_every))
    tail = options.smooth_radius if options.smooth == "window" else 0
    plan = plan_segments(source, segment_seconds, lead_in_frames(options, global_every), tail, align)
    folder = work_folder(destination)
    key = work_key(source, colorizer_settings, options, segment_seconds)
    done = prepare_work_folder(folder, key, resume)
    _write_json_atomic(folder / "plan.json", {
        "key": key, "source": str(source), "destination": str(destination),
        "segments": [asdict(s) for s in plan.segments], "time_base": str(plan.time_base),
    })
    done &= {s.index for s in plan.segments}
    report = SegmentedReport(source, destination, segments=len(plan.segments), segments_skipped=len(done))
    report.frames_read = sum(plan.segments[i].frames for i in done)
    film = _Film(source, destination, folder, plan, report, options.audio, rotation,
                 remaining={s.index for s in plan.segments} - done, started=time.perf_counter())
    jobs = [SegmentJob(str(source), str(folder), destination.suffix.lower(), s, options, film_number)
            for s in plan.segments if s.index in film.remaining]
    return film, jobs


def _finish_film(film: _Film) -> SegmentedReport:
    suffix = film.destination.suffix.lower()
    files = [segment_path(film.folder, s.index, suffix) for s in film.plan.segments]
    records = [json.loads(record_path(film.folder, s.index).read_text()) for s in film.plan.segments]
    film.report.frames_written = sum(r["frames"] for r in records)
    film.report.decode_errors = 0  # the overlap is decoded twice: count per segment instead
    film.report.notices += join_segments(film.source, files, film.destination, film.audio, film.rotation)
    shutil.rmtree(film.folder, ignore_errors=True)
    film.report.seconds = time.perf_counter() - film.started
    return film.report


def colorize_films(
    films: list[tuple[Path, Path]],
    colorizer_settings: dict,
    options: ColorizeOptions | None = None,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    workers: int = 1,
    resume: bool = False,
    ray_address: str | None = None,
    colorizer=None,
    progress: Callable[[int], None] | None = None,
    on_segment: Callable[[SegmentJob, dict], None] | None = None,
    on_film: Callable[[SegmentedReport], None] | None = None,
    on_error: Callable[[Path, Exception], None] | None = None,
) -> list[SegmentedReport]:
    """Colorize several films segment by segment, all their segments sharing one pool of workers.

    Each film is joined as soon as its last segment is done. Image inputs are
    colorized directly. progress gets the frames of each finished segment;
    on_segment the job and its record; on_film each film's report. on_error:
    a film that cannot start (bad input, output exists) is passed to it and
    skipped, instead of stopping everything.
    """
    options = options or ColorizeOptions()
    colorizer_settings = colorizer_settings_of(colorizer_settings)
    prepared: dict[int, _Film] = {}
    jobs: list[SegmentJob] = []
    reports: list[SegmentedReport] = []
    for number, (source, destination) in enumerate(films):
        try:
            made = _prepare_film(source, destination, colorizer_settings, options, segment_seconds, resume, number)
        except FacecolorError as error:
            if on_error is None:
                raise
            on_error(Path(source), error)
            continue
        if made is None:  # an image: one frame, nothing to segment
            if colorizer is None:
                from ..model.colorizer import Colorizer

                colorizer = Colorizer(**colorizer_settings)
            report = colorize_file(source, destination, colorizer, options, progress=progress)
            reports.append(report)
            if on_film is not None:
                on_film(report)
            continue
        film, film_jobs = made
        prepared[number] = film
        jobs += film_jobs
        if progress is not None and film.report.frames_read:
            progress(film.report.frames_read)

    def finished(job: SegmentJob, record: dict) -> None:
        film = prepared[job.film]
        film.remaining.discard(job.segment.index)
        film.report.segments_run += 1
        film.report.frames_read += record["frames"]
        film.report.frames_decoded += record["frames_decoded"]
        if record.get("decode_errors"):
            film.report.notices.append(f"{film.source}: segment {record['index']}: {record['decode_errors']} "
                                       "damaged packet(s) could not be decoded")
        if progress is not None:
            progress(record["frames"])
        if on_segment is not None:
            on_segment(job, record)
        if not film.remaining:
            done_report = _finish_film(film)
            if on_film is not None:
                on_film(done_report)

    for film in prepared.values():
        if not film.remaining:  # every segment was done before: join only
            report = _finish_film(film)
            if on_film is not None:
                on_film(report)
    run_jobs(jobs, colorizer_settings, workers, ray_address, colorizer, finished)
    reports += [film.report for film in prepared.values()]
    return reports


def colorize_segmented(
    source: str | Path,
    destination: str | Path,
    colorizer_settings: dict | None = None,
    options: ColorizeOptions | None = None,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    workers: int = 1,
    resume: bool = False,
    ray_address: str | None = None,
    colorizer=None,
    progress: Callable[[int], None] | None = None,
    on_segment: Callable[[SegmentJob, dict], None] | None = None,
) -> ColorizeReport:
    """Colorize one film segment by segment (resumable, parallel); same frames and pts as colorize_file.

    colorizer_settings: keyword arguments of Colorizer (workers build their own);
    colorizer: an already built one, used when the segments run in this process.
    resume: keep the segments a previous run of the same input and settings finished.
    """
    return colorize_films([(Path(source), Path(destination))], colorizer_settings or {}, options, segment_seconds,
                          workers, resume, ray_address, colorizer, progress, on_segment)[0]


def segment_files_left(destination: str | Path) -> int:
    """How many finished segments an interrupted run left for --resume (0 when none)."""
    folder = work_folder(destination)
    return len(list(folder.glob("seg_*.json"))) if folder.is_dir() else 0


__all__ = [
    "DEFAULT_SEGMENT_SECONDS", "Segment", "SegmentJob", "SegmentPlan", "SegmentedReport", "colorize_films",
    "colorize_segmented", "join_segments", "lead_in_frames", "plan_segments", "run_segment", "scan_packets",
    "work_folder", "work_key",
]
