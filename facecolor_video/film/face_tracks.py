"""Faces over a film: followed from frame to frame, and their crops' colour blended in.

Detection runs every ``detect_every`` frames and at every scene cut, boxes in
between are carried by their track and smoothed, and each track keeps its
crop's global features and a*b* for a few frames, so colour neither pumps nor
costs a crop per frame. What a crop is and how its colour is pasted is in
:mod:`.face_crops`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..model.colorizer import Colorizer
from ..model.face_detector import Face, FaceDetector
from .face_crops import FaceCrop, colorize_crops, crop_lightness, paste_crop_ab, refinable

DETECT_EVERY = 12  # frames between detections (and at every scene cut)
VELOCITY_SMOOTHING = 0.5  # weight of the newest motion estimate in a track's velocity
MATCH_IOU = 0.3  # a detection continues the track whose predicted box it overlaps at least this much
# A detection that overlaps no track still continues one whose centre is within REACH of its
# height and whose size is within SIZE_RATIO of its own: an actor who moved fast between two
# detections is the same face, and a new track would make its colour fade out and in again
REACH = 1.0
SIZE_RATIO = 1.6
MISSES_ALLOWED = 1  # detections a track may miss (a face turned away) before it ends
# hysteresis: a detection continues a track from this score, starts one only from the detector's
CONTINUE_SCORE = 0.45
CROP_MEMORY = 0.5  # weight of the previous crop a*b* when a track's crop is colorized again
# A track's crop is colorized when it starts, then at the first detection at least this many
# frames after the last time: a face's colour changes slowly, and each crop costs as much as
# half a frame's head. A panning crowd of 3-4 faces at 640x480, recolouring every 12 / 24 / 48
# frames: 0.78 / 0.80-0.82 / 0.87 of --faces off's speed, CIEDE2000 in the faces 9.8 / 10.1 /
# 10.6 (off: 17.5)
RECOLOUR_EVERY = 48
MAX_TRACKS = 8  # faces refined per frame of a film, the largest first (a crowd costs at most this)


def _centre_inside(box: torch.Tensor, other: torch.Tensor) -> bool:
    centre_x, centre_y = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
    return float(other[0]) <= centre_x <= float(other[2]) and float(other[1]) <= centre_y <= float(other[3])


def _within_reach(box: torch.Tensor, track_box: torch.Tensor) -> float | None:
    """How far ``box``'s centre is from ``track_box``'s, in track heights; None when out of reach or size."""
    height, other_height = float(box[3] - box[1]), float(track_box[3] - track_box[1])
    if min(height, other_height) <= 0 or max(height, other_height) > SIZE_RATIO * min(height, other_height):
        return None
    centre = (box[:2] + box[2:]) / 2
    other_centre = (track_box[:2] + track_box[2:]) / 2
    distance = float(torch.linalg.vector_norm(centre - other_centre)) / other_height
    return distance if distance <= REACH else None


def box_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou as iou

    if first.numel() == 0 or second.numel() == 0:
        return torch.zeros(first.shape[0], second.shape[0])
    return iou(first, second)


@dataclass
class Track:
    """One face followed through a shot: its smoothed box and motion, and how visible its colour is."""

    ident: int
    box: torch.Tensor  # where the track's box is at last_frame, frame pixels
    last_frame: int = 0
    velocity: torch.Tensor = field(default_factory=lambda: torch.zeros(4))  # smoothed, pixels per frame
    # the gap to the last detection, closed over the frames until the next one
    correction: torch.Tensor = field(default_factory=lambda: torch.zeros(4))
    correction_frames: int = 1
    detected: torch.Tensor | None = None  # the last detection's raw box
    detected_frame: int = 0
    misses: int = 0
    # The face's colour fades in from fade_in_from (None: it was there when the shot began)
    # and out from fade_out_from (None: it is seen): a face that comes or goes, or that the
    # detector misses for a while, never pops.
    fade_in_from: float | None = None
    fade_out_from: int | None = None
    coloured_frame: int | None = None  # where its crop was last colorized

    def box_at(self, frame_index: int) -> torch.Tensor:
        elapsed = frame_index - self.last_frame
        return self.box + self.velocity * elapsed + self.correction * min(elapsed, self.correction_frames)

    def weight_at(self, frame_index: int, fade_in_frames: int, fade_out_frames: int) -> float:
        weight = 1.0
        if self.fade_in_from is not None:
            weight = min(1.0, (frame_index - self.fade_in_from + 1) / (fade_in_frames + 1))
        if self.fade_out_from is not None:
            weight = min(weight, 1.0 - (frame_index - self.fade_out_from) / fade_out_frames)
        return max(weight, 0.0)

    def stop(self, frame_index: int) -> None:
        """Hold the box where it is now (a missed detection: the motion is no longer known)."""
        self.box, self.last_frame = self.box_at(frame_index), frame_index
        self.velocity, self.correction = torch.zeros(4), torch.zeros(4)

    def observe(self, detected: torch.Tensor, frame_index: int, glide_frames: int, fade_out_frames: int) -> None:
        """A new detection: the box stays where it was predicted and glides towards the face.

        Snapping to each detection would move the blend ellipse (and the colour
        under it) in steps every few frames; instead the gap is closed evenly
        over the next ``glide_frames`` frames, on top of the smoothed velocity.
        A track that was fading out fades back in from where it is.
        """
        predicted = self.box_at(frame_index)
        if self.detected is not None and frame_index > self.detected_frame:
            motion = (detected - self.detected) / (frame_index - self.detected_frame)
            first = not self.velocity.any()
            self.velocity = motion if first else self.velocity + VELOCITY_SMOOTHING * (motion - self.velocity)
        if self.fade_out_from is not None:
            weight = self.weight_at(frame_index, glide_frames, fade_out_frames)
            self.fade_in_from = frame_index + 1 - weight * (glide_frames + 1)
            self.fade_out_from = None
        self.box, self.last_frame = predicted, frame_index
        self.correction = (detected - predicted) / glide_frames
        self.correction_frames = glide_frames
        self.detected, self.detected_frame, self.misses = detected, frame_index, 0


@dataclass
class FacePlacement:
    """What the blending step needs for one face in one frame.

    crop_ab is set on frames where the track's crop was colorized again; on
    the other frames the track's last crop a*b* is placed at ``box``.
    """

    track: int
    box: torch.Tensor
    crop: FaceCrop
    crop_ab: torch.Tensor | None = None
    recolour: bool = False  # the crop is colorized again on this frame
    frame_index: int = 0
    weight: float = 1.0  # below 1 while the face's colour fades in or out


class FaceTracker:
    """Where the faces are in each frame of a film; runs beside decoding (``FrameColorizer.prepare``).

    Detection runs on frames whose index is a multiple of ``detect_every`` (or of
    twice that while no face is tracked) and on the first frame of every shot (a schedule fixed by position, as for the
    global features, so a segment decoded from a seek finds the same faces).
    Between detections each track's box moves with its smoothed velocity. A
    detection continues the track it overlaps most (IoU), or else one within
    reach of it; the box does not jump to it but glides there over the next
    ``detect_every`` frames (``Track.observe``), so the blend ellipse moves
    evenly. A track that misses a detection holds still and its colour starts
    to fade out, over ``(MISSES_ALLOWED + 1) * detect_every`` frames; seen
    again in time, it fades back in. A new face starts a track at the first
    detection that sees it and fades in, unless the shot starts with it. A
    track's crop is colorized when it starts and again at its first detection
    ``RECOLOUR_EVERY`` frames or more after the last.
    """

    def __init__(self, colorizer: Colorizer, detector: FaceDetector, detect_every: int = DETECT_EVERY):
        self.colorizer = colorizer
        self.detector = detector
        self.detect_every = max(1, int(detect_every))
        self.birth_score = detector.score_threshold
        self.tracks: list[Track] = []
        self._next_ident = 0
        self._first = True
        # detection frames' faces (all found, refined or not), for the debug pictures
        self.found: dict[int, list[Face]] = {}

    @property
    def fade_out_frames(self) -> int:
        return (MISSES_ALLOWED + 1) * self.detect_every

    @torch.no_grad()
    def plan(self, frame_indices: list[int], new_shot: list[bool], lightness: torch.Tensor,
             render_height: int) -> list[list[FacePlacement]]:
        """For each frame of a batch (full-resolution L (N, 1, H, W)), where its faces are."""
        frame_height, frame_width = lightness.shape[-2:]
        # Every detect_every frames while the shot has faces, every second time while it has none
        # (most footage has no face most of the time: detection is then half the face stage's cost);
        # at every cut, and on the first frame of a stream, so a segment that starts between
        # detections finds its faces. The schedule stays fixed by position.
        interval = self.detect_every if self.tracks else 2 * self.detect_every
        detect_at = [i for i, (index, cut) in enumerate(zip(frame_indices, new_shot))
                     if cut or index % interval == 0 or (i == 0 and self._first)]
        first, self._first = self._first, False
        # weaker faces too, for tracks to continue through them
        weakest = min(self.birth_score, CONTINUE_SCORE)
        detections = dict(zip(detect_at, self.detector.detect(lightness[detect_at], weakest))) if detect_at else {}
        placements: list[list[FacePlacement]] = []
        for i, index in enumerate(frame_indices):
            if new_shot[i]:
                self.tracks = []
            recolour: set[int] = set()
            if i in detections:
                self.found[index] = [face for face in detections[i] if face.score >= self.birth_score]
                faces = [face for face in detections[i] if refinable(face, render_height, frame_height)]
                faces = sorted(faces, key=lambda face: -face.height)[:MAX_TRACKS]
                recolour = self._update(index, faces, shot_start=new_shot[i] or (i == 0 and first))
            self.tracks = [track for track in self.tracks if self._weight(track, index) > 0]
            placements.append([self._place(track, index, recolour, frame_height, frame_width) for track in self.tracks])
        self._crops(placements, lightness)
        return placements

    def _weight(self, track: Track, index: int) -> float:
        return track.weight_at(index, self.detect_every, self.fade_out_frames)

    def _update(self, index: int, faces: list[Face], shot_start: bool) -> set[int]:
        """Match one frame's detections to the tracks; returns the idents of those whose crop to colorize now."""
        predicted = torch.stack([track.box_at(index) for track in self.tracks]) if self.tracks else torch.zeros(0, 4)
        found = torch.stack([face.box for face in faces]) if faces else torch.zeros(0, 4)
        overlap = box_iou(predicted, found)
        matched_tracks: set[int] = set()
        matched_faces: set[int] = set()

        def match(t: int, f: int) -> None:
            matched_tracks.add(t)
            matched_faces.add(f)
            self.tracks[t].observe(found[f], index, self.detect_every, self.fade_out_frames)

        # greedy: the best-overlapping pairs first; a weaker overlap still continues a track when the
        # face's centre lies in its box (a track that drifted must not leave a second track on the face)
        pairs = sorted(((float(overlap[t, f]), t, f) for t in range(len(self.tracks)) for f in range(len(faces))),
                       reverse=True)
        for value, t, f in pairs:
            if t not in matched_tracks and f not in matched_faces and value > 0 and (
                    value >= MATCH_IOU or _centre_inside(found[f], predicted[t])):
                match(t, f)
        # then the nearest within reach, for faces that moved further than their box
        near = sorted((distance, t, f) for t in range(len(self.tracks)) for f in range(len(faces))
                      if t not in matched_tracks and f not in matched_faces
                      and (distance := _within_reach(found[f], predicted[t])) is not None)
        for _, t, f in near:
            if t not in matched_tracks and f not in matched_faces:
                match(t, f)
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.misses += 1
                track.stop(index)  # not seen: it waits where it is rather than drifting on
                if track.fade_out_from is None:
                    track.fade_out_from = index
        for f, face in enumerate(faces):
            if f in matched_faces or face.score < self.birth_score:
                continue
            # a face there when the shot starts shows at once; one that appears later fades in
            self.tracks.append(Track(self._next_ident, face.box.float(), last_frame=index, detected=face.box.float(),
                                     detected_frame=index, fade_in_from=None if shot_start else index))
            self._next_ident += 1
        self.tracks = sorted(self.tracks, key=lambda track: -float(track.box[3] - track.box[1]))[:MAX_TRACKS]
        recolour = set()
        for track in self.tracks:
            if track.detected_frame == index and track.misses == 0 and (
                    track.coloured_frame is None or index - track.coloured_frame >= RECOLOUR_EVERY):
                track.coloured_frame = index
                recolour.add(track.ident)
        return recolour

    def _place(self, track: Track, index: int, recolour: set[int], frame_height: int,
               frame_width: int) -> FacePlacement:
        box = track.box_at(index)
        return FacePlacement(track.ident, box, FaceCrop.around(box, frame_height, frame_width),
                             recolour=track.ident in recolour, frame_index=index,
                             weight=self._weight(track, index))

    def _crops(self, placements: list[list[FacePlacement]], lightness: torch.Tensor) -> None:
        """Cut and colorize the crops due in this batch.

        Here, beside decoding, rather than after the head: a crop needs only its
        L and the face prior, and on a CPU the network thread is the longer one.
        """
        due = [(i, placement) for i, frame in enumerate(placements) for placement in frame if placement.recolour]
        if due:
            crops = crop_lightness(lightness, [placement.crop for _, placement in due], [i for i, _ in due])
            for colour, (_, placement) in zip(colorize_crops(self.colorizer, crops), due):
                placement.crop_ab = colour


