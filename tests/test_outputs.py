import os
import sys

import pytest

from facecolor_video.errors import OutputError
from facecolor_video.media.outputs import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    check_output_path,
    output_kind,
)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "film.mp4"
    path.write_bytes(b"not really a film")
    return path


def test_fresh_path_is_accepted(source, tmp_path):
    assert check_output_path(source, tmp_path / "out.mkv", overwrite=False) == tmp_path / "out.mkv"


def test_same_path_is_refused(source):
    with pytest.raises(OutputError, match="same file"):
        check_output_path(source, source, overwrite=True)


def test_same_file_through_symlink_is_refused(source, tmp_path):
    link = tmp_path / "link.mp4"
    link.symlink_to(source)
    with pytest.raises(OutputError, match="same file"):
        check_output_path(source, link, overwrite=True)


def test_same_file_through_hard_link_is_refused(source, tmp_path):
    link = tmp_path / "hard.mp4"
    os.link(source, link)
    with pytest.raises(OutputError, match="same file"):
        check_output_path(source, link, overwrite=True)


def test_same_file_through_symlinked_folder_is_refused(source, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path)
    with pytest.raises(OutputError, match="same file"):
        check_output_path(source, alias / "film.mp4", overwrite=True)


def test_existing_output_needs_overwrite(source, tmp_path):
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"x")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_path(source, existing, overwrite=False)
    assert check_output_path(source, existing, overwrite=True) == existing


def test_unknown_extension_is_refused(source, tmp_path):
    for name in ("out.xyz", "out"):
        with pytest.raises(OutputError, match="unknown output extension"):
            check_output_path(source, tmp_path / name, overwrite=False)


def test_missing_folder_is_refused(source, tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(source, tmp_path / "nowhere" / "out.mp4", overwrite=False)


def test_directory_as_output_is_refused(source, tmp_path):
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    with pytest.raises(OutputError, match="directory"):
        check_output_path(source, folder, overwrite=True)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder_is_refused(source, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_path(source, locked / "out.mp4", overwrite=False)
    finally:
        locked.chmod(0o700)


def test_read_only_folder_is_refused_by_access_check(source, tmp_path, monkeypatch):
    # Runs as root too: os.access is what the check consults.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_output_path(source, tmp_path / "out.mp4", overwrite=False)


def test_extension_tables():
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"} <= IMAGE_EXTENSIONS
    assert {".mp4", ".mkv", ".mov"} <= VIDEO_EXTENSIONS
    assert not IMAGE_EXTENSIONS & VIDEO_EXTENSIONS
    assert output_kind("A.PNG") == "image"
    assert output_kind("b.MKV") == "video"
