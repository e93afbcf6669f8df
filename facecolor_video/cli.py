"""The command line: click parses, the library works. Each command is one library call.

Errors a user can cause and fix (typed ``FacecolorError``) print one line on
stderr and exit with code 1; usage errors exit with 2 (click); Ctrl-C and
SIGTERM exit with 130 after the library removed its partial output. Set
``FACECOLOR_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from .errors import FacecolorError
from .settings import DEVICES, PRECISIONS, SETTINGS, SMOOTH_MODES


def _option(name: str, **extra):
    """A click option whose default, range and help come from the settings table."""
    setting = SETTINGS[name]
    flag = "--" + name.replace("_", "-")
    if isinstance(setting.default, int) and setting.minimum is not None:
        kind = click.IntRange(setting.minimum, setting.maximum)
    else:
        kind = None
    return click.option(flag, name, default=setting.default, type=kind, show_default=True, help=setting.help, **extra)


def _film_options(function):
    """Batching, smoothing, encoder and audio options shared by `colorize` and `batch`."""
    for decorator in reversed([
        _option("batch_size"),
        click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default,
                     show_default=True, help=SETTINGS["smooth"].help),
        _option("smooth_radius"),
        _option("codec"),
        _option("crf"),
        _option("preset"),
        click.option("--no-audio", is_flag=True, help="drop audio and subtitle streams"),
        click.option("-q", "--quiet", is_flag=True, help="no progress bar"),
    ]):
        function = decorator(function)
    return function


def _colorizer_options(function):
    for decorator in reversed([
        click.option("--model", default="general", show_default=True, help="model name (general) or a head file from `train`"),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True),
        _option("render_size"),
        _option("global_every"),
        click.option("--chroma-gain", type=click.FloatRange(0, 4), default=None, help="scale the predicted colour (default: the model's tuned value)"),
    ]):
        function = decorator(function)
    return function


def _segment_options(function):
    for decorator in reversed([
        click.option("--resume", is_flag=True, help="keep the segments an interrupted run of the same command finished"),
        click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="segments colorized in parallel processes"),
        click.option("--segment-seconds", type=click.FloatRange(0.1), default=20.0, show_default=True,
                     help="length of a segment (cut at keyframes where possible)"),
        click.option("--ray", "ray_address", metavar="ADDRESS",
                     help="run segments on a Ray cluster (ADDRESS, or 'local' to start one here)"),
    ]):
        function = decorator(function)
    return function


def _make_colorizer(model, device, precision, render_size, global_every, chroma_gain):
    from .model.colorizer import Colorizer

    return Colorizer(model=model, device=device, precision=precision, render_size=render_size,
                     global_every=global_every, chroma_gain=chroma_gain)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facecolor-video")
def main():
    """Colorize black-and-white films and photos."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-d", "--output-dir", type=click.Path(path_type=Path), help="colorize every PATH into this folder (same names)")
@click.option("--format", "output_format", help="with --output-dir: output extension (png, jpg, mp4, ...) instead of "
              "the input's; with - as OUT (stdout): nut, mkv, ts, mp4 or mov")
@click.option("--overwrite", is_flag=True, help="replace an existing output")
@click.option("--deinterlace", type=click.Choice(["frame", "field"]), is_flag=False, flag_value="frame",
              help="progressive output through bwdif, at the frame rate (the default) or the field rate")
@click.option("--ivtc", is_flag=True, help="telecined film (24 frames/s shown at 30): give back the film frames")
@_film_options
@_segment_options
@_colorizer_options
def colorize(paths, output_dir, output_format, overwrite, batch_size, smooth, smooth_radius, codec, crf, preset,
             no_audio, quiet, resume, workers, segment_seconds, ray_address, **colorizer_settings):
    """Colorize IN into OUT, or many inputs into --output-dir. IN or OUT may be - (stdin, stdout).

    \b
      facecolor-video colorize old_film.mp4 film_color.mp4
      facecolor-video colorize a.jpg b.png --output-dir colour/
      ffmpeg -i reel.vob -f nut - | facecolor-video colorize - - --format nut | ffmpeg -i - reel.mkv
    """
    from .film.pipeline import ColorizeOptions
    from .scale.batch import colorize_many, plan_outputs

    deinterlace, ivtc = colorizer_settings.pop("deinterlace"), colorizer_settings.pop("ivtc")
    jobs = plan_outputs(paths, output_dir, output_format)
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio, overwrite=overwrite,
                              deinterlace="ivtc" if ivtc else deinterlace,
                              stream_format=output_format if output_dir is None else None)
    if resume or workers > 1 or ray_address:
        from .scale.batch import colorize_many_segmented

        failures = colorize_many_segmented(jobs, colorizer_settings, options, quiet, resume=resume, workers=workers,
                                           segment_seconds=segment_seconds, ray_address=ray_address)
    else:
        failures = colorize_many(jobs, lambda: _make_colorizer(**colorizer_settings), options, quiet=quiet)
    if failures:
        raise click.exceptions.Exit(1)


