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
from facecolor_video.model.color import rgb_to_lab
from facecolor_video.model.colorizer import Colorizer
from facecolor_video.model.face_detector import Face, load_face_detector

DATA = Path(__file__).parent / "data"
PORTRAIT = DATA / "webmorph_neutral_front_002_03.webp"  # CC BY 4.0, see LICENSE.webmorph
# where the portrait's face sits (x0, y0, x1, y1), read off the photo: eyebrows to chin, cheek to cheek
PORTRAIT_FACE = (52, 42, 112, 122)


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
    assert changed.any()
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
    assert len(placements[16]) == 2 and placements[16][1].crop_lightness is not None
    # faces there when a shot starts show at once; face B, appearing within the shot, fades in
    assert placements[0][0].weight == 1 and placements[20][0].weight == 1
    assert [round(frame[1].weight, 3) for frame in placements[16:20]] == [round(n / 9, 3) for n in (1, 2, 3, 4)]
    # after the cut only the new face, under a new track
    assert [len(frame) for frame in placements[20:]] == [1] * 10
    assert all(p.track not in (first, placements[16][1].track) for frame in placements[20:] for p in frame)
    assert abs(float(placements[20][0].box[0]) - 300) < 1e-4


def test_a_face_seen_again_where_a_track_ended_takes_up_its_global_features(colorizers, monkeypatch):
    faces_on, _ = colorizers
    computed = []
    real = face_stage.crop_global_vectors
    monkeypatch.setattr(face_stage, "crop_global_vectors",
                        lambda colorizer, crops: computed.append(len(crops)) or real(colorizer, crops))

    def script(index):  # one face, hidden from frame 4 to 19, back at the same place
        return [] if 4 <= index < 20 else [(100, 100, 160, 180)]

    tracker = face_stage.FaceTracker(faces_on, ScriptedDetector(script), detect_every=4)
    lightness = torch.zeros(28, 1, 480, 640)
    lightness[:, 0, 0, 0] = torch.arange(28).float()
    placements = []
    blender = face_stage.FaceBlender(faces_on, fade_frames=4)
    for start in range(0, 28, 8):  # the tracker beside decoding, the blender after the head, batch by batch
        batch = tracker.plan(list(range(start, min(start + 8, 28))), [False] * 8, lightness[start:start + 8], 128)
        blender.blend(torch.zeros(len(batch), 2, 60, 80), batch, 480, 640)
        placements += batch
    assert [len(frame) for frame in placements[8:20]] == [0] * 12  # ended after missing two detections
    first, again = placements[0][0], placements[20][0]
    assert again.track != first.track and again.crop_lightness is not None
    assert computed == [1]  # only the first sighting ran VGG16
    assert torch.equal(again.global_vector, first.global_vector)


def test_a_face_fades_to_its_new_colour_over_the_detection_interval(monkeypatch):
    def colorize_crops(colorizer, crops, vectors):  # the face's crop colour: 10 at first, 30 when seen again
        return torch.stack([torch.full((2, 128, 128), value) for value in (10.0, 30.0)[:len(crops)]]), vectors

    monkeypatch.setattr(face_stage, "colorize_crops", colorize_crops)
    blender = face_stage.FaceBlender(colorizer=None, fade_frames=4)
    box = torch.tensor([100.0, 100.0, 200.0, 220.0])
    crop = face_stage.FaceCrop.around(box, 480, 640)

    track = face_stage.Track(7, box, global_vector=torch.zeros(512), global_frame=0)

    def placement(index, refresh):
        return face_stage.FacePlacement(7, box, crop, torch.zeros(1, 128, 128) if refresh else None,
                                        detected=refresh, frame_index=index, owner=track)

    frames = [[placement(index, index in (0, 4))] for index in range(10)]
    ab = blender.blend(torch.zeros(10, 2, 60, 80), frames, 480, 640)
    centre = ab[:, 0, 20, 19].tolist()  # the face's centre at the render size
    # new colour 30 at frame 4, averaged with the current 10 (CROP_MEMORY 0.5): 20, reached by frame 8
    assert centre[:5] == pytest.approx([10, 10, 10, 10, 10])
    assert centre[5:] == pytest.approx([12.5, 15, 17.5, 20, 20])
