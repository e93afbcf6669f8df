"""Ray: an archive of small films colorized as Ray tasks, restartable (Ray comes with the test extra)."""

from __future__ import annotations

import sys

import av
import pytest
from click.testing import CliRunner

from facecolor_video.cli import main
from facecolor_video.errors import FacecolorError
from tests.media import make_video


def test_missing_ray_is_a_clear_error(monkeypatch):
    from facecolor_video.scale import executors

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(FacecolorError, match=r"pip install 'facecolor-video\[ray\]'"):
        executors.require_ray()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def frame_pts(path) -> list[int]:
    with av.open(str(path)) as container:
        return [p.pts for p in container.demux(video=0) if p.size]


def audio_payloads(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def test_ray_batch_of_three_films(tmp_path, local_ray):
    reels = tmp_path / "reels"
    reels.mkdir()
    sources = [make_video(reels / f"reel{i}.mp4", n_frames=12 + 4 * i, gray=True, audio_streams=1) for i in range(3)]
    out = tmp_path / "colour"
    out.mkdir()
    arguments = ["batch", str(reels), "--output-dir", str(out), "--ray", "local", "--workers", "2",
                 "--segment-seconds", "0.3", "--render-size", "32", "--global-every", "8", "--device", "cpu",
                 "--preset", "ultrafast", "-q"]
    result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for source in sources:
        assert sorted(frame_pts(out / source.name)) == sorted(frame_pts(source))
        assert audio_payloads(out / source.name) == audio_payloads(source)  # audio copied, not re-encoded
    assert not list(out.glob(".*"))  # no work folders or partial files left

    # restart: everything is done, nothing is redone
    first = (out / sources[0].name).stat().st_mtime_ns
    again = CliRunner().invoke(main, arguments[:-1], catch_exceptions=False)
    assert again.exit_code == 0
    assert "3 film(s) skipped" in again.output
    assert (out / sources[0].name).stat().st_mtime_ns == first