@main.command()
@click.option("--data", "data_dirs", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="a folder of colour photos (recursive); repeat for several")
@click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="validation folder(s), scored after every epoch; the best epoch is kept")
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="run folder: checkpoints, log.csv, losses.png, head.pt")
@click.option("--mix", help="sampling share of each --data folder, e.g. 0.5,0.3,0.2 (default: by size)")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--epoch-size", type=click.IntRange(1), help="samples per epoch (default: every image once)")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="per process: under torchrun --nproc-per-node K the global batch is this x K")
@click.option("--crop-size", type=click.IntRange(16), default=128, show_default=True)
@click.option("--init", default="general", show_default=True,
              help="start from this model (a name or a head file); 'none' trains from scratch")
@click.option("--lr", "learning_rate", type=click.FloatRange(0, min_open=True),
              help="Adam learning rate (default: 1e-4 fine-tuning, 3e-4 from scratch)")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.4, show_default=True)
@click.option("--batch-norm", is_flag=True, help="batch normalization after each convolution (the paper's next step)")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500, show_default=True, help="steps")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), help="minutes; stop (and keep the best) after this")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=2, show_default=True, help="image-loading processes")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="continue from the run folder's checkpoint")
@click.option("-q", "--quiet", is_flag=True)
def train(data_dirs, val_dirs, run_dir, mix, quiet, resume, init, **settings):
    """Fine-tune the colorization network on your own photos.

    Training starts from the shipped general model (--init), so a few thousand
    photos of one kind (a family album, one film's era) adapt it quickly; on a
    CPU that is what fits in an hour. --init none trains from scratch.

    \b
      facecolor-video train --data photos/ --val held_out/ -o run/
      facecolor-video colorize old.mp4 new.mp4 --model run/head.pt

    On several GPUs (DistributedDataParallel, one process per GPU):

    \b
      torchrun --nproc-per-node 4 -m facecolor_video train --data photos/ -o run/
    """
    from .training.train import TrainConfig, train_and_export

    mix_values = [float(x) for x in mix.split(",")] if mix else None
    config = TrainConfig(data=list(data_dirs), val=list(val_dirs), mix=mix_values,
                         init=None if init.lower() == "none" else init,
                         time_limit_minutes=settings.pop("time_limit"), **settings)
    head = train_and_export(config, run_dir, resume=resume, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        click.echo(f"trained head: {head} (use it with --model {head})")


@main.command(name="eval")
@click.option("--images", "image_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="folder(s) of colour photos: each is turned gray, colorized and compared")
@click.option("--video", "videos", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="colour clip(s): turned gray frame by frame, colorized as a film, compared; reports flicker too")
@click.option("--limit", type=click.IntRange(1), help="evenly spaced subset of at most this many images per run")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default, show_default=True)
@_option("smooth_radius")
@_option("batch_size")
@_colorizer_options
def evaluate_command(image_dirs, videos, limit, as_json, smooth, smooth_radius, batch_size, **colorizer_settings):
    """Measure colorization quality against colour originals and baselines.

    \b
      facecolor-video eval --images faces_val/ --images scenes/
      facecolor-video eval --video clip.mp4 --smooth none
    """
    from .training.quality import evaluate_images, evaluate_videos

    if not image_dirs and not videos:
        raise click.UsageError("give --images DIR and/or --video FILE")
    colorizer = _make_colorizer(**colorizer_settings)
    outputs = []
    if image_dirs:
        outputs.append(evaluate_images(colorizer, image_dirs, limit=limit))
    for video in videos:
        outputs.append(evaluate_videos(colorizer, video, smooth=smooth, radius=smooth_radius,
                                       batch_size=batch_size, limit=limit))
    for result in outputs:
        click.echo(result.to_json() if as_json else result.to_text())


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@_option("every")
@click.option("-o", "--output", "sheet_path", required=True, type=click.Path(path_type=Path), help="contact sheet image (.png)")
@click.option("--frames-dir", type=click.Path(path_type=Path), help="also write each colorized frame as PNG into this (existing) folder")
@click.option("--columns", type=click.IntRange(1, 64), default=4, show_default=True, help="before|after pairs per row")
@click.option("--thumb-width", type=click.IntRange(8, 4096), default=320, show_default=True, help="width of each picture on the sheet")
@click.option("--overwrite", is_flag=True, help="replace an existing sheet or frame files")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@_colorizer_options
def preview(source, every, sheet_path, frames_dir, columns, thumb_width, overwrite, quiet, **colorizer_settings):
    """Every Nth frame of SOURCE, before | after, on one contact sheet.

    \b
      facecolor-video preview old_film.mp4 --every 240 -o sheet.png
      facecolor-video preview old_film.mp4 --every 24 -o sheet.png --frames-dir frames/
    """
    from tqdm import tqdm

    from .film.preview import make_preview

    bar = None

    def start(reader, expected):
        nonlocal bar
        if not quiet and not reader.is_image:
            bar = tqdm(total=expected or None, unit="frame", desc=source.name, dynamic_ncols=True)

    try:
        report = make_preview(source, sheet_path, lambda: _make_colorizer(**colorizer_settings), every, frames_dir=frames_dir,
                              columns=columns, thumb_width=thumb_width, overwrite=overwrite,
                              progress=lambda n: bar.update(n) if bar is not None else None, on_start=start)
    finally:
        if bar is not None:
            bar.close()
    for notice in report.notices:
        click.echo(f"note: {notice}", err=True)
    if not quiet:
        click.echo(f"{sheet_path}: {report.frames_shown} pair(s), {report.frames_decoded} frame(s) decoded, "
                   f"{report.seeks} seek(s), {report.seconds:.1f} s", err=True)


@main.command()
@click.argument("dir_or_list", type=click.Path(exists=True, path_type=Path))
@click.option("-d", "--output-dir", required=True, type=click.Path(path_type=Path), help="where the colorized films go")
@click.option("--format", "output_format", help="output extension (mp4, mkv, mov) instead of the input's")
@_film_options
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True, help="segments colorized in parallel processes")
@click.option("--segment-seconds", type=click.FloatRange(0.1), default=20.0, show_default=True, help="length of a segment")
@click.option("--ray", "ray_address", metavar="ADDRESS", help="run segments on a Ray cluster (ADDRESS, or 'local')")
@_colorizer_options
def batch(dir_or_list, output_dir, output_format, batch_size, smooth, smooth_radius, codec, crf, preset, no_audio,
          quiet, workers, segment_seconds, ray_address, **colorizer_settings):
    """Colorize every film of a folder (or of a list file, one path a line) into --output-dir.

    Films whose output exists are skipped and a film cut short is resumed from
    its finished segments, so an archive job can be stopped and started again.

    \b
      facecolor-video batch reels/ --output-dir colour/ --workers 2
      facecolor-video batch reels.txt -d colour/ --ray local
    """
    from .film.pipeline import ColorizeOptions
    from .scale.batch import archive_jobs, colorize_many_segmented

    jobs, skipped = archive_jobs(dir_or_list, output_dir, output_format)
    if not quiet and skipped:
        click.echo(f"{len(skipped)} film(s) skipped: their output exists", err=True)
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio)
    failures = colorize_many_segmented(jobs, colorizer_settings, options, quiet, resume=True, workers=workers,
                                       segment_seconds=segment_seconds, ray_address=ray_address)
    if failures:
        sys.exit(1)


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


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--frames", type=click.IntRange(1), default=64, show_default=True, help="benchmark the first N frames")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@_option("batch_size")
@click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default, show_default=True, help=SETTINGS["smooth"].help)
@_option("smooth_radius")
@_option("codec")
@_option("crf")
@_option("preset")
@_option("threads")
@click.option("--no-overlap", is_flag=True, help="end to end without the reader and writer threads")
@click.option("--sweep-batch", callback=_batch_sizes, metavar="N,N,...", help="model-only fps for each of these batch sizes")
@click.option("--model-only", is_flag=True, help="only the network (with --sweep-batch, or at --batch-size)")
@click.option("--peak-tflops", type=click.FloatRange(min=0, min_open=True), help="device peak for the fraction-of-peak column (989: H100/H200 dense bf16)")
@_colorizer_options
def bench(source, frames, as_json, batch_size, smooth, smooth_radius, codec, crf, preset, threads, no_overlap,
          sweep_batch, model_only, peak_tflops, **colorizer_settings):
    """Frames per second of each stage, end to end, and the transcode floor.

    \b
      facecolor-video bench old_film.mp4 --frames 100
      facecolor-video bench clip.mp4 --sweep-batch 8,16,32,64 --model-only --peak-tflops 989
    """
    from .bench import (
        format_benchmark,
        format_sweep,
        run_benchmark,
        run_model_sweep,
        to_json,
    )
    from .film.pipeline import ColorizeOptions

    colorizer = _make_colorizer(**colorizer_settings)
    sweep = None
    if model_only or sweep_batch:
        sweep = run_model_sweep(source, colorizer, sweep_batch or [batch_size], peak_tflops=peak_tflops, threads=threads)
    if model_only:
        click.echo(to_json(sweep) if as_json else format_sweep(sweep))
        return
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec, crf=crf,
                              preset=preset, audio=False, threads=threads, overlap=not no_overlap)
    result = run_benchmark(source, colorizer, options, frames)
    if sweep is not None:
        result["sweep"] = sweep
    click.echo(to_json(result) if as_json else format_benchmark(result))


def run(argv: list[str] | None = None) -> None:
    """Console entry point."""
    sys.exit(execute(argv))


def execute(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; typed errors become one line on stderr."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        main(args=argv, standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: no partial output was kept", err=True)
        return 130
    except FacecolorError as error:
        if os.environ.get("FACECOLOR_DEBUG"):
            raise
        click.echo(f"error: {error}", err=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every writer removes its temporary file
    raise KeyboardInterrupt
