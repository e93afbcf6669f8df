"""Damaged files, made by mutating small valid ones: a typed error or a result, never a crash or a hang.

Bytes of small valid videos and images are flipped, inserted, deleted and
truncated, then fed to ``VideoReader`` (every frame decoded) and to the CLI.
Allowed outcomes: success, or a ``FacecolorError`` (the CLI: exit code 1 and
one line on stderr, nothing under the output name, no temporary file). Any
other exception fails the test, and so does an example that runs longer than
``EXAMPLE_TIMEOUT_S``.

Bounded and repeatable: 25 examples per test, derandomized, no example
database. For a longer hunt with fresh random examples set the count, e.g.
``FACECOLOR_FUZZ_EXAMPLES=500``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecolor_video import cli
from facecolor_video.errors import FacecolorError
from facecolor_video.media.video import VideoReader
from tests.media import make_image, make_video

EXAMPLES = int(os.environ.get("FACECOLOR_FUZZ_EXAMPLES", "25"))
EXAMPLE_TIMEOUT_S = 20
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=EXAMPLE_TIMEOUT_S),
    derandomize="FACECOLOR_FUZZ_EXAMPLES" not in os.environ,  # a hunt draws fresh examples
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _seed_files() -> dict[str, bytes]:
    """A few tiny valid files, by name (the extension picks the demuxer)."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        paths = [
            make_video(folder / "clip.mkv", n_frames=5, size=(32, 24), codec="ffv1", audio_streams=1, subtitle=True),
            make_video(folder / "clip.mp4", n_frames=5, size=(32, 24), audio_streams=1),
            make_image(folder / "photo.png", size=(24, 16), mode="RGBA"),
            make_image(folder / "photo.jpg", size=(24, 16), mode="L"),
        ]
        return {path.name: path.read_bytes() for path in paths}


SEEDS = _seed_files()

_operation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
)
damaged_files = st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(_operation, min_size=1, max_size=6))


def _mutate(data: bytes, operations) -> bytes:
    buffer = bytearray(data)
    for operation in operations:
        if not buffer:
            break
        kind = operation[0]
        if kind == "flip":
            buffer[operation[1] % len(buffer)] ^= operation[2]
        elif kind == "insert":
            at = operation[1] % (len(buffer) + 1)
            buffer[at:at] = operation[2]
        elif kind == "delete":
            at = operation[1] % len(buffer)
            del buffer[at:at + operation[2]]
        else:
            del buffer[int(len(buffer) * operation[1]):]
    return bytes(buffer)


class _Hang(BaseException):
    """An example ran past EXAMPLE_TIMEOUT_S (a BaseException, so no handler under test swallows it)."""


@contextlib.contextmanager
def _time_limit(seconds: int):
    # The CLI installs a SIGTERM handler, which only the main thread may do: it runs in the
    # main thread and an alarm interrupts it.
    def interrupt(signum, frame):
        raise _Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _read_everything(path: Path) -> None:
    with VideoReader(path) as reader:
        for _ in reader.frames():
            pass
        reader.frame_count, reader.duration, reader.rotation, reader.audio_streams, reader.subtitle_streams


@FUZZ
@given(damaged=damaged_files)
def test_reader_gives_frames_or_a_typed_error(damaged):
    name, operations = damaged
    outcome: list[BaseException | None] = []

    def read(path: Path) -> None:
        try:
            _read_everything(path)
            outcome.append(None)
        except BaseException as error:  # judged in the test's thread
            outcome.append(error)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(_mutate(SEEDS[name], operations))
        reader = threading.Thread(target=read, args=(path,), daemon=True)
        reader.start()
        reader.join(EXAMPLE_TIMEOUT_S)
        assert not reader.is_alive(), f"reading {name} hung ({operations})"
    error = outcome[0]
    if error is not None and not isinstance(error, FacecolorError):
        raise AssertionError(f"{name} with {operations}: {type(error).__name__} is not a FacecolorError") from error


@pytest.fixture(scope="module")
def one_model():
    from facecolor_video.model.colorizer import Colorizer

    colorizer = []

    # every example runs with the default settings; that the command line's settings reach the
    # colorizer is checked in test_archival.py and test_reliability.py
    def shared(_recipe):
        if not colorizer:
            colorizer.append(Colorizer(device="cpu", render_size=64))
        return colorizer[0]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "make_colorizer", shared)
        yield


@FUZZ
@given(damaged=damaged_files)
def test_cli_gives_an_output_or_one_clear_error(one_model, damaged):
    name, operations = damaged
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / name
        source.write_bytes(_mutate(SEEDS[name], operations))
        output = Path(folder) / ("out" + source.suffix)
        stderr = io.StringIO()
        with _time_limit(EXAMPLE_TIMEOUT_S), contextlib.redirect_stderr(stderr):
            code = cli.execute(["colorize", str(source), str(output), "--quiet"])
        err = stderr.getvalue().strip()
        leftovers = [p.name for p in Path(folder).iterdir() if ".partial-" in p.name]
        assert leftovers == [], leftovers
        assert code in (0, 1), (code, err)
        if code == 1:
            assert not output.exists(), err
            assert len(err.splitlines()) == 1 and err.startswith("error: ") and name in err, err
        else:
            assert output.is_file() and "Traceback" not in err, err
