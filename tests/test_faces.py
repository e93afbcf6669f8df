"""Faces: YuNet detection on L, tracking through cuts, and a blend that touches nothing outside its masks."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facecolor_video.errors import WeightsError
from facecolor_video.film import faces as face_stage
from facecolor_video.film.pipeline import (
    ColorizeOptions,
    FrameColorizer,
    colorize_file,
    torch_threads,
)
from facecolor_video.media.video import VideoFrame
from facecolor_video.model import weights as weights_registry
from facecolor_video.model.backbone import load_face_prior
from facecolor_video.model.color import rgb_to_lab
from facecolor_video.film.stills import Colorizer
from facecolor_video.model.face_detector import Face, load_face_detector
from facecolor_video.training.face_prior import compute_face_prior

DATA = Path(__file__).parent / "data"
PORTRAIT = DATA / "webmorph_neutral_front_002_03.webp"  # CC BY 4.0, see LICENSE.webmorph
# where the portrait's face sits (x0, y0, x1, y1), read off the photo: eyebrows to chin, cheek to cheek
PORTRAIT_FACE = (52, 42, 112, 122)


# a typical skin colour in CIELAB (a*, b*): roughly the middle of measured human skin colours
SKIN_AB = np.array([13.0, 17.0])


def _face_ab(rgb: np.ndarray, box) -> np.ndarray:
    """Mean a*b* of rgb inside box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    lab = rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb[y0:y1, x0:x1])).permute(2, 0, 1).float().div(255)[None])
    return lab[0, 1:].mean(dim=(1, 2)).numpy()


def _lightness(rgb: np.ndarray) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)[None])[:, :1]


def _portrait() -> np.ndarray:
    return np.asarray(Image.open(PORTRAIT).convert("RGB"))


def _wide_shot(face_height: int = 100) -> tuple[np.ndarray, tuple[float, ...]]:
    """The portrait, gray, pasted small on a 320x240 textured backdrop; returns it and the face's expected box."""
    rng = np.random.default_rng(0)
    backdrop = np.clip(rng.normal(120, 25, (240, 320)).cumsum(axis=1) / 12 + 60, 0, 255).astype(np.uint8)
    portrait = Image.open(PORTRAIT).convert("L").resize((face_height, face_height), Image.BICUBIC)
    left, top = 180, 70
    backdrop[top:top + face_height, left:left + face_height] = np.asarray(portrait)
    scale = face_height / 160
    x0, y0, x1, y1 = PORTRAIT_FACE
    box = (left + x0 * scale, top + y0 * scale, left + x1 * scale, top + y1 * scale)
    return np.repeat(backdrop[..., None], 3, axis=-1), box


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)


@pytest.fixture(scope="module")
def detector():
    return load_face_detector()


@pytest.fixture(scope="module")
def colorizers():
    return Colorizer(device="cpu", faces="auto"), Colorizer(device="cpu", faces="off")


def test_detector_finds_the_bundled_portrait_with_its_landmarks(detector):
    faces = detector.detect(_lightness(_portrait()))[0]
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.6
    assert _iou(face.box.tolist(), PORTRAIT_FACE) > 0.6
    (right_eye, left_eye, nose, mouth_right, mouth_left) = face.landmarks.tolist()
    x0, y0, x1, y1 = face.box.tolist()
    for x, y in face.landmarks.tolist():
        assert x0 <= x <= x1 and y0 <= y <= y1
    assert right_eye[0] < left_eye[0] and mouth_right[0] < mouth_left[0]  # as seen in the picture
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])


def test_detector_finds_a_small_gray_face_in_a_wide_frame(detector):
    frame, expected = _wide_shot(face_height=80)
    faces = detector.detect(_lightness(frame))[0]
    assert len(faces) == 1
    assert _iou(faces[0].box.tolist(), expected) > 0.5


def test_detector_finds_nothing_in_a_frame_without_faces(detector):
    rng = np.random.default_rng(3)
    noise = np.repeat(rng.integers(0, 255, (120, 160), dtype=np.uint8)[..., None], 3, axis=-1)
    assert detector.detect(_lightness(noise))[0] == []


def test_altered_detector_weights_are_refused(tmp_path):
    shipped = weights_registry.find(weights_registry.FACE_DETECTOR)
    altered = tmp_path / shipped.name
    shutil.copy(shipped, altered)
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_face_detector(altered)


