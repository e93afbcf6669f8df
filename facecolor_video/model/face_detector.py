"""YuNet face detection on gray frames: boxes, scores and five landmarks.

YuNet (Wu, Peng, Yu: "YuNet: A Tiny Millisecond-level Face Detector", 2023) is
a 76k-parameter anchor-free detector: a backbone of depthwise-separable
blocks, a top-down feature pyramid over strides 8, 16 and 32, and per level one
prediction of class, objectness, box and landmarks at each grid point. The
module below is written for this program from the published architecture;
its weights (``weights/yunet_n-*.pt``, Apache-2.0) are the upstream training
run's, stripped to the state dict (see weights/README.md).

The network was trained on BGR colour photos (0-255, no normalisation). A gray
frame is fed as its gray value replicated to three channels, computed from L.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms

from ..errors import WeightsError
from . import weights as weights_registry
from .color import lightness_to_luminance, linear_to_srgb

STRIDES = (8, 16, 32)
LANDMARKS = 5  # right eye, left eye, nose tip, right and left mouth corners (as seen in the image)
# (in, out) channels of each backbone stage after the stem (3 -> 16 -> 16), and whether each
# pyramid level has a shared unit before its predictions, for the two published sizes
VARIANTS = {
    "yunet_n": ([(16, 64), (64, 64), (64, 64), (64, 64), (64, 64)], True),
    "yunet_s": ([(16, 32), (32, 64), (64, 64), (64, 64), (64, 64)], False),
}
POOL_AFTER = (0, 2, 3, 4)  # stages followed by a 2x2 max-pool
PYRAMID_FROM = (3, 4, 5)  # stages whose outputs feed strides 8, 16, 32
CHANNELS = 64
INPUT_MULTIPLE = 32
# long side frames are detected at: faces 24 px tall in a 640x480 frame stay 19 px, which
# YuNet still finds, at 30 ms a frame on one CPU thread against 45 ms at 640
DETECT_SIZE = 512


class DepthwiseUnit(nn.Sequential):
    """1x1 convolution, then a depthwise 3x3, optionally BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, activated: bool = True):
        layers = OrderedDict(
            conv1=nn.Conv2d(in_channels, out_channels, 1),
            conv2=nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels),
        )
        if activated:
            layers["bn"] = nn.BatchNorm2d(out_channels)
            layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class Stem(nn.Module):
    """3x3 stride-2 convolution with BatchNorm + ReLU, then a depthwise unit."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = DepthwiseUnit(mid_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn1(self.conv1(x)), inplace=True))


class Stage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = DepthwiseUnit(in_channels, in_channels)
        self.conv2 = DepthwiseUnit(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Backbone(nn.Module):
    def __init__(self, stages: list[tuple[int, int]]):
        super().__init__()
        self.model0 = Stem(3, 16, 16)
        for index, (in_channels, out_channels) in enumerate(stages, start=1):
            self.add_module(f"model{index}", Stage(in_channels, out_channels))
        self.stage_count = len(stages) + 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index in range(self.stage_count):
            x = getattr(self, f"model{index}")(x)
            if index in PYRAMID_FROM:
                outputs.append(x)
            if index in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return outputs


class Pyramid(nn.Module):
    """Top-down: each coarser level, after its unit, is upsampled x2 and added to the finer one."""

    def __init__(self, levels: int = len(STRIDES), channels: int = CHANNELS):
        super().__init__()
        self.lateral_convs = nn.ModuleList(DepthwiseUnit(channels, channels) for _ in range(levels))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        features = list(features)
        for level in range(len(features) - 1, 0, -1):
            features[level] = self.lateral_convs[level](features[level])
            features[level - 1] = features[level - 1] + F.interpolate(features[level], scale_factor=2.0, mode="nearest")
        features[0] = self.lateral_convs[0](features[0])
        return features


class Head(nn.Module):
    """Per level: a shared unit, then class, objectness, box (4) and landmark (10) predictions."""

    def __init__(self, shared: bool, levels: int = len(STRIDES), channels: int = CHANNELS):
        super().__init__()

        def per_level(out_channels: int) -> nn.ModuleList:
            return nn.ModuleList(DepthwiseUnit(channels, out_channels, activated=False) for _ in range(levels))

        if shared:
            self.multi_level_share_convs = nn.ModuleList(
                nn.Sequential(DepthwiseUnit(channels, channels)) for _ in range(levels))
        else:
            self.multi_level_share_convs = nn.ModuleList(nn.Identity() for _ in range(levels))
        self.multi_level_cls = per_level(1)
        self.multi_level_obj = per_level(1)
        self.multi_level_bbox = per_level(4)
        self.multi_level_kps = per_level(2 * LANDMARKS)

    def forward(self, features: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
        outputs = []
        for level, feature in enumerate(features):
            shared = self.multi_level_share_convs[level](feature)
            outputs.append((self.multi_level_cls[level](shared), self.multi_level_obj[level](shared),
                            self.multi_level_bbox[level](shared), self.multi_level_kps[level](shared)))
        return outputs


class YuNet(nn.Module):
    """BGR image (N, 3, H, W), 0-255, H and W multiples of 32 -> per level (class, objectness, box, landmarks)."""

    def __init__(self, variant: str = "yunet_n"):
        super().__init__()
        stages, shared = VARIANTS[variant]
        self.backbone = Backbone(stages)
        self.neck = Pyramid()
        self.bbox_head = Head(shared)

    def forward(self, image: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        return self.bbox_head(self.neck(self.backbone(image)))


@dataclass
class Face:
    """A detected face in frame pixels: box (x0, y0, x1, y1), score in [0, 1], landmarks (5, 2) as (x, y)."""

    box: torch.Tensor
    score: float
    landmarks: torch.Tensor

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


def decode(outputs: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw outputs of one image batch -> (scores (N, P), boxes (N, P, 4), landmarks (N, P, 5, 2)), input pixels.

    Each grid point (x, y) of stride s sits at (x*s, y*s); the box centre is
    that point plus the predicted offset times s, its size exp(prediction) * s;
    landmarks are offsets times s. The score is class x objectness.
    """
    scores, boxes, landmarks = [], [], []
    for stride, (cls, obj, box, kps) in zip(STRIDES, outputs):
        count, _, rows, cols = cls.shape
        ys, xs = torch.meshgrid(torch.arange(rows, device=cls.device), torch.arange(cols, device=cls.device), indexing="ij")
        points = torch.stack([xs, ys], -1).reshape(1, -1, 1, 2).float() * stride
        scores.append((cls.sigmoid() * obj.sigmoid()).reshape(count, -1))
        box = box.permute(0, 2, 3, 1).reshape(count, -1, 2, 2)
        centre = points[:, :, 0] + box[:, :, 0] * stride
        half = box[:, :, 1].exp() * (stride / 2)
        boxes.append(torch.cat([centre - half, centre + half], -1))
        kps = kps.permute(0, 2, 3, 1).reshape(count, -1, LANDMARKS, 2)
        landmarks.append(points + kps * stride)
    return torch.cat(scores, 1), torch.cat(boxes, 1), torch.cat(landmarks, 1)


