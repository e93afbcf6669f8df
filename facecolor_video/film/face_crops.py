"""Faces get their close-up: each face is colorized from a crop at the model's training scale.

At the default render size a face 90 px tall in a 1024x576 frame is about 20
px of colour map, and the global features describe the whole scene, not the
face: faces come out gray-brown. Here each face found by YuNet is cut out of the
full-resolution L as a square crop around it (``CROP_EXPAND`` times the face),
scaled to the training size (128 px), colorized with global features of its
own, and its a*b* blended into the frame's prediction through a feathered
ellipse. Only a*b* changes; luminance is the source's. Outside the ellipses
(where the mask is exactly 0) the prediction is left bit for bit as it was.

This module holds one picture's part: the crop, its colour, the mask and the
paste, and the stills path (``refine_stills``). Faces over a film are in
:mod:`.face_tracks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.colorizer import Colorizer
from ..model.face_detector import Face, FaceDetector

# side of the square crop around a face, as a multiple of the face box's larger side:
# the training face crops (UTKFace, aligned) show the head with a little hair and neck
CROP_EXPAND = 1.8
CROP_SIZE = 128  # the training crops' size: the scale the head knows faces at
# faces smaller than this (box height, frame pixels) are left to the frame's prediction
MIN_FACE = 24
# a face already this tall at the render size is a close-up: the frame's own prediction sees it whole
CLOSE_UP_RENDER_HEIGHT = 64
# the blend ellipse: semi-axes as multiples of half the box's width and height, full
# weight inside INNER of that radius, fading to 0 at OUTER
ELLIPSE_SCALE = (1.15, 1.3)
ELLIPSE_INNER = 0.75
ELLIPSE_OUTER = 1.15


@dataclass
class FaceCrop:
    """Where a face crop sits in the frame: a square with top-left (left, top) and ``side``, frame pixels."""

    left: float
    top: float
    side: float

    @classmethod
    def around(cls, box: torch.Tensor, height: int, width: int, expand: float = CROP_EXPAND) -> FaceCrop:
        """The square ``expand`` times the box's larger side, centred on it, moved inside the frame."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = min(expand * max(x1 - x0, y1 - y0), height, width)
        left = min(max((x0 + x1 - side) / 2, 0.0), width - side)
        top = min(max((y0 + y1 - side) / 2, 0.0), height - side)
        return cls(left, top, side)

    def as_roi(self) -> list[float]:
        return [self.left, self.top, self.left + self.side, self.top + self.side]


def crop_lightness(lightness: torch.Tensor, crops: list[FaceCrop], frame_of: list[int],
                   size: int = CROP_SIZE) -> torch.Tensor:
    """Full-resolution L (N, 1, H, W) -> the crops (K, 1, size, size), area-averaged (no aliasing)."""
    from torchvision.ops import roi_align

    rois = torch.tensor([[index, *crop.as_roi()] for crop, index in zip(crops, frame_of)],
                        dtype=torch.float32, device=lightness.device)
    return roi_align(lightness.float(), rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def ellipse_mask(box: torch.Tensor, grid_height: int, grid_width: int, scale_y: float, scale_x: float,
                 device: torch.device | None = None) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The feathered ellipse of a face box on a grid ``scale`` times the frame's size.

    Returns the mask over its bounding rows and columns (1, rows, cols) and that
    window (top, bottom, left, right) in grid pixels. Weight 1 near the centre,
    falling smoothly to exactly 0 at the ellipse's outer edge.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    centre_x, centre_y = (x0 + x1) / 2 * scale_x, (y0 + y1) / 2 * scale_y
    radius_x = max((x1 - x0) / 2 * ELLIPSE_SCALE[0] * scale_x, 0.5)
    radius_y = max((y1 - y0) / 2 * ELLIPSE_SCALE[1] * scale_y, 0.5)
    top = max(0, math.floor(centre_y - radius_y * ELLIPSE_OUTER))
    bottom = min(grid_height, math.ceil(centre_y + radius_y * ELLIPSE_OUTER) + 1)
    left = max(0, math.floor(centre_x - radius_x * ELLIPSE_OUTER))
    right = min(grid_width, math.ceil(centre_x + radius_x * ELLIPSE_OUTER) + 1)
    if top >= bottom or left >= right:
        return torch.zeros(1, 0, 0, device=device), (0, 0, 0, 0)
    rows = (torch.arange(top, bottom, device=device, dtype=torch.float32) + 0.5 - centre_y) / radius_y
    cols = (torch.arange(left, right, device=device, dtype=torch.float32) + 0.5 - centre_x) / radius_x
    distance = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)
    ramp = ((ELLIPSE_OUTER - distance) / (ELLIPSE_OUTER - ELLIPSE_INNER)).clamp(0, 1)
    return (ramp * ramp * (3 - 2 * ramp)).unsqueeze(0), (top, bottom, left, right)