def test_altered_face_prior_is_refused(tmp_path):
    shipped = weights_registry.find(weights_registry.FACE_PRIOR)
    altered = tmp_path / shipped.name
    shutil.copy(shipped, altered)
    data = bytearray(altered.read_bytes())
    data[-40] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_face_prior(altered)


def test_the_face_prior_is_the_mean_global_features_of_face_crops(colorizers, tmp_path):
    faces_on, faces_off = colorizers
    wide, _ = _wide_shot(120)
    Image.fromarray(_portrait()).save(tmp_path / "a.png")
    Image.fromarray(wide).save(tmp_path / "b.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "no_face.png")
    paths = sorted(tmp_path.iterdir())
    prior, crops = compute_face_prior(faces_off.global_features, paths)
    assert crops == 2  # the image without a face is left out
    detector = faces_on.face_detector
    each = []
    for path in paths[:2]:
        lightness = _lightness(np.asarray(Image.open(path).convert("RGB")))
        crop = face_stage.FaceCrop.around(detector.detect(lightness)[0][0].box, *lightness.shape[-2:])
        each.append(faces_off.global_features(face_stage.crop_lightness(lightness, [crop], [0])))
    assert torch.allclose(prior, torch.cat(each).float().mean(0), atol=1e-3)
    # the shipped prior is a face's features: nearer a face crop's than a plain frame's
    shipped = load_face_prior()
    cosine = torch.nn.functional.cosine_similarity
    plain = faces_off.fresh_global_vectors(torch.full((1, 1, 128, 128), 50.0))[0].float()
    assert cosine(shipped, prior, dim=0) > cosine(shipped, plain, dim=0)


def test_blend_writes_only_where_the_mask_is_above_zero():
    ab = torch.randn(2, 60, 80) * 20
    before = ab.clone()
    box = torch.tensor([100.0, 60.0, 160.0, 140.0])  # frame 480x640, a*b* at 60x80
    crop = face_stage.FaceCrop.around(box, 480, 640)
    face_stage.paste_crop_ab(ab, torch.full((2, 128, 128), 40.0), crop, box, 480, 640)
    mask, (top, bottom, left, right) = face_stage.ellipse_mask(box, 60, 80, 60 / 480, 80 / 640)
    outside = torch.ones(60, 80, dtype=torch.bool)
    outside[top:bottom, left:right] = mask[0] == 0
    assert torch.equal(ab[:, outside], before[:, outside])
    assert not torch.equal(ab[:, ~outside], before[:, ~outside])
    # full weight at the centre: the crop's colour exactly
    assert torch.allclose(ab[:, 12, 16], torch.tensor([40.0, 40.0]))


def test_faces_change_only_pixels_near_their_masks_and_stills_match_films(colorizers):
    faces_on, faces_off = colorizers
    frame, expected = _wide_shot(face_height=100)
    video_frames = [VideoFrame(frame.copy(), pts=i, index=i) for i in range(3)]

    def run(colorizer):
        stream = FrameColorizer(colorizer, smooth="none")
        return [f.rgb for f in stream.process(video_frames) + stream.finish()]

    with_faces, without = run(faces_on), run(faces_off)
    # the photo path (Colorizer.colorize) and the film path give the same first frame
    assert np.array_equal(faces_on.colorize(frame[None])[0], with_faces[0])
    assert np.array_equal(faces_off.colorize(frame[None])[0], without[0])
    changed = np.any(with_faces[0] != without[0], axis=-1)
    # the face gets a skin colour: its mean a*b* nearer a typical skin tone than the frame's prediction
    # gives it (measured 2.2 a*b* units from SKIN_AB with faces, 7.8 without)
    on, off = (float(np.hypot(*(_face_ab(rgb, expected) - SKIN_AB))) for rgb in (with_faces[0], without[0]))
    assert on < 4.0 and off - on >= 3.0, (on, off)
    # every changed pixel lies within the face's ellipse window, widened by the bilinear
    # upsampling's reach (one render pixel, 240/128 frame pixels here)
    prepared = faces_on.prepare([frame])
    small_height, small_width = prepared.small_lightness.shape[-2:]
    _, (top, bottom, left, right) = face_stage.ellipse_mask(
        torch.tensor(expected), small_height, small_width, small_height / 240, small_width / 320)
    rows, cols = np.nonzero(changed)
    reach_y, reach_x = 240 / small_height, 320 / small_width
    assert rows.min() >= (top - 1) * reach_y and rows.max() <= (bottom + 1) * reach_y
    assert cols.min() >= (left - 1) * reach_x and cols.max() <= (right + 1) * reach_x
    # luminance is the source's
    for colour, gray in ((with_faces[0], without[0]),):
        assert np.abs(_lightness(colour) - _lightness(gray)).max() < 1.0


def test_a_photo_file_and_the_library_give_the_same_faces(colorizers, tmp_path):
    faces_on, _ = colorizers
    frame, _ = _wide_shot(face_height=90)
    Image.fromarray(frame).save(tmp_path / "wide.png")
    debug = tmp_path / "debug"
    colorize_file(tmp_path / "wide.png", tmp_path / "out.png", faces_on, ColorizeOptions(faces_debug=debug))
    written = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    with torch_threads(1):  # as colorize_file runs the network on a CPU
        assert np.array_equal(written, faces_on.colorize(frame[None])[0])
    drawn = np.asarray(Image.open(debug / "faces_000000.png").convert("RGB"))
    assert (np.all(drawn == (0, 255, 0), axis=-1)).sum() > 100  # the refined face's box, in green


class ScriptedDetector:
    """Returns the faces a script gives for each frame; the frame index is read from L's first pixel."""

    def __init__(self, script):
        self.script = script
        self.calls: list[int] = []

    score_threshold = 0.6

    def detect(self, lightness, score_threshold=None):
        indices = [round(float(frame[0, 0, 0])) for frame in lightness]
        self.calls += indices
        return [[Face(torch.tensor(box, dtype=torch.float32), 0.9, torch.zeros(5, 2)) for box in self.script(index)]
                for index in indices]


def test_tracking_follows_a_face_smoothly_starts_new_faces_and_resets_at_a_cut(colorizers):
    faces_on, _ = colorizers

    def script(index):
        boxes = []
        if index < 20:  # face A walks right 2 px per frame
            boxes.append((100 + 2 * index, 100, 160 + 2 * index, 180))
        if 10 <= index < 20:  # face B enters at frame 10, between detections
            boxes.append((400, 50, 450, 120))
        if index >= 20:  # a cut: another face elsewhere
            boxes.append((300, 300, 350, 370))
        return boxes

    detector = ScriptedDetector(script)
    tracker = face_stage.FaceTracker(faces_on, detector, detect_every=8)
    lightness = torch.zeros(30, 1, 480, 640)
    lightness[:, 0, 0, 0] = torch.arange(30).float()
    new_shot = [index == 20 for index in range(30)]
    placements = []
    for start in range(0, 30, 6):  # batches of 6, as a pipeline hands them
        placements += tracker.plan(list(range(start, start + 6)), new_shot[start:start + 6],
                                   lightness[start:start + 6], render_height=128)
    assert detector.calls == [0, 8, 16, 20, 24]  # every 8th frame and at the cut
    first = placements[0][0].track
    walking = [next(p for p in frame if p.track == first) for frame in placements[:20]]
    lefts = [float(p.box[0]) for p in walking]
    steps = np.diff(lefts)
    assert np.all(steps >= 0) and steps.max() <= 6  # moves with the face, no jump
    assert abs(lefts[19] - (100 + 2 * 19)) < 12
    # face B: not before the detection after it appears, then tracked, with a crop to colorize
    assert all(len(frame) == 1 for frame in placements[:16])
    assert len(placements[16]) == 2 and placements[16][1].crop_ab is not None
    # faces there when a shot starts show at once; face B, appearing within the shot, fades in
    assert placements[0][0].weight == 1 and placements[20][0].weight == 1
    assert [round(frame[1].weight, 3) for frame in placements[16:20]] == [round(n / 9, 3) for n in (1, 2, 3, 4)]
    # after the cut only the new face, under a new track
    assert [len(frame) for frame in placements[20:]] == [1] * 10
    assert all(p.track not in (first, placements[16][1].track) for frame in placements[20:] for p in frame)
    assert abs(float(placements[20][0].box[0]) - 300) < 1e-4


def _plan(tracker, count, batch=8):
    lightness = torch.zeros(count, 1, 480, 640)
    lightness[:, 0, 0, 0] = torch.arange(count).float()
    placements = []
    for start in range(0, count, batch):
        end = min(start + batch, count)
        placements += tracker.plan(list(range(start, end)), [False] * (end - start), lightness[start:end], 128)
    return placements


def test_a_missed_face_fades_out_and_back_in_under_the_same_track(colorizers):
    faces_on, _ = colorizers

    def script(index):  # one face, missed by the detection at frame 4, found again at 8; gone from 12
        return [] if index == 4 or index >= 12 else [(100, 100, 160, 180)]

    placements = _plan(face_stage.FaceTracker(faces_on, ScriptedDetector(script), detect_every=4), 28, batch=4)
    weights = [frame[0].weight if frame else 0.0 for frame in placements]
    # fading out over two detection intervals from the miss at 4, back in from 8 where it was
    assert weights[:4] == [1.0] * 4
    assert weights[4:8] == pytest.approx([1, 7 / 8, 6 / 8, 5 / 8])
    # seen again at 8 (at weight 4/8): from there up over a detection interval (steps of 1/5)
    assert weights[8:12] == pytest.approx([0.5, 0.7, 0.9, 1.0])
    # the same track throughout: its colour is never dropped and started again
    assert len({p.track for frame in placements for p in frame}) == 1
    # gone from 12: fades out over eight frames, then its track ends
    assert weights[12:21] == pytest.approx([1 - n / 8 for n in range(8)] + [0.0])
    assert all(not frame for frame in placements[20:])


def test_detection_runs_half_as_often_while_no_face_is_tracked(colorizers):
    faces_on, _ = colorizers
    detector = ScriptedDetector(lambda index: [(100, 100, 160, 180)] if 40 <= index < 60 else [])
    _plan(face_stage.FaceTracker(faces_on, detector, detect_every=4), 96, batch=4)
    # every 8th frame without faces; every 4th from the detection that found one (at 40) until its
    # track has faded out (two intervals after the miss at 60), then every 8th again
    assert detector.calls == [0, 8, 16, 24, 32, 40, 44, 48, 52, 56, 60, 64, 68, 72, 80, 88]


def test_a_tracked_face_is_colorized_again_only_every_recolour_interval(colorizers):
    faces_on, _ = colorizers
    tracker = face_stage.FaceTracker(faces_on, ScriptedDetector(lambda index: [(100, 100, 160, 180)]), detect_every=4)
    placements = _plan(tracker, 60)
    coloured = [index for index, frame in enumerate(placements) if frame[0].crop_ab is not None]
    assert coloured == list(range(0, 60, face_stage.RECOLOUR_EVERY))


def test_a_face_that_moved_further_than_its_box_keeps_its_track(colorizers):
    faces_on, _ = colorizers

    def script(index):  # 60 px wide, 80 tall; jumps 70 px right between detections 8 and 12
        return [(100, 100, 160, 180)] if index < 12 else [(170, 100, 230, 180)]

    placements = _plan(face_stage.FaceTracker(faces_on, ScriptedDetector(script), detect_every=4), 16)
    assert len({p.track for frame in placements for p in frame}) == 1
    assert all(len(frame) == 1 and frame[0].weight == 1 for frame in placements)
    lefts = [float(frame[0].box[0]) for frame in placements]
    assert lefts[:13] == pytest.approx([100] * 13) and 100 < lefts[13] < lefts[14] < lefts[15]  # it follows


def test_a_face_fades_to_its_new_colour_over_the_detection_interval(monkeypatch):
    blender = face_stage.FaceBlender(fade_frames=4)
    box = torch.tensor([100.0, 100.0, 200.0, 220.0])
    crop = face_stage.FaceCrop.around(box, 480, 640)

    def placement(index, refresh):  # the face's crop colour: 10 at first, 30 when seen again
        colour = torch.full((2, 128, 128), 10.0 if index == 0 else 30.0) if refresh else None
        return face_stage.FacePlacement(7, box, crop, colour, recolour=refresh, frame_index=index)

    frames = [[placement(index, index in (0, 4))] for index in range(10)]
    ab = blender.blend(torch.zeros(10, 2, 60, 80), frames, 480, 640)
    centre = ab[:, 0, 20, 19].tolist()  # the face's centre at the render size
    # new colour 30 at frame 4, averaged with the current 10 (CROP_MEMORY 0.5): 20, reached by frame 8
    assert centre[:5] == pytest.approx([10, 10, 10, 10, 10])
    assert centre[5:] == pytest.approx([12.5, 15, 17.5, 20, 20])
