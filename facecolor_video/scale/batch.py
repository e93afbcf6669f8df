"""Many inputs in one command: plan each output name, run them with one loaded model.

What happens is told through callbacks; printing it is the command line's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from ..errors import FacecolorError, OutputError, UsageError
from ..film.pipeline import ColorizeOptions, ColorizeReport, colorize_file
from ..media.outputs import VIDEO_CONTAINERS
from ..media.preflight import preflight
from ..media.video import VideoReader
from ..model.recipe import ColorizerSettings


def plan_outputs(paths: tuple[Path, ...], output_dir: Path | None, output_format: str | None) -> list[tuple[Path, Path]]:
    """(input, output) pairs: ``IN OUT``, or every path into ``output_dir`` with the same stem."""
    if output_dir is None:
        if len(paths) != 2:
            raise UsageError("give IN and OUT, or several inputs with --output-dir DIR")
        if output_format and str(paths[1]) != "-":
            raise UsageError("--format goes with --output-dir, or with - (stdout) as OUT")
        return [(paths[0], paths[1])]
    if not output_dir.is_dir():
        raise OutputError(f"{output_dir}: output folder does not exist")
    jobs = []
    for source in paths:
        suffix = "." + output_format.lstrip(".").lower() if output_format else source.suffix
        jobs.append((source, output_dir / (source.stem + suffix)))
    seen: dict[Path, Path] = {}
    for source, destination in jobs:
        if destination in seen:
            raise OutputError(f"{destination}: both {seen[destination]} and {source} would be written there")
        seen[destination] = source
    return jobs


def colorize_many(
    jobs: list[tuple[Path, Path]],
    make_colorizer: Callable,
    options: ColorizeOptions,
    on_start: Callable[[Path, VideoReader], None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_film: Callable[[ColorizeReport], None] | None = None,
    on_error: Callable[[Path, FacecolorError], None] | None = None,
) -> int:
    """Run every job with one model, loaded when the first input proves usable. Returns the failure count.

    on_start gets each input with its opened reader, progress the frames
    written, on_film each finished job's report. A bad input among several is
    passed to on_error and skipped, and the others still run; a single job
    raises its error.
    """
    colorizer = None
    failures = 0
    for source, destination in jobs:
        try:
            # check the paths and open the input before the (slow) model load
            # and audio that fits the output in no way; stdin and stdout are left to the run itself
            preflight(source, destination, overwrite=options.overwrite, audio=options.audio)
            if colorizer is None:
                colorizer = make_colorizer()
            report = colorize_file(source, destination, colorizer, options, progress=progress,
                                   on_start=None if on_start is None else partial(on_start, source))
        except FacecolorError as error:
            if len(jobs) == 1:
                raise
            if on_error is not None:
                on_error(source, error)
            failures += 1
            continue
        if on_film is not None:
            on_film(report)
    return failures


# Inputs the batch command picks from a folder.
VIDEO_INPUT_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts",
                                    ".wmv", ".flv", ".ogv", ".dv", ".3gp"})


def archive_jobs(dir_or_list: Path, output_dir: Path, output_format: str | None = None) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(input, output) pairs for the batch command, and the inputs skipped because their output exists.

    dir_or_list: a folder (its video files, sorted, not recursive) or a text file
    with one path per line (blank lines and # comments ignored; relative paths
    are taken from the list's folder). Outputs keep the input's extension when it
    is one we write (mp4, m4v, mov, mkv), else get .mp4, or output_format.
    """
    dir_or_list = Path(dir_or_list)
    if dir_or_list.is_dir():
        sources = sorted(p for p in dir_or_list.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_INPUT_EXTENSIONS)
    elif dir_or_list.is_file():
        sources = []
        for line in dir_or_list.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line).expanduser()
                sources.append(path if path.is_absolute() else dir_or_list.parent / path)
    else:
        raise OutputError(f"{dir_or_list}: neither a folder nor a list file")
    if not output_dir.is_dir():
        raise OutputError(f"{output_dir}: output folder does not exist")
    jobs, skipped, seen = [], [], {}
    for source in sources:
        if output_format:
            suffix = "." + output_format.lstrip(".").lower()
        else:
            suffix = source.suffix.lower() if source.suffix.lower() in VIDEO_CONTAINERS else ".mp4"
        destination = output_dir / (source.stem + suffix)
        if destination in seen:
            raise OutputError(f"{destination}: both {seen[destination]} and {source} would be written there")
        seen[destination] = source
        if destination.exists():
            skipped.append(source)
        else:
            jobs.append((source, destination))
    return jobs, skipped


def colorize_many_segmented(
    jobs: list[tuple[Path, Path]],
    colorizer_settings: ColorizerSettings | Mapping,
    options: ColorizeOptions,
    progress: Callable[[int], None] | None = None,
    on_film: Callable[[ColorizeReport], None] | None = None,
    on_error: Callable[[Path, Exception], None] | None = None,
    **run_options,
) -> int:
    """Like colorize_many, segment by segment (see films.colorize_films: segment_seconds, workers,
    resume, ray_address): resumable, and run in parallel processes or on Ray. Returns the failure count.
    """
    from .films import colorize_films

    failures = 0

    def failed(source, error) -> None:
        nonlocal failures
        if len(jobs) == 1:
            raise error
        if on_error is not None:
            on_error(source, error)
        failures += 1

    colorize_films(jobs, colorizer_settings, options, progress=progress, on_film=on_film, on_error=failed,
                   **run_options)
    return failures
