"""`preview`: a contact sheet of every Nth frame, before | after (or the hinted frames)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    build_colorizer,
    check_hints,
    check_references,
    colorizer_options,
    hint_options,
    option,
    reference_options,
)


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@option("every")
@click.option("-o", "--output", "sheet_path", required=True, type=click.Path(path_type=Path), help="contact sheet image (.png)")
@click.option("--frames-dir", type=click.Path(path_type=Path), help="also write each colorized frame as PNG into this (existing) folder")
@click.option("--columns", type=click.IntRange(1, 64), default=4, show_default=True, help="before|after pairs per row")
@click.option("--thumb-width", type=click.IntRange(8, 4096), default=320, show_default=True, help="width of each picture on the sheet")
@click.option("--overwrite", is_flag=True, help="replace an existing sheet or frame files")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@reference_options
@hint_options
@colorizer_options
def preview(source, every, sheet_path, frames_dir, columns, thumb_width, overwrite, quiet, reference, references,
            reference_all_shots, hint, hints, recipe):
    """Every Nth frame of SOURCE, before | after, on one contact sheet.

    \b
      facecolor-video preview old_film.mp4 --every 240 -o sheet.png
      facecolor-video preview old_film.mp4 --every 24 -o sheet.png --frames-dir frames/
    """
    from tqdm import tqdm

    from ..film.preview import make_preview

    check_references(reference, references)
    if hint is not None or hints is not None:  # the hinted frames, strokes drawn | colorized
        from ..film.hint_preview import make_hint_preview

        check_hints(hint, hints, [source])
        shown = make_hint_preview(source, sheet_path, lambda: build_colorizer(recipe), hint, hints,
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
        report = make_preview(source, sheet_path, lambda: build_colorizer(recipe), every, frames_dir=frames_dir,
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
