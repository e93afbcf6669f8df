"""The command line: click parses, the library works. Each command is one library call.

Errors a user can cause and fix (typed ``FacecolorError``) print one line on
stderr and exit with code 1; usage errors exit with 2 (click); Ctrl-C and
SIGTERM exit with 130 after the library removed its partial output. Set
``FACECOLOR_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path

import click

from .errors import FacecolorError, UsageError
from .model.recipe import ColorizerSettings
from .settings import DEVICES, FACE_MODES, PRECISIONS, SETTINGS, SMOOTH_MODES


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


def _composition_options(function):
    """How a film's colour is composed: the planes path (default) or full-size Lab."""
    for decorator in reversed([
        click.option("--exact-lab", is_flag=True,
                     help="compose full-size Lab -> RGB and let the encoder convert it (default for video: keep the "
                          "source's luma plane as decoded and compute only the chroma planes)"),
        _option("pix_fmt"),
    ]):
        function = decorator(function)
    return function


# The options of _colorizer_options: the ColorizerSettings fields a user sets on the command line.
COLORIZER_OPTIONS = ("model", "device", "precision", "render_size", "global_every", "chroma_gain", "faces")


def _colorizer_options(function):
    """The Colorizer's options, handed to the command as one argument: ``recipe``, a ColorizerSettings."""

    @functools.wraps(function)
    def command(*args, **kwargs):
        recipe = ColorizerSettings(**{name: kwargs.pop(name) for name in COLORIZER_OPTIONS})
        return function(*args, recipe=recipe, **kwargs)

    for decorator in reversed([
        _option("model"),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True),
        _option("render_size"),
        _option("global_every"),
        click.option("--chroma-gain", type=click.FloatRange(0, 4), default=None, help="scale the predicted colour (default: the model's tuned value)"),
        click.option("--faces", type=click.Choice(FACE_MODES), default=SETTINGS["faces"].default, show_default=True,
                     help=SETTINGS["faces"].help),
    ]):
        command = decorator(command)
    return command


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


def _reference_options(function):
    """Colour from a reference: one image for the whole input, or a file of timed references."""
    for decorator in reversed([
        click.option("--reference", metavar="IMAGE",
                     help="take colours from this photo (a poster, a costume photo, a colour frame) where the "
                          "picture matches it; shots unlike it keep the automatic colours"),
        click.option("--references", metavar="FILE",
                     help="a text file of 'timecode image' lines (seconds, MM:SS or HH:MM:SS): each reference "
                          "applies from its timecode on; with '*' for the timecode, each shot takes the nearest "
                          "such reference"),
        click.option("--reference-all-shots", is_flag=True,
                     help="apply the reference to every shot, also to those that do not resemble it"),
    ]):
        function = decorator(function)
    return function


def _hint_options(function):
    """Colour hints: RGBA images whose opaque strokes give the colour of what they cover (see film/hints.py)."""
    for decorator in reversed([
        click.option("--hint", metavar="IMAGE",
                     help="a PNG with alpha for the first frame: its strokes' colours spread to the regions they "
                          "touch, and through the shot"),
        click.option("--hints", metavar="FILE",
                     help="a text file of 'timecode image' lines: each hint image belongs to the frame shown at "
                          "its timecode, and colours its shot"),
    ]):
        function = decorator(function)
    return function


def _check_hints(hint, hints, sources) -> None:
    """Fail before any work when a hint image is unusable for a film (one line naming the file)."""
    from .film.hints import load_hints

    for source in sources:
        load_hints(source, hint, hints)


def _check_references(reference, references) -> None:
    """Fail before any work when a reference or the references file is unusable (one line naming the file)."""
    from .film.reference import read_reference_image, reference_images

    for _, image in reference_images(reference, references):
        read_reference_image(image)


def make_colorizer(recipe: ColorizerSettings):
    """Load the colorizer of a command. The one place the commands load a model: tests replace it."""
    return recipe.build()