class FaceBlender:
    """Blends each tracked face's crop a*b* into its frame's prediction; runs after ``Colorizer.predict``.

    Keeps each track's crop colour: where the tracker cut a new crop it is
    colorized again, averaged with the colour so far (``CROP_MEMORY``), and
    the face fades from the old colour to the new one over the next
    ``detect_every`` frames instead of changing at once (against pumping); in
    between, the colour is placed as it is at the track's current box.
    """

    def __init__(self, fade_frames: int = DETECT_EVERY):
        self.fade_frames = max(1, int(fade_frames))
        self.crop_ab: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}  # ident -> from, to, fade start

    def reset(self) -> None:
        self.crop_ab = {}

    def _colour_at(self, ident: int, frame_index: int) -> torch.Tensor | None:
        state = self.crop_ab.get(ident)
        if state is None:
            return None
        before, after, start = state
        weight = min(max((frame_index - start) / self.fade_frames, 0.0), 1.0)
        return after if weight >= 1 or before is after else before + weight * (after - before)

    def _refresh(self, ident: int, fresh: torch.Tensor, frame_index: int) -> None:
        current = self._colour_at(ident, frame_index)
        if current is None:
            self.crop_ab[ident] = (fresh, fresh, frame_index)
        else:
            self.crop_ab[ident] = (current, fresh + CROP_MEMORY * (current - fresh), frame_index)

    @torch.no_grad()
    def blend(self, ab: torch.Tensor, placements: list[list[FacePlacement]], frame_height: int,
              frame_width: int) -> torch.Tensor:
        """a*b* (N, 2, h, w) at the render size -> with the faces blended in (a new tensor when any)."""
        if not any(placements):
            return ab
        ab = ab.clone()
        alive = set()
        for index, frame in enumerate(placements):
            for placement in frame:
                alive.add(placement.track)
                if placement.crop_ab is not None:
                    self._refresh(placement.track, placement.crop_ab, placement.frame_index)
                crop_ab = self._colour_at(placement.track, placement.frame_index)
                if crop_ab is not None:
                    paste_crop_ab(ab[index], crop_ab, placement.crop, placement.box, frame_height, frame_width,
                                  placement.weight)
        for ident in [ident for ident in self.crop_ab if ident not in alive]:
            del self.crop_ab[ident]
        return ab


