"""The command line: click parses, the library works. Each command is one library call.

Errors a user can cause and fix (typed ``FacecolorError``) print one line on
stderr and exit with code 1; usage errors exit with 2 (click); Ctrl-C and
SIGTERM exit with 130 after the library removed its partial output. Set
``FACECOLOR_DEBUG=1`` to see tracebacks.

This package holds the group (``main``), the entry points (``run``,
``execute``) and ``make_colorizer``; ``options`` the options several commands
share, ``progress`` the progress bars and reports, and one module per command
or family of commands: ``colorize`` (colorize, batch), ``preview``,
``train`` (train, pack), ``evaluate`` (eval) and ``bench``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from ..errors import FacecolorError, UsageError
from ..model.recipe import ColorizerSettings
from . import bench, colorize, evaluate, preview, train


def make_colorizer(recipe: ColorizerSettings):
    """Load the colorizer of a command. The one place the commands load a model: tests replace it."""
    return recipe.build()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facecolor-video")
def main():
    """Colorize black-and-white films and photos."""


main.add_command(colorize.colorize)
main.add_command(colorize.batch)
main.add_command(preview.preview)
main.add_command(train.train)
main.add_command(train.pack)
main.add_command(evaluate.evaluate_command)
main.add_command(bench.bench)


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
