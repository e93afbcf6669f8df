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


def _make_colorizer(model, device, precision, render_size, global_every, chroma_gain):
    from .colorizer import Colorizer

    return Colorizer(model=model, device=device, precision=precision, render_size=render_size,
                     global_every=global_every, chroma_gain=chroma_gain)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facecolor-video")
def main():
    """Colorize black-and-white films and photos."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-d", "--output-dir", type=click.Path(path_type=Path), help="colorize every PATH into this folder (same names)")
@click.option("--format", "output_format", help="with --output-dir: output extension (png, jpg, mp4, ...) instead of the input's")
@click.option("--overwrite", is_flag=True, help="replace an existing output")
@_option("batch_size")
@click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default, show_default=True, help=SETTINGS["smooth"].help)
@_option("smooth_radius")
@_option("codec")
@_option("crf")
@_option("preset")
@click.option("--no-audio", is_flag=True, help="drop audio and subtitle streams")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@_colorizer_options
def colorize(paths, output_dir, output_format, overwrite, batch_size, smooth, smooth_radius, codec, crf, preset,
             no_audio, quiet, **colorizer_settings):
    """Colorize IN into OUT, or many inputs into --output-dir.

    \b
      facecolor-video colorize old_film.mp4 film_color.mp4
      facecolor-video colorize a.jpg b.png --output-dir colour/
    """
    from .pipeline import ColorizeOptions
    from .batch import plan_outputs, colorize_many

    jobs = plan_outputs(paths, output_dir, output_format)
    options = ColorizeOptions(batch_size=batch_size, smooth=smooth, smooth_radius=smooth_radius, codec=codec,
                              crf=crf, preset=preset, audio=not no_audio, overwrite=overwrite)
    failures = colorize_many(jobs, lambda: _make_colorizer(**colorizer_settings), options, quiet=quiet)
    if failures:
        sys.exit(1)


def run():
    """Entry point: turns typed errors into one line and an exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: no partial output was kept", err=True)
        sys.exit(130)
    except FacecolorError as error:
        if os.environ.get("FACECOLOR_DEBUG"):
            raise
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every writer removes its temporary file
    raise KeyboardInterrupt