class FaceRefiner:
    """The face stage of ``FrameColorizer``: ``plan`` beside decoding, ``blend`` after the head.

    debug_dir: a folder that receives, for every frame where detection ran, the
    colorized frame with the faces drawn: green the refined ones (their smoothed
    box), yellow the ones left to the frame (too small, or a close-up), with
    their landmarks.
    """

    def __init__(self, colorizer: Colorizer, detector: FaceDetector, debug_dir: str | Path | None = None):
        self.colorizer = colorizer
        self.tracker = FaceTracker(colorizer, detector)
        self.blender = FaceBlender(self.tracker.detect_every)
        self.debug_dir = Path(debug_dir) if debug_dir is not None else None
        if self.debug_dir is not None:
            self.debug_dir.mkdir(parents=True, exist_ok=True)
        self._debug_boxes: dict[int, list[torch.Tensor]] = {}

    @classmethod
    def for_colorizer(cls, colorizer: Colorizer, debug_dir: str | Path | None = None) -> FaceRefiner | None:
        """The stage for a colorizer made with ``faces="auto"``; None when its faces are off."""
        detector = getattr(colorizer, "face_detector", None)
        return None if detector is None else cls(colorizer, detector, debug_dir)

    def plan(self, frame_indices: list[int], new_shot: list[bool], lightness: torch.Tensor,
             render_height: int) -> list[list[FacePlacement]]:
        with self.colorizer.stage("faces"):
            placements = self.tracker.plan(frame_indices, new_shot, lightness, render_height)
        if self.debug_dir is not None:
            for index, frame in zip(frame_indices, placements):
                if index in self.tracker.found:
                    self._debug_boxes[index] = [placement.box for placement in frame]
        else:
            self.tracker.found.clear()
        return placements

    def blend(self, ab: torch.Tensor, placements: list[list[FacePlacement]], frame_height: int,
              frame_width: int) -> torch.Tensor:
        with self.colorizer.stage("faces"):
            return self.blender.blend(ab, placements, frame_height, frame_width)

    def write_debug(self, frames: list) -> None:
        """Save the frames (colorized ``VideoFrame``s) where faces were detected, boxes drawn."""
        if self.debug_dir is None:
            return
        from PIL import Image

        for frame in frames:
            refined = self._debug_boxes.pop(frame.index, None)
            found = self.tracker.found.pop(frame.index, None)
            if refined is None and found is None:
                continue
            rgb = frame.rgb if frame.rgb.dtype == np.uint8 else (frame.rgb >> 8).astype(np.uint8)
            picture = draw_faces(rgb, found or [], refined or [])
            Image.fromarray(picture).save(self.debug_dir / f"faces_{frame.index:06d}.png")


def draw_faces(rgb: np.ndarray, found: list[Face], refined: list[torch.Tensor]) -> np.ndarray:
    """A copy of an RGB frame with box outlines: yellow every face found, green the refined ones' boxes."""
    picture = rgb.copy()
    height, width = picture.shape[:2]

    def outline(box, colour, thickness=2):
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        x0, x1 = sorted((min(max(x0, 0), width - 1), min(max(x1, 0), width - 1)))
        y0, y1 = sorted((min(max(y0, 0), height - 1), min(max(y1, 0), height - 1)))
        picture[y0:y0 + thickness, x0:x1 + 1] = colour
        picture[max(y1 - thickness + 1, 0):y1 + 1, x0:x1 + 1] = colour
        picture[y0:y1 + 1, x0:x0 + thickness] = colour
        picture[y0:y1 + 1, max(x1 - thickness + 1, 0):x1 + 1] = colour

    for face in found:
        outline(face.box, (255, 220, 0), 1)
        for x, y in face.landmarks.tolist():
            column, row = round(x), round(y)
            picture[max(row - 1, 0):row + 2, max(column - 1, 0):column + 2] = (255, 220, 0)
    for box in refined:
        outline(box, (0, 255, 0), 2)
    return picture