def paste_crop_ab(ab: torch.Tensor, crop_ab: torch.Tensor, crop: FaceCrop, box: torch.Tensor,
                  frame_height: int, frame_width: int, weight: float = 1.0) -> None:
    """Blend a crop's a*b* (2, s, s) into one frame's a*b* (2, h, w), in place, through the face's ellipse.

    ``ab`` may be at any size (the render size or the frame's): positions are
    mapped through the frame's pixels. Only pixels where the mask is above 0
    are written. weight (0..1] scales the mask (a face fading in).
    """
    grid_height, grid_width = ab.shape[-2:]
    scale_y, scale_x = grid_height / frame_height, grid_width / frame_width
    mask, (top, bottom, left, right) = ellipse_mask(box, grid_height, grid_width, scale_y, scale_x, ab.device)
    if mask.numel() == 0:
        return
    if weight < 1:
        mask = mask * weight
    # the crop as many grid pixels as it covers (antialiased when that is fewer), then
    # sampled at the grid pixels' centres
    target = max(2, round(crop.side * max(scale_x, scale_y)))
    source = crop_ab.float()[None]
    if target < source.shape[-1]:
        source = F.interpolate(source, size=(target, target), mode="bilinear", antialias=True, align_corners=False)
    ys = ((torch.arange(top, bottom, device=ab.device) + 0.5) / scale_y - crop.top) / crop.side * 2 - 1
    xs = ((torch.arange(left, right, device=ab.device) + 0.5) / scale_x - crop.left) / crop.side * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None].float()
    sampled = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    window = ab[:, top:bottom, left:right]
    blended = window + mask * (sampled.to(window.dtype) - window)
    window.copy_(torch.where(mask > 0, blended, window))


@torch.no_grad()
def colorize_crops(colorizer: Colorizer, crop_lightness: torch.Tensor) -> torch.Tensor:
    """Crops' L (K, 1, s, s) -> their a*b* (K, 2, s, s), each with the face prior as its global features.

    The face prior (``training/face_prior.py``) rather than a VGG16 pass of the
    crop: a face is a face, whatever the crop also shows, and a crop's own pass
    costs as much as a frame's. On wide shots the prior also measures better
    (mean CIEDE2000 inside faces 6.9 against 7.8). The head is called directly,
    in the calling thread, rather than through ``Colorizer.predict``: in a film
    this runs beside decoding, and ``bench`` charges it to the face stage.
    """
    prior = colorizer.face_prior.to(crop_lightness.device).expand(crop_lightness.shape[0], -1)
    crop_lightness = crop_lightness.contiguous(memory_format=torch.channels_last)
    return colorizer.in_chunks(colorizer.head_ab, crop_lightness, prior) * colorizer.chroma_gain


def refinable(face: Face | torch.Tensor, render_height: int, frame_height: int) -> bool:
    """A face worth its own crop: big enough to see, not already a close-up at the render size."""
    box = face.box if isinstance(face, Face) else face
    height = float(box[3] - box[1])
    return height >= MIN_FACE and height * render_height / frame_height < CLOSE_UP_RENDER_HEIGHT


@torch.no_grad()
def refine_stills(colorizer: Colorizer, detector: FaceDetector, lightness: torch.Tensor,
                  ab: torch.Tensor) -> tuple[torch.Tensor, list[list[Face]]]:
    """Unrelated frames (photos): detect, crop, colorize and blend each face; returns new a*b* and the faces."""
    found = detector.detect(lightness)
    frame_height, frame_width = lightness.shape[-2:]
    picked = [(index, face) for index, faces in enumerate(found) for face in faces
              if refinable(face, ab.shape[-2], frame_height)]
    if not picked:
        return ab, found
    crops = [FaceCrop.around(face.box, frame_height, frame_width) for _, face in picked]
    crop_ab = colorize_crops(colorizer, crop_lightness(lightness, crops, [index for index, _ in picked]))
    ab = ab.clone()
    for (index, face), crop, face_ab in zip(picked, crops, crop_ab):
        paste_crop_ab(ab[index], face_ab, crop, face.box, frame_height, frame_width)
    return ab, found