class _FileProgress:
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


def _print_film_report(report, quiet: bool) -> None:
    """The notices of a finished film, and unless quiet its frames and time (and segments, when cut into some)."""
    for notice in report.notices:
        click.echo(f"note: {notice}", err=True)
    if not quiet:
        extra = ""
        if getattr(report, "segments", 0):
            extra = f" ({report.segments_run} segment(s) colorized, {report.segments_skipped} kept from before)"
        click.echo(f"{report.destination}: {report.frames_written} frame(s) in {report.seconds:.1f} s{extra}", err=True)


def _colorize_segmented(jobs, recipe: ColorizerSettings, options, quiet: bool, **run_options) -> int:
    """colorize_many_segmented with one progress bar for all films, and their reports printed as they finish."""
    from tqdm import tqdm

    from .scale.batch import colorize_many_segmented

    bar = None if quiet else tqdm(total=None, unit="frame", desc="colorize", dynamic_ncols=True)
    try:
        return colorize_many_segmented(jobs, recipe, options,
                                       progress=bar.update if bar is not None else None,
                                       on_film=lambda report: _print_film_report(report, quiet),
                                       on_error=lambda source, error: click.echo(f"error: {error}", err=True),
                                       **run_options)
    except KeyboardInterrupt:
        click.echo("interrupted: finished segments are kept; rerun the same command with --resume to continue", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()


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
@click.option("--faces-debug", type=click.Path(file_okay=False, path_type=Path),
              help="write the frames where faces were detected, boxes drawn, into this folder")
@_film_options
@_composition_options
@_segment_options
@_reference_options
@_hint_options
@_colorizer_options
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
    from .film.pipeline import ColorizeOptions
    from .scale.batch import colorize_many, plan_outputs

    jobs = plan_outputs(paths, output_dir, output_format)
    _check_references(reference, references)
    _check_hints(hint, hints, [job[0] for job in jobs])
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio, overwrite=overwrite,
                              deinterlace="ivtc" if ivtc else deinterlace,
                              stream_format=output_format if output_dir is None else None,
                              exact_lab=exact_lab, pix_fmt=pix_fmt, reference=reference,
                              references=references, reference_all_shots=reference_all_shots,
                              faces_debug=faces_debug, hint=hint, hints=hints)
    if resume or workers > 1 or ray_address:
        failures = _colorize_segmented(jobs, recipe, options, quiet, resume=resume, workers=workers,
                                       segment_seconds=segment_seconds, ray_address=ray_address)
    else:
        bars = _FileProgress(quiet)

        def finished(report) -> None:
            bars.close()
            _print_film_report(report, quiet)

        def failed(source, error) -> None:
            bars.close()
            click.echo(f"error: {error}", err=True)

        try:
            failures = colorize_many(jobs, lambda: make_colorizer(recipe), options,
                                     on_start=bars.start, progress=bars.update, on_film=finished, on_error=failed)
        finally:
            bars.close()
    if failures:
        raise click.exceptions.Exit(1)


@main.command()
@click.option("--data", "data_dirs", multiple=True, required=True, type=click.Path(exists=True),
              help="a folder of colour photos (recursive), or a pack's manifest.json (see `pack`); repeat for several")
@click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True),
              help="validation folder(s) or a pack's manifest.json, scored after every epoch; the best epoch is kept")
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="run folder: checkpoints, log.csv, losses.png, head.pt")
@click.option("--mix", help="sampling share of each data source (a folder, or a set of a pack), in order "
              "(0.5,0.3,0.2) or by name (utkface=0.3,clothing=0.1; unnamed: 0); default: by size")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--epoch-size", type=click.IntRange(1), help="samples per epoch (default: every image once)")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="per process: under torchrun --nproc-per-node K the global batch is this x K")
@click.option("--crop-size", type=click.IntRange(16), default=128, show_default=True)
@click.option("--min-scale", type=click.FloatRange(0.01, 1), default=0.35, show_default=True,
              help="smallest area of the random crop, as a fraction of the image")
