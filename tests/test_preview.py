import math
from fractions import Fraction

import av
import pytest
from click.testing import CliRunner
from PIL import Image

from facecolor_video import cli
from facecolor_video.errors import OutputError
from facecolor_video.film.preview import (
    PADDING,
    PAIR_GAP,
    FrameSampler,
    format_timestamp,
    frame_file_name,
    frame_label,
    make_preview,
)
from facecolor_video.media.video import VideoReader
from tests.media import frame_times, make_image, make_video, pattern_frame


@pytest.fixture(scope="module")
def colorizer():
    from facecolor_video.film.stills import Colorizer

    return Colorizer(device="cpu", render_size=64)


def make_gop_clip(path, n_frames: int, keyint: int | None, size=(64, 48), frame_rate=25):
    """An H.264 clip (with B-frames) whose keyframes fall every keyint frames exactly (None: only the first)."""
    keyint_option = "infinite" if keyint is None else str(keyint)
    min_keyint = "1" if keyint is None else str(keyint)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=frame_rate, options={
            "preset": "ultrafast", "x264-params": f"keyint={keyint_option}:min-keyint={min_keyint}:scenecut=0:bframes=2",
        })
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(n_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(index, *size), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sample(path, every, seek):
    with VideoReader(path) as reader, FrameSampler(reader, every, seek=seek) as sampler:
        picked = [(p.time, p.number) for p in sampler]
        return picked, sampler.frames_decoded, sampler.seeks


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("seconds, text", [
    (0, "00:00:00.000"),
    (Fraction(48, 5), "00:00:09.600"),
    (Fraction(1001, 30000) * 240, "00:00:08.008"),
    (3723.5, "01:02:03.500"),
    (Fraction(59999, 1000) + Fraction(6, 10000), "00:01:00.000"),  # rounds up across the minute
    (Fraction(-1, 4), "-00:00:00.250"),
    (100 * 3600, "100:00:00.000"),
])
def test_format_timestamp(seconds, text):
    assert format_timestamp(seconds) == text


def test_label_and_file_name():
    assert frame_label(Fraction(48, 5), 240) == "00:00:09.600  #240"
    assert frame_file_name(Fraction(48, 5), 240) == "frame_000240_00-00-09.600.png"


# ---------------------------------------------------------------- picking frames


@pytest.mark.parametrize("n_frames, every", [(50, 12), (48, 12), (7, 1), (5, 10)])
def test_every_nth_frame_is_picked(tmp_path, n_frames, every):
    clip = make_video(tmp_path / "clip.mp4", n_frames=n_frames, audio_streams=0)
    picked, _, _ = sample(clip, every, seek=None)
    assert [number for _, number in picked] == list(range(0, n_frames, every))
    assert len(picked) == math.ceil(n_frames / every)
    assert [t for t, _ in picked] == [Fraction(n, 25) for n in range(0, n_frames, every)]


def test_start_time_is_kept_in_labels(tmp_path):
    clip = make_video(tmp_path / "late.mp4", n_frames=20, start_pts=50, audio_streams=0)
    picked, _, _ = sample(clip, 10, seek=None)
    assert [number for _, number in picked] == [0, 10]
    assert [format_timestamp(t) for t, _ in picked] == ["00:00:02.000", "00:00:02.400"]


def test_vfr_takes_first_frame_at_or_after_each_target(tmp_path):
    clip = make_video(tmp_path / "vfr.mkv", n_frames=16, vfr=True, audio_streams=0)
    pts_list, time_base = frame_times(16, Fraction(25), True, 0)
    times = [pts * time_base for pts in pts_list]
    every = 2
    expected, k = [], 0
    while True:
        target = Fraction(k * every, 25)
        later = [t for t in times if t >= target]
        if not later:
            break
        expected.append(later[0])
        while Fraction(k * every, 25) <= later[0]:
            k += 1
    picked, _, _ = sample(clip, every, seek=None)
    assert [t for t, _ in picked] == expected
    assert len(set(expected)) == len(expected)  # a long frame is not shown twice
    with av.open(str(clip)) as container:  # the clip really is VFR: its frames last different times
        decoded = [frame.pts * frame.time_base for frame in container.decode(video=0)]
    assert len({b - a for a, b in zip(decoded, decoded[1:])}) > 1


@pytest.mark.parametrize("keyint, every", [(250, 260), (25, 100)])
def test_seeking_decodes_fewer_frames_than_a_linear_pass(tmp_path, keyint, every):
    clip = make_gop_clip(tmp_path / "gop.mp4", 300, keyint)
    linear, linear_decoded, linear_seeks = sample(clip, every, seek=False)
    sought, sought_decoded, seeks = sample(clip, every, seek=None)
    assert sought == linear  # the same frames, by pts
    assert [n for _, n in sought] == list(range(0, 300, every))
    assert linear_seeks == 0 and seeks >= 1
    assert linear_decoded >= sought[-1][1] + 1  # a linear pass decodes every frame up to the last one shown
    # each target costs at most the frames from its keyframe, plus the decoder's lookahead
    assert sought_decoded <= len(sought) * 8 + every % keyint
    assert sought_decoded < linear_decoded / 3


def test_single_keyframe_clip_costs_at_most_one_wasted_gap(tmp_path):
    clip = make_gop_clip(tmp_path / "onegop.mp4", 300, None)
    linear, linear_decoded, _ = sample(clip, 50, seek=False)
    adaptive, adaptive_decoded, _ = sample(clip, 50, seek=None)
    assert adaptive == linear
    # one probing seek lands on frame 0 again; after that the sampler knows better
    assert adaptive_decoded <= linear_decoded + 50 + 8


# ---------------------------------------------------------------- the sheet


def test_sheet_and_frames_dir(tmp_path, colorizer):
    clip = make_video(tmp_path / "clip.mp4", n_frames=25, size=(64, 48), audio_streams=0)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    calls = []
    report = make_preview(clip, tmp_path / "sheet.png", colorizer, every=12, frames_dir=frames_dir,
                          columns=2, thumb_width=40, progress=calls.append)
    assert report.frames_shown == 3 == len(calls)
    files = sorted(frames_dir.iterdir())
    assert [f.name for f in files] == [frame_file_name(Fraction(n, 25), n) for n in (0, 12, 24)]
    assert files == sorted(report.frame_files)
    for path in files:
        with Image.open(path) as image:
            assert image.size == (64, 48) and image.mode == "RGB"
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG"
        assert sheet.width == PADDING + 2 * (2 * 40 + PAIR_GAP + PADDING)
        # 2 rows of 30-pixel thumbnails plus captions and a title line
        assert sheet.height > 2 * 30 + 3 * PADDING
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_each_pair_is_the_source_and_what_the_colorizer_gives_for_it(tmp_path, colorizer):
    """The sheet's "before" is the decoded frame; its "after" is Colorizer's output for that frame, not gray."""
    import numpy as np

    from facecolor_video.film.preview import LABEL_FONT_SIZE, _font, _line_height
    from facecolor_video.training.metrics import mean_chroma
    from tests.media import make_portrait_video

    clip = make_portrait_video(tmp_path / "gray.mp4", n_frames=13, size=(64, 48))
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    sheet_path = tmp_path / "sheet.png"
    # thumbnails at the frame's own size: the sheet holds the pictures themselves, not a resampling of them
    report = make_preview(clip, sheet_path, colorizer, every=6, frames_dir=frames_dir, columns=2, thumb_width=64)
    assert report.frames_shown == 3
    with VideoReader(clip) as reader:
        decoded = [frame.rgb for frame in reader.frames()]
    with Image.open(sheet_path) as image:
        sheet = np.asarray(image.convert("RGB"))
    header = _line_height(_font(LABEL_FONT_SIZE)) + PADDING
    cell_width, cell_height = 2 * 64 + PAIR_GAP, 48 + _line_height(_font(LABEL_FONT_SIZE)) + 4
    for pair, number in enumerate((0, 6, 12)):
        row, column = divmod(pair, 2)
        left = PADDING + column * (cell_width + PADDING)
        top = PADDING + header + row * (cell_height + PADDING)
        before = sheet[top:top + 48, left:left + 64]
        after = sheet[top:top + 48, left + 64 + PAIR_GAP:left + 2 * 64 + PAIR_GAP]
        expected = colorizer.colorize([decoded[number]])[0]
        assert np.array_equal(before, decoded[number]), number
        assert np.array_equal(after, expected), number
        with Image.open(report.frame_files[pair]) as written:
            assert np.array_equal(np.asarray(written.convert("RGB")), expected), number
        assert mean_chroma(before) < 0.5 < mean_chroma(after) and not np.array_equal(before, after)


def test_image_input_gives_one_pair(tmp_path, colorizer):
    image = make_image(tmp_path / "photo.png", size=(40, 30))
    report = make_preview(image, tmp_path / "sheet.png", colorizer, every=240)
    assert report.frames_shown == 1
    assert (tmp_path / "sheet.png").is_file()


def test_output_checks(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=5, audio_streams=0)
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"keep me")
    unused = object()  # never reached: the checks come first
    with pytest.raises(OutputError, match="exists"):
        make_preview(clip, sheet, unused, every=2)
    assert sheet.read_bytes() == b"keep me"
    with pytest.raises(OutputError, match="same file"):
        make_preview(clip, clip, unused, every=2, overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        make_preview(clip, tmp_path / "missing" / "sheet.png", unused, every=2)
    with pytest.raises(OutputError, match="image"):
        make_preview(clip, tmp_path / "sheet.mp4", unused, every=2)
    with pytest.raises(OutputError, match="frames folder"):
        make_preview(clip, tmp_path / "new.png", unused, every=2, frames_dir=tmp_path / "nowhere")


def test_overwrite_replaces_the_sheet(tmp_path, colorizer):
    clip = make_video(tmp_path / "clip.mp4", n_frames=5, audio_streams=0)
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"old")
    make_preview(clip, sheet, colorizer, every=5, overwrite=True)
    with Image.open(sheet) as image:
        assert image.format == "PNG"


def test_cli_preview(tmp_path, colorizer, monkeypatch):
    monkeypatch.setattr(cli, "make_colorizer", lambda recipe: colorizer)
    clip = make_video(tmp_path / "clip.mp4", n_frames=20, audio_streams=0)
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli.main, ["preview", str(clip), "--every", "10", "-o", str(sheet), "--columns", "3",
                                           "--thumb-width", "32", "--render-size", "64"])
    assert result.exit_code == 0, result.output
    assert "2 pair(s)" in result.output
    with Image.open(sheet) as image:  # fewer pairs than columns: the sheet is as wide as they need
        assert image.width == PADDING + 2 * (2 * 32 + PAIR_GAP + PADDING)
    again = CliRunner().invoke(cli.main, ["preview", str(clip), "-o", str(sheet)])
    assert isinstance(again.exception, OutputError) and again.exit_code == 1
