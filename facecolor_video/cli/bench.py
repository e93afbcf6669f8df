"""`bench`: frames per second of each stage, end to end, and the model alone at several batch sizes."""

from __future__ import annotations

from pathlib import Path

import click

from ..settings import SETTINGS, SMOOTH_MODES
from .options import build_colorizer, colorizer_options, composition_options, option


def _batch_sizes(context, parameter, value):
    if value is None:
        return None
    try:
        sizes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of batch sizes, e.g. 8,16,32") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("batch sizes must be positive integers")
    return sizes


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--frames", type=click.IntRange(1), default=64, show_default=True, help="benchmark the first N frames")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@option("batch_size")
@click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default, show_default=True, help=SETTINGS["smooth"].help)
@option("smooth_radius")
@option("codec")
@option("crf")
@option("preset")
@option("threads")
@click.option("--no-overlap", is_flag=True, help="end to end without the reader and writer threads")
@click.option("--sweep-batch", callback=_batch_sizes, metavar="N,N,...", help="model-only fps for each of these batch sizes")
@click.option("--model-only", is_flag=True, help="only the network (with --sweep-batch, or at --batch-size)")
@click.option("--peak-tflops", type=click.FloatRange(min=0, min_open=True), help="device peak for the fraction-of-peak column (989: H100/H200 dense bf16)")
@composition_options
@colorizer_options
def bench(source, frames, as_json, batch_size, smooth, smooth_radius, codec, crf, preset, threads, no_overlap,
          sweep_batch, model_only, peak_tflops, exact_lab, pix_fmt, recipe):
    """Frames per second of each stage, end to end, and the transcode floor.

    \b
      facecolor-video bench old_film.mp4 --frames 100
      facecolor-video bench clip.mp4 --sweep-batch 8,16,32,64 --model-only --peak-tflops 989
    """
    from ..bench import (
        format_benchmark,
        format_sweep,
        run_benchmark,
        run_model_sweep,
        to_json,
    )
    from ..film.pipeline import ColorizeOptions

    colorizer = build_colorizer(recipe)
    sweep = None
    if model_only or sweep_batch:
        sweep = run_model_sweep(source, colorizer, sweep_batch or [batch_size], peak_tflops=peak_tflops, threads=threads)
    if model_only:
        click.echo(to_json(sweep) if as_json else format_sweep(sweep))
        return
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec, crf=crf,
                              preset=preset, audio=False, threads=threads, overlap=not no_overlap,
                              exact_lab=exact_lab, pix_fmt=pix_fmt)
    result = run_benchmark(source, colorizer, options, frames)
    if sweep is not None:
        result["sweep"] = sweep
    click.echo(to_json(result) if as_json else format_benchmark(result))
