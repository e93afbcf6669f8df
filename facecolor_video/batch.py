"""Many inputs in one command: plan each output name, run them with one loaded model."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from .errors import FacecolorError, OutputError
from .pipeline import ColorizeOptions, colorize_file


def plan_outputs(paths: tuple[Path, ...], output_dir: Path | None, output_format: str | None) -> list[tuple[Path, Path]]:
    """(input, output) pairs: ``IN OUT``, or every path into ``output_dir`` with the same stem."""
    if output_dir is None:
        if len(paths) != 2:
            raise click.UsageError("give IN and OUT, or several inputs with --output-dir DIR")
        if output_format:
            raise click.UsageError("--format goes with --output-dir")
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


def colorize_many(jobs: list[tuple[Path, Path]], make_colorizer: Callable, options: ColorizeOptions, quiet: bool) -> int:
    """Run every job; a bad input is reported and skipped, the others still run. Returns the failure count."""
    from tqdm import tqdm

    colorizer = None
    failures = 0
    for source, destination in jobs:
        bar = None

        def start(reader, source=source):
            nonlocal bar
            if not quiet and not reader.is_image:
                bar = tqdm(total=reader.frame_count or None, unit="frame", desc=source.name, dynamic_ncols=True)

        try:
            if colorizer is None:
                colorizer = make_colorizer()
            report = colorize_file(source, destination, colorizer, options,
                                   progress=lambda n: bar.update(n) if bar is not None else None, on_start=start)
        except FacecolorError as error:
            if len(jobs) == 1:
                raise
            click.echo(f"error: {error}", err=True)
            failures += 1
            continue
        finally:
            if bar is not None:
                bar.close()
        for notice in report.notices:
            click.echo(f"note: {notice}", err=True)
        if not quiet:
            click.echo(f"{destination}: {report.frames_written} frame(s) in {report.seconds:.1f} s", err=True)
    return failures
