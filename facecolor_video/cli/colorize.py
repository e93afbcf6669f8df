"""`colorize` (inputs given by name, in one process or segment by segment) and `batch` (a folder or list of films)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import (
    build_colorizer,
    check_hints,
    check_references,
    colorizer_options,
    composition_options,
    film_options,
    hint_options,
    reference_options,
    segment_options,
)
from .progress import FileProgress, print_film_report, run_segmented


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-d", "--output-dir", type=click.Path(path_type=Path), help="colorize every PATH into this folder (same names)")
@click.option("--format", "output_format", help="with --output-dir: output extension (png, jpg, mp4, ...) instead of "
              "the input's; with - as OUT (stdout): nut, mkv, ts, mp4 or mov")
@click.option("--overwrite", is_flag=True, help="replace an existing output")
@click.option("--deinterlace", type=click.Choice(["frame", "field"]), is_flag=False, flag_value="frame",
              help="progressive output through bwdif, at the frame rate (the default) or the field rate")
@click.option("--ivtc", is_flag=True, help="telecined film (24 frames/s shown at 30): give back the film frames")
@click.option("--faces-debug", type=click.Path(file_okay=False, path_type=Path),
              help="write the frames where faces were detected, boxes drawn, into this folder")
@film_options
@composition_options
@segment_options
@reference_options
@hint_options
@colorizer_options
def colorize(paths, output_dir, output_format, overwrite, deinterlace, ivtc, faces_debug, batch_size, smooth,
             smooth_radius, codec, crf, preset, no_audio, quiet, exact_lab, pix_fmt, resume, workers, segment_seconds,
             ray_address, reference, references, reference_all_shots, hint, hints, recipe):
    """Colorize IN into OUT, or many inputs into --output-dir. IN or OUT may be - (stdin, stdout).

    \b
      facecolor-video colorize old_film.mp4 film_color.mp4
      facecolor-video colorize a.jpg b.png --output-dir colour/
      ffmpeg -i reel.vob -f nut - | facecolor-video colorize - - --format nut | ffmpeg -i - reel.mkv
      facecolor-video colorize old_film.mp4 film_color.mp4 --reference poster.jpg
    """
    from ..film.pipeline import ColorizeOptions
    from ..scale.batch import colorize_many, plan_outputs

    jobs = plan_outputs(paths, output_dir, output_format)
    check_references(reference, references)
    check_hints(hint, hints, [job[0] for job in jobs])
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio, overwrite=overwrite,
                              deinterlace="ivtc" if ivtc else deinterlace,
                              stream_format=output_format if output_dir is None else None,
                              exact_lab=exact_lab, pix_fmt=pix_fmt, reference=reference,
                              references=references, reference_all_shots=reference_all_shots,
                              faces_debug=faces_debug, hint=hint, hints=hints)
    if resume or workers > 1 or ray_address:
        failures = run_segmented(jobs, recipe, options, quiet, resume=resume, workers=workers,
                                       segment_seconds=segment_seconds, ray_address=ray_address)
    else:
        bars = FileProgress(quiet)

        def finished(report) -> None:
            bars.close()
            print_film_report(report, quiet)

        def failed(source, error) -> None:
            bars.close()
            click.echo(f"error: {error}", err=True)

        try:
            failures = colorize_many(jobs, lambda: build_colorizer(recipe), options,
                                     on_start=bars.start, progress=bars.update, on_film=finished, on_error=failed)
        finally:
            bars.close()
    if failures:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("dir_or_list", type=click.Path(exists=True, path_type=Path))
@click.option("-d", "--output-dir", required=True, type=click.Path(path_type=Path), help="where the colorized films go")
@click.option("--format", "output_format", help="output extension (mp4, mkv, mov) instead of the input's")
@film_options
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True, help="segments colorized in parallel processes")
@click.option("--segment-seconds", type=click.FloatRange(0.1), default=20.0, show_default=True, help="length of a segment")
@click.option("--ray", "ray_address", metavar="ADDRESS", help="run segments on a Ray cluster (ADDRESS, or 'local')")
@click.option("--deinterlace", type=click.Choice(["frame"]), is_flag=False, flag_value="frame",
              help="progressive output through bwdif at the frame rate (interlaced sources stay interlaced otherwise)")
@composition_options
@reference_options
@colorizer_options
def batch(dir_or_list, output_dir, output_format, batch_size, smooth, smooth_radius, codec, crf, preset, no_audio,
          quiet, workers, segment_seconds, ray_address, deinterlace, exact_lab, pix_fmt, reference, references,
          reference_all_shots, recipe):
    """Colorize every film of a folder (or of a list file, one path a line) into --output-dir.

    Films whose output exists are skipped and a film cut short is resumed from
    its finished segments, so an archive job can be stopped and started again.

    \b
      facecolor-video batch reels/ --output-dir colour/ --workers 2
      facecolor-video batch reels.txt -d colour/ --ray local
    """
    from ..film.pipeline import ColorizeOptions
    from ..scale.batch import archive_jobs

    jobs, skipped = archive_jobs(dir_or_list, output_dir, output_format)
    check_references(reference, references)
    if not quiet and skipped:
        click.echo(f"{len(skipped)} film(s) skipped: their output exists", err=True)
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio, deinterlace=deinterlace,
                              exact_lab=exact_lab, pix_fmt=pix_fmt, reference=reference,
                              references=references, reference_all_shots=reference_all_shots)
    failures = run_segmented(jobs, recipe, options, quiet, resume=True, workers=workers,
                                   segment_seconds=segment_seconds, ray_address=ray_address)
    if failures:
        sys.exit(1)
