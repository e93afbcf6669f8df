"""Options shared by several commands, and the checks that run before any work.

Defaults, ranges and help of most options come from ``settings.SETTINGS``.
The Colorizer's options reach a command as one argument, ``recipe`` (a
``ColorizerSettings``); ``build_colorizer`` turns it into the colorizer,
through ``facecolor_video.cli.make_colorizer``.
"""

from __future__ import annotations

import functools

import click

from ..model.recipe import ColorizerSettings
from ..settings import DEVICES, FACE_MODES, PRECISIONS, SETTINGS, SMOOTH_MODES


def option(name: str, **extra):
    """A click option whose default, range and help come from the settings table."""
    setting = SETTINGS[name]
    flag = "--" + name.replace("_", "-")
    if isinstance(setting.default, int) and setting.minimum is not None:
        kind = click.IntRange(setting.minimum, setting.maximum)
    else:
        kind = None
    return click.option(flag, name, default=setting.default, type=kind, show_default=True, help=setting.help, **extra)


def with_options(function, options: list):
    """``function`` with click's option decorators applied so that they list in the given order."""
    for decorator in reversed(options):
        function = decorator(function)
    return function


def film_options(function):
    """Batching, smoothing, encoder and audio options shared by `colorize` and `batch`."""
    return with_options(function, [
        option("batch_size"),
        click.option("--smooth", type=click.Choice(SMOOTH_MODES), default=SETTINGS["smooth"].default,
                     show_default=True, help=SETTINGS["smooth"].help),
        option("smooth_radius"),
        option("codec"),
        option("crf"),
        option("preset"),
        click.option("--no-audio", is_flag=True, help="drop audio and subtitle streams"),
        click.option("-q", "--quiet", is_flag=True, help="no progress bar"),
    ])


def composition_options(function):
    """How a film's colour is composed: the planes path (default) or full-size Lab."""
    return with_options(function, [
        click.option("--exact-lab", is_flag=True,
                     help="compose full-size Lab -> RGB and let the encoder convert it (default for video: keep the "
                          "source's luma plane as decoded and compute only the chroma planes)"),
        option("pix_fmt"),
    ])


# The options of colorizer_options: the ColorizerSettings fields a user sets on the command line.
COLORIZER_OPTIONS = ("model", "device", "precision", "render_size", "global_every", "chroma_gain", "faces")


def colorizer_options(function):
    """The Colorizer's options, handed to the command as one argument: ``recipe``, a ColorizerSettings."""

    @functools.wraps(function)
    def command(*args, **kwargs):
        recipe = ColorizerSettings(**{name: kwargs.pop(name) for name in COLORIZER_OPTIONS})
        return function(*args, recipe=recipe, **kwargs)

    return with_options(command, [
        option("model"),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True),
        option("render_size"),
        option("global_every"),
        click.option("--chroma-gain", type=click.FloatRange(0, 4), default=None, help="scale the predicted colour (default: the model's tuned value)"),
        click.option("--faces", type=click.Choice(FACE_MODES), default=SETTINGS["faces"].default, show_default=True,
                     help=SETTINGS["faces"].help),
    ])


def segment_options(function):
    return with_options(function, [
        click.option("--resume", is_flag=True, help="keep the segments an interrupted run of the same command finished"),
        click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="segments colorized in parallel processes"),
        click.option("--segment-seconds", type=click.FloatRange(0.1), default=20.0, show_default=True,
                     help="length of a segment (cut at keyframes where possible)"),
        click.option("--ray", "ray_address", metavar="ADDRESS",
                     help="run segments on a Ray cluster (ADDRESS, or 'local' to start one here)"),
    ])


def reference_options(function):
    """Colour from a reference: one image for the whole input, or a file of timed references."""
    return with_options(function, [
        click.option("--reference", metavar="IMAGE",
                     help="take colours from this photo (a poster, a costume photo, a colour frame) where the "
                          "picture matches it; shots unlike it keep the automatic colours"),
        click.option("--references", metavar="FILE",
                     help="a text file of 'timecode image' lines (seconds, MM:SS or HH:MM:SS): each reference "
                          "applies from its timecode on; with '*' for the timecode, each shot takes the nearest "
                          "such reference"),
        click.option("--reference-all-shots", is_flag=True,
                     help="apply the reference to every shot, also to those that do not resemble it"),
    ])


def hint_options(function):
    """Colour hints: RGBA images whose opaque strokes give the colour of what they cover (see film/hints.py)."""
    return with_options(function, [
        click.option("--hint", metavar="IMAGE",
                     help="a PNG with alpha for the first frame: its strokes' colours spread to the regions they "
                          "touch, and through the shot"),
        click.option("--hints", metavar="FILE",
                     help="a text file of 'timecode image' lines: each hint image belongs to the frame shown at "
                          "its timecode, and colours its shot"),
    ])


def check_hints(hint, hints, sources) -> None:
    """Fail before any work when a hint image is unusable for a film (one line naming the file)."""
    from ..film.hints import load_hints

    for source in sources:
        load_hints(source, hint, hints)


def check_references(reference, references) -> None:
    """Fail before any work when a reference or the references file is unusable (one line naming the file)."""
    from ..film.reference import read_reference_image, reference_images

    for _, image in reference_images(reference, references):
        read_reference_image(image)


def build_colorizer(recipe: ColorizerSettings):
    """The colorizer of a command, from ``facecolor_video.cli.make_colorizer`` (looked up at each call: tests
    replace it there)."""
    from .. import cli

    return cli.make_colorizer(recipe)
