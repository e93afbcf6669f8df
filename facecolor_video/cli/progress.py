"""What the commands show while they work: progress bars, and each finished film's report on stderr."""

from __future__ import annotations

from pathlib import Path

import click

from ..model.recipe import ColorizerSettings


class FileProgress:
    """One progress bar per input, sized from its reader; none for images or with --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None

    def start(self, source: Path, reader) -> None:
        from tqdm import tqdm

        self.close()
        if not self.quiet and not reader.is_image:
            self.bar = tqdm(total=reader.frame_count or None, unit="frame", desc=source.name, dynamic_ncols=True)

    def update(self, frames: int) -> None:
        if self.bar is not None:
            self.bar.update(frames)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def print_film_report(report, quiet: bool) -> None:
    """The notices of a finished film, and unless quiet its frames and time (and segments, when cut into some)."""
    for notice in report.notices:
        click.echo(f"note: {notice}", err=True)
    if not quiet:
        extra = ""
        if getattr(report, "segments", 0):
            extra = f" ({report.segments_run} segment(s) colorized, {report.segments_skipped} kept from before)"
        click.echo(f"{report.destination}: {report.frames_written} frame(s) in {report.seconds:.1f} s{extra}", err=True)


def run_segmented(jobs, recipe: ColorizerSettings, options, quiet: bool, **run_options) -> int:
    """colorize_many_segmented with one progress bar for all films, and their reports printed as they finish."""
    from tqdm import tqdm

    from ..scale.batch import colorize_many_segmented

    bar = None if quiet else tqdm(total=None, unit="frame", desc="colorize", dynamic_ncols=True)
    try:
        return colorize_many_segmented(jobs, recipe, options,
                                       progress=bar.update if bar is not None else None,
                                       on_film=lambda report: print_film_report(report, quiet),
                                       on_error=lambda source, error: click.echo(f"error: {error}", err=True),
                                       **run_options)
    except KeyboardInterrupt:
        click.echo("interrupted: finished segments are kept; rerun the same command with --resume to continue", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()
