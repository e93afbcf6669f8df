"""`eval`: colorization quality against colour originals (photos, clips, the suite, colour hints)."""

from __future__ import annotations

from pathlib import Path

import click

from ..settings import SETTINGS, SMOOTH_MODES
from .options import build_colorizer, colorizer_options, option


@click.command(name="eval")
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
@option("smooth_radius")
@option("batch_size")
@click.option("--reference-first-frame", is_flag=True,
              help="--video: colour the clip from its own first colour frame as the reference")
@click.option("--hint-patches", metavar="N[,N...]",
              help="colour hints drawn from the truth: N seeded 9x9 patches per photo (--video: on the first frame "
                   "only); a list (0,5,10,20,50) gives the curve")
@click.option("--hint-sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="with --hint-patches: a contact sheet (gray | automatic | hints drawn | result | truth)")
@colorizer_options
def evaluate_command(image_dirs, videos, limit, as_json, suite, data_root, sheets_dir, suite_sets, smooth,
                     smooth_radius, batch_size, reference_first_frame, hint_patches, hint_sheet, recipe):
    """Measure colorization quality against colour originals and baselines.

    \b
      facecolor-video eval --images faces_val/ --images scenes/
      facecolor-video eval --video clip.mp4 --smooth none
      facecolor-video eval --video clip.mp4 --reference-first-frame
      facecolor-video eval --suite --sheets sheets/
    """
    from ..training.quality import evaluate_images, evaluate_videos

    if not image_dirs and not videos and not suite:
        raise click.UsageError("give --images DIR, --video FILE or --suite")
    colorizer = build_colorizer(recipe)
    if hint_patches:
        from ..training.hint_eval import run_hint_eval

        for text in run_hint_eval(colorizer, image_dirs, videos, hint_patches, limit=limit, smooth=smooth,
                                  radius=smooth_radius, batch_size=batch_size, sheet=hint_sheet, as_json=as_json):
            click.echo(text)
        return
    if suite:
        from ..training.splits import data_root as find_data_root
        from ..training.suite import DEFAULT_LIMIT, evaluate_suite

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