def lightness_to_gray(lightness: torch.Tensor) -> torch.Tensor:
    """L (N, 1, H, W), 0..100 -> the sRGB gray value 0..255 of a colourless pixel with that L."""
    return linear_to_srgb(lightness_to_luminance(lightness.float())).clamp(0, 1) * 255


class FaceDetector:
    """Finds faces in frames given as L, at a reduced size.

    detect_size: the long side (pixels) frames are scaled down to before
    detection (never up); faces are returned in the caller's pixels.
    score_threshold: the minimum class x objectness kept; nms_iou: overlap
    above which the weaker of two boxes is dropped.
    """

    def __init__(self, network: YuNet, detect_size: int = DETECT_SIZE, score_threshold: float = 0.6,
                 nms_iou: float = 0.45):
        self.network = network.eval()
        self.detect_size = detect_size
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device) -> FaceDetector:
        self.network.to(device)
        return self

    @torch.no_grad()
    def detect(self, lightness: torch.Tensor, score_threshold: float | None = None) -> list[list[Face]]:
        """L (N, 1, H, W) in [0, 100] -> for each frame its faces, best first (score_threshold: instead of ours)."""
        if score_threshold is None:
            score_threshold = self.score_threshold
        height, width = lightness.shape[-2:]
        scale = min(1.0, self.detect_size / max(height, width))
        small = lightness.to(self.device, torch.float32)
        if scale < 1:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            small = F.interpolate(small, size=size, mode="area")
        small_height, small_width = small.shape[-2:]
        gray = lightness_to_gray(small)
        pad_bottom = -small_height % INPUT_MULTIPLE
        pad_right = -small_width % INPUT_MULTIPLE
        image = F.pad(gray, (0, pad_right, 0, pad_bottom)).expand(-1, 3, -1, -1).contiguous()
        scores, boxes, landmarks = decode(self.network(image))
        # back to the caller's pixels: the scale per axis after rounding the small size
        factor = torch.tensor([width / small_width, height / small_height], device=boxes.device)
        found = []
        for frame_scores, frame_boxes, frame_landmarks in zip(scores, boxes, landmarks):
            keep = frame_scores >= score_threshold
            frame_scores, frame_boxes, frame_landmarks = frame_scores[keep], frame_boxes[keep], frame_landmarks[keep]
            kept = nms(frame_boxes, frame_scores, self.nms_iou)
            frame_boxes = (frame_boxes[kept].view(-1, 2, 2) * factor).view(-1, 4)
            frame_landmarks = frame_landmarks[kept] * factor
            found.append([Face(box.cpu(), float(score), points.cpu())
                          for box, score, points in zip(frame_boxes, frame_scores[kept], frame_landmarks)])
        return found


def load_face_detector(path: str | Path | None = None, detect_size: int = DETECT_SIZE,
                       score_threshold: float = 0.6) -> FaceDetector:
    """The shipped YuNet-n (or the file at ``path``), hash-checked and loaded with weights_only=True."""
    declared = weights_registry.FACE_DETECTOR
    path = weights_registry.find(declared) if path is None else Path(path)
    state = weights_registry.load_verified(path, declared.sha256)
    network = YuNet("yunet_n")
    try:
        network.load_state_dict({name: tensor.float() for name, tensor in state.items()})
    except (RuntimeError, AttributeError, TypeError) as error:
        raise WeightsError(f"{path}: weights do not fit the face detector ({str(error).splitlines()[0]})") from None
    return FaceDetector(network, detect_size=detect_size, score_threshold=score_threshold)