@click.option("--init", default="general", show_default=True,
              help="start from this model (a name or a head file); 'none' trains from scratch")
@click.option("--lr", "learning_rate", type=click.FloatRange(0, min_open=True),
              help="Adam learning rate (default: 1e-4 fine-tuning, 3e-4 from scratch)")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.4, show_default=True)
@click.option("--batch-norm", is_flag=True, help="batch normalization after each convolution (the paper's next step)")
@click.option("--loss", type=click.Choice(["mse", "rebalanced"]), default="mse", show_default=True,
              help="mse: the paper's; rebalanced: MSE weighted by the rarity of each pixel's true a*b*")
@click.option("--uncertainty", is_flag=True, help="also predict a*b*'s variance, and fade unsure colours to gray")
@click.option("--lightness-jitter", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="spread of a random gamma/contrast curve on the L the network sees (0: off)")
@click.option("--cache-global-features", is_flag=True,
              help="VGG16's global features once per whole image (kept in the run folder), not per crop: "
              "about 4x faster on a CPU")
@click.option("--global-size", type=click.IntRange(32, 1024),
              help="VGG16's input square for each crop's global vector (default: the start head's; 112 costs a "
              "seventh of 224 on a CPU, and the head is moved to it first)")
@click.option("--campaign", type=click.Path(file_okay=False),
              help="a folder that keeps a long campaign between runs (float16 head + state.json): resumed from "
              "when the run folder has no checkpoint, written at every checkpoint")
@click.option("--images-per-source", type=click.IntRange(1),
              help="use at most this many (evenly spaced) images of each data source")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True)
@click.option("--lr-decay-minutes", type=click.FloatRange(0, min_open=True),
              help="cosine decay over this much training time (across --resume) instead of over all epochs")
@click.option("--lr-decay-samples", type=click.IntRange(1),
              help="cosine decay over this many samples (across --resume and campaign runs); unlike minutes, "
              "it does not run on while the machine is shared")
@click.option("--warmup-steps", type=click.IntRange(0), default=0, show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="autocast: auto is bf16 on CUDA and on CPUs with native bf16")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500, show_default=True, help="steps")
@click.option("--val-limit", type=click.IntRange(1), default=400, show_default=True,
              help="validation images per set (evenly spaced)")
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

    mix_values = _parse_mix(mix)
    config = TrainConfig(data=list(data_dirs), val=list(val_dirs), mix=mix_values,
                         init=None if init.lower() == "none" else init,
                         time_limit_minutes=settings.pop("time_limit"), **settings)
    head = train_and_export(config, run_dir, resume=resume, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        click.echo(f"trained head: {head} (use it with --model {head})")


@main.command()
@click.argument("data_root", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="pack folder: manifest.json, train-NNN.webps, val-NNN.webps")
@click.option("--shard-mb", type=click.FloatRange(0.0625), default=6.0, show_default=True, help="byte budget of one shard, MiB")
@click.option("--scale", type=click.IntRange(16), default=128, show_default=True, help="short side the images are stored at")
@click.option("--quality", type=click.IntRange(1, 100), default=75, show_default=True, help="WebP quality")
@click.option("--val-limit", type=click.IntRange(1), default=300, show_default=True,
              help="evenly spaced images packed per validation set")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="encoding processes")
@click.option("--overwrite", is_flag=True, help="replace a pack already in the folder")
@click.option("-q", "--quiet", is_flag=True)
def pack(data_root, out_dir, shard_mb, scale, quality, val_limit, jobs, overwrite, quiet):
    """Pack the training and validation sets as WebP shards for `train --data OUT/manifest.json`.

    DATA_ROOT is the shared data folder (default: FACECOLOR_DATA, else
    ../shared/data). The split into training and held-out images is fixed
    (see facecolor_video/training/splits.py). Any subset of the shards is a
    random sample of all training sets, so a pack can travel in parts.
    """
    from .training.pack import pack as pack_sets
    from .training.pack import summary
    from .training.splits import data_root as find_data_root

    manifest = pack_sets(find_data_root(data_root), out_dir, scale=scale, quality=quality, shard_mb=shard_mb,
                         val_limit=val_limit, jobs=jobs, overwrite=overwrite, progress=not quiet)
    click.echo(summary(manifest))
    click.echo(f"manifest: {manifest}")


