"""Whole films segment by segment: plan, run the segments (``executors``), join (``join``).

Resumable and parallel: see ``segments`` for the work folder and what makes a
segment equal to the single-process run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FacecolorError, OutputError
from ..film.pipeline import ColorizeOptions, ColorizeReport, colorize_file
from ..media.outputs import OutputLock, write_json_atomic
from ..media.preflight import preflight
from ..media.segment_files import join_segments
from ..model.recipe import ColorizerSettings
from .executors import run_jobs
from .segments import (
    DEFAULT_SEGMENT_SECONDS,
    SegmentJob,
    SegmentPlan,
    lead_in_frames,
    plan_segments,
    prepare_work_folder,
    record_path,
    segment_path,
    work_folder,
    work_key,
)

log = logging.getLogger("facecolor_video")  # warnings the command line prints as they come


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
    lock: OutputLock | None = None


def _prepare_film(source, destination, recipe: ColorizerSettings, options, segment_seconds, resume, film_number):
    source, destination = Path(source), Path(destination)

    def one_pass_only(source: Path, destination: Path) -> None:
        if "-" in (str(source), str(destination)):
            raise OutputError(f"{source}: stdin and stdout are read and written once; leave out --workers, "
                              "--resume and --ray")
        if options.deinterlace in ("field", "ivtc"):
            # segments are cut by the source's frames; these modes make other frames
            raise OutputError(f"{source}: --deinterlace field and --ivtc run in one pass; leave out --workers, "
                              "--resume and --ray")

    # audio that fits the output in no way stops here, before any work; the segments and the joined
    # film are on disk together before the segments go
    checked = preflight(source, destination, overwrite=options.overwrite, audio=options.audio, crf=options.crf,
                        copies=2, rotation=True, before_open=one_pass_only)
    if checked.space_warning:
        log.warning(checked.space_warning)
    if checked.is_image:
        return None
    global_every = recipe.global_every or 1
    rotation = checked.rotation
    align = math.lcm(max(1, options.batch_size), max(1, global_every))
    # at least one frame of tail: a frame lost at a segment's end is only known lost when a later one decodes
    # and the next global-feature anchor: the frames before it interpolate towards it
    tail = max(1, options.smooth_radius if options.smooth == "window" else 0) + max(1, global_every)
    plan = plan_segments(source, segment_seconds, lead_in_frames(options, global_every), tail, align)
    folder = work_folder(destination)
    key = work_key(source, recipe, options, segment_seconds)
    # before the work folder is touched: a second run of the same output must not empty the first's
    lock = OutputLock(destination).acquire()
    try:
        done = prepare_work_folder(folder, key, resume)
    except BaseException:
        lock.release()
        raise
    write_json_atomic(folder / "plan.json", {
        "key": key, "source": str(source), "destination": str(destination),
        "segments": [asdict(s) for s in plan.segments], "time_base": str(plan.time_base),
    })
    done &= {s.index for s in plan.segments}
    report = SegmentedReport(source, destination, segments=len(plan.segments), segments_skipped=len(done))
    report.frames_read = sum(plan.segments[i].frames for i in done)
    film = _Film(source, destination, folder, plan, report, options.audio, rotation,
                 remaining={s.index for s in plan.segments} - done, started=time.perf_counter(), lock=lock)
    jobs = [SegmentJob(str(source), str(folder), s, options, film_number)
            for s in plan.segments if s.index in film.remaining]
    return film, jobs


def _finish_film(film: _Film) -> SegmentedReport:
    files = [segment_path(film.folder, s.index) for s in film.plan.segments]
    records = [json.loads(record_path(film.folder, s.index).read_text()) for s in film.plan.segments]
    film.report.frames_written = sum(r["frames"] for r in records)
    # counted within each segment's own frames (the overlap is decoded twice)
    film.report.decode_errors = sum(r.get("decode_errors", 0) for r in records)
    if film.report.decode_errors:
        film.report.notices.append(
            f"{film.source}: {film.report.decode_errors} damaged packet(s) could not be decoded; "
            f"{sum(r.get('filled', 0) for r in records)} lost frame(s) filled by repeating the previous frame, "
            "so the length and audio sync are kept")
    film.report.notices += join_segments(film.source, files, film.destination, film.audio, film.rotation)
    shutil.rmtree(film.folder, ignore_errors=True)
    film.lock.release()
    film.report.seconds = time.perf_counter() - film.started
    return film.report


def colorize_films(
    films: list[tuple[Path, Path]],
    colorizer_settings: ColorizerSettings | Mapping | None,
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
    skipped, instead of stopping everything. colorizer_settings: the recipe workers build their
    colorizer from (a mapping of some of its fields will do: the rest default).
    """
    options = options or ColorizeOptions()
    recipe = ColorizerSettings.of(colorizer_settings)
    prepared: dict[int, _Film] = {}
    jobs: list[SegmentJob] = []
    reports: list[SegmentedReport] = []
    for number, (source, destination) in enumerate(films):
        try:
            made = _prepare_film(source, destination, recipe, options, segment_seconds, resume, number)
        except FacecolorError as error:
            if on_error is None:
                raise
            on_error(Path(source), error)
            continue
        if made is None:  # an image: one frame, nothing to segment
            if colorizer is None:
                colorizer = recipe.build()
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
        if progress is not None:
            progress(record["frames"])
        if on_segment is not None:
            on_segment(job, record)
        if not film.remaining:
            done_report = _finish_film(film)
            if on_film is not None:
                on_film(done_report)

    try:
        for film in prepared.values():
            if not film.remaining:  # every segment was done before: join only
                report = _finish_film(film)
                if on_film is not None:
                    on_film(report)
        run_jobs(jobs, recipe, workers, ray_address, colorizer, finished, resuming=resume)
    finally:  # a run that stops early lets go of its outputs at once (a finished film already has)
        for film in prepared.values():
            film.lock.release()
    reports += [film.report for film in prepared.values()]
    return reports


def colorize_segmented(
    source: str | Path,
    destination: str | Path,
    colorizer_settings: ColorizerSettings | Mapping | None = None,
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

    colorizer_settings: the Colorizer's recipe, or a mapping of some of its fields (workers build their own);
    colorizer: an already built one, used when the segments run in this process.
    resume: keep the segments a previous run of the same input and settings finished.
    """
    return colorize_films([(Path(source), Path(destination))], colorizer_settings, options, segment_seconds,
                          workers, resume, ray_address, colorizer, progress, on_segment)[0]


def segment_files_left(destination: str | Path) -> int:
    """How many finished segments an interrupted run left for --resume (0 when none)."""
    folder = work_folder(destination)
    return len(list(folder.glob("seg_*.json"))) if folder.is_dir() else 0


__all__ = ["SegmentedReport", "colorize_films", "colorize_segmented", "segment_files_left"]