def _parse_mix(text: str | None):
    if not text:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if all("=" in part for part in parts):
            return {name.strip(): float(share) for name, share in (part.split("=", 1) for part in parts)}
        return [float(part) for part in parts]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give numbers (0.5,0.5) or name=share pairs", param_hint="--mix") from None


@main.command(name="eval")
@click.option("--images", "image_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="folder(s) of colour photos: each is turned gray, colorized and compared")
@click.option("--video", "videos", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="colour clip(s): turned gray frame by frame, colorized as a film, compared; reports flicker too")
@click.option("--limit", type=click.IntRange(1), help="evenly spaced subset of at most this many images per run "
              "(--suite: per set, default 300)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--suite", is_flag=True, help="every validation set of the shared data (and the grayed clips) in one table")
@click.option("--data-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="--suite: the shared data folder (default: FACECOLOR_DATA, else ../shared/data)")
@click.option("--sheets", "sheets_dir", type=click.Path(file_okay=False, path_type=Path),
              help="--suite: write a contact sheet (gray | model | original) per set into this folder")
@click.option("--set", "suite_sets", multiple=True, metavar="NAME",
              help="--suite: only this set (utkface_val, people, plain_backdrops, bsds500_test, bikes, carphone); repeat")
@click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default, show_default=True)
@_option("smooth_radius")
@_option("batch_size")
@click.option("--reference-first-frame", is_flag=True,
              help="--video: colour the clip from its own first colour frame as the reference")
@click.option("--hint-patches", metavar="N[,N...]",
              help="colour hints drawn from the truth: N seeded 9x9 patches per photo (--video: on the first frame "
                   "only); a list (0,5,10,20,50) gives the curve")
@click.option("--hint-sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="with --hint-patches: a contact sheet (gray | automatic | hints drawn | result | truth)")
@_colorizer_options
def evaluate_command(image_dirs, videos, limit, as_json, suite, data_root, sheets_dir, suite_sets, smooth,
                     smooth_radius, batch_size, reference_first_frame, hint_patches, hint_sheet, recipe):
    """Measure colorization quality against colour originals and baselines.

    \b
      facecolor-video eval --images faces_val/ --images scenes/
      facecolor-video eval --video clip.mp4 --smooth none
      facecolor-video eval --video clip.mp4 --reference-first-frame
      facecolor-video eval --suite --sheets sheets/
    """
    from .training.quality import evaluate_images, evaluate_videos

    if not image_dirs and not videos and not suite:
        raise click.UsageError("give --images DIR, --video FILE or --suite")
    colorizer = make_colorizer(recipe)
    if hint_patches:
        from .training.hint_eval import run_hint_eval

        for text in run_hint_eval(colorizer, image_dirs, videos, hint_patches, limit=limit, smooth=smooth,
                                  radius=smooth_radius, batch_size=batch_size, sheet=hint_sheet, as_json=as_json):
            click.echo(text)
        return
    if suite:
        from .training.splits import data_root as find_data_root
        from .training.suite import DEFAULT_LIMIT, evaluate_suite

        result = evaluate_suite(colorizer, find_data_root(data_root), limit=limit or DEFAULT_LIMIT,
                                sheets_dir=sheets_dir, smooth=smooth, radius=smooth_radius, batch_size=batch_size,
                                sets=list(suite_sets) or None)
        click.echo(result.to_json() if as_json else result.to_text())
    outputs = []
    if image_dirs:
        outputs.append(evaluate_images(colorizer, image_dirs, limit=limit))
    for video in videos:
        outputs.append(evaluate_videos(colorizer, video, smooth=smooth, radius=smooth_radius,
                                       batch_size=batch_size, limit=limit, reference_first_frame=reference_first_frame))
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
@_reference_options
@_hint_options
@_colorizer_options
def preview(source, every, sheet_path, frames_dir, columns, thumb_width, overwrite, quiet, reference, references,
            reference_all_shots, hint, hints, recipe):
    """Every Nth frame of SOURCE, before | after, on one contact sheet.

    \b
      facecolor-video preview old_film.mp4 --every 240 -o sheet.png
      facecolor-video preview old_film.mp4 --every 24 -o sheet.png --frames-dir frames/
    """
    from tqdm import tqdm

    from .film.preview import make_preview

    _check_references(reference, references)
    if hint is not None or hints is not None:  # the hinted frames, strokes drawn | colorized
        from .film.hint_preview import make_hint_preview

        _check_hints(hint, hints, [source])
        shown = make_hint_preview(source, sheet_path, lambda: make_colorizer(recipe), hint, hints,
                                  columns=columns, thumb_width=thumb_width, overwrite=overwrite)
        if not quiet:
            click.echo(f"{sheet_path}: {shown} hinted frame(s)", err=True)
        return
    bar = None

    def start(reader, expected):
        nonlocal bar
        if not quiet and not reader.is_image:
            bar = tqdm(total=expected or None, unit="frame", desc=source.name, dynamic_ncols=True)

    try:
        report = make_preview(source, sheet_path, lambda: make_colorizer(recipe), every, frames_dir=frames_dir,
                              columns=columns, thumb_width=thumb_width, overwrite=overwrite,
                              progress=lambda n: bar.update(n) if bar is not None else None, on_start=start,
                              reference=reference, references=references, reference_all_shots=reference_all_shots)
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
@click.option("--deinterlace", type=click.Choice(["frame"]), is_flag=False, flag_value="frame",
              help="progressive output through bwdif at the frame rate (interlaced sources stay interlaced otherwise)")
@_composition_options
@_reference_options
@_colorizer_options
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
    from .film.pipeline import ColorizeOptions
    from .scale.batch import archive_jobs

    jobs, skipped = archive_jobs(dir_or_list, output_dir, output_format)
    _check_references(reference, references)
    if not quiet and skipped:
        click.echo(f"{len(skipped)} film(s) skipped: their output exists", err=True)
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio, deinterlace=deinterlace,
                              exact_lab=exact_lab, pix_fmt=pix_fmt, reference=reference,
                              references=references, reference_all_shots=reference_all_shots)
    failures = _colorize_segmented(jobs, recipe, options, quiet, resume=True, workers=workers,
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
@_composition_options
@_colorizer_options
def bench(source, frames, as_json, batch_size, smooth, smooth_radius, codec, crf, preset, threads, no_overlap,
          sweep_batch, model_only, peak_tflops, exact_lab, pix_fmt, recipe):
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

    colorizer = make_colorizer(recipe)
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


def run(argv: list[str] | None = None) -> None:
    """Console entry point."""
    sys.exit(execute(argv))


class _WarningLines(logging.Handler):
    """The library's warnings (logger ``facecolor_video``) as ``warning: ...`` lines on stderr, when they happen."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {record.getMessage()}", err=True)


def execute(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; typed errors become one line on stderr."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    library_log = logging.getLogger("facecolor_video")
    warnings_printer = _WarningLines()
    library_log.addHandler(warnings_printer)
    try:
        exit_code = main(args=argv, standalone_mode=False)
        # outside standalone mode click returns the code of a command's Exit instead of raising it
        return exit_code if isinstance(exit_code, int) else 0
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
        return 2 if isinstance(error, UsageError) else 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        library_log.removeHandler(warnings_printer)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every writer removes its temporary file
    raise KeyboardInterrupt
