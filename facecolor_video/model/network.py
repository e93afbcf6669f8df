"""The network of "Facial Colorization Using Transfer Learning" (You, Zhao, Lai, Gong).

L in, a*b* out. An encoder of 3x3 convolutions works on L, a frozen VGG16 sees
the whole frame and gives one global feature vector, the two are fused by
tiling the vector over the encoder's grid and a 1x1 convolution, and a decoder
with nearest-neighbour upsampling returns a*b* at the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Lab scaling of the network's inputs and outputs: L in [0, 100] is fed as
# L / 100 - 0.5, and the tanh output in [-1, 1] is a*b* / AB_SCALE.
AB_SCALE = 110.0
DEFAULT_DROPOUT = 0.4  # the paper trains with 0.4 to 0.7

# (in_channels, out_channels, stride) of each 3x3 convolution, as in the paper.
ENCODER_LAYERS = [
    (1, 64, 2),
    (64, 128, 1),
    (128, 128, 2),
    (128, 256, 1),
    (256, 256, 2),
    (256, 512, 1),
    (512, 512, 1),
    (512, 256, 1),
]
FUSION_CHANNELS = 256
# Decoder: an int is a 3x3 convolution to that many channels, "up" a x2
# nearest-neighbour upsampling. The last convolution (to a*b*) has tanh.
DECODER_LAYERS = [128, "up", 64, 64, "up", 32, 2, "up"]
SIZE_MULTIPLE = 8  # three stride-2 convolutions in the encoder
# The smallest side the network runs at (smaller inputs are padded): a side of 8 leaves one column after the
# encoder, and the CPU's bfloat16 convolutions then gave different a*b* at each call on the same 8-wide input
# (sometimes NaN, a black picture); from 16 on they are the same every time.
MIN_SIDE = 16
GLOBAL_INPUT_SIZE = 224  # VGG16's input size for the global vector, unless a head's config says otherwise


def _conv_block(in_channels: int, out_channels: int, stride: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return layers


class Encoder(nn.Module):
    """L (N, 1, H, W) -> features (N, 256, H/8, W/8)."""

    def __init__(self, dropout: float = DEFAULT_DROPOUT, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        for in_channels, out_channels, stride in ENCODER_LAYERS:
            layers += _conv_block(in_channels, out_channels, stride, batch_norm)
        layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.layers(lightness)


class Fusion(nn.Module):
    """Tile the global vector over the grid, concatenate, 1x1 convolution to 256."""

    def __init__(self, local_channels: int, global_channels: int, batch_norm: bool = False):
        super().__init__()
        self.conv = nn.Sequential(
            *([nn.Conv2d(local_channels + global_channels, FUSION_CHANNELS, 1, bias=not batch_norm)]
              + ([nn.BatchNorm2d(FUSION_CHANNELS)] if batch_norm else [])
              + [nn.ReLU(inplace=True)])
        )

    def forward(self, local: torch.Tensor, global_features: torch.Tensor) -> torch.Tensor:
        n, _, h, w = local.shape
        tiled = global_features.to(local.dtype).view(n, -1, 1, 1).expand(n, global_features.shape[1], h, w)
        return self.conv(torch.cat([local, tiled], dim=1))


class Decoder(nn.Module):
    """Fused features (N, 256, H/8, W/8) -> a*b* / AB_SCALE (N, 2, H, W) in [-1, 1].

    With ``uncertainty`` the last convolution has a third output channel, the
    log-variance of a*b* (not squashed by the tanh).
    """

    def __init__(self, batch_norm: bool = False, uncertainty: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        channels = FUSION_CHANNELS
        for spec in DECODER_LAYERS:
            if spec == "up":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            elif spec == 2:
                layers.append(nn.Conv2d(channels, 3 if uncertainty else 2, 3, padding=1))
                channels = 2
            else:
                layers += _conv_block(channels, spec, 1, batch_norm)
                channels = spec
        self.layers = nn.Sequential(*layers)

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(a*b* / AB_SCALE, log-variance of a*b* / AB_SCALE or None)."""
        features = self.layers[:-2](fused)
        last, upsample = self.layers[-2], self.layers[-1]
        ab = torch.tanh(upsample(F.conv2d(features, last.weight[:2], last.bias[:2], padding=1)))
        if last.out_channels == 2:
            return ab, None
        # The variance reads features it cannot change: its loss would otherwise pull the shared
        # layers away from the colour (measured, fine-tuning the shipped head at lr 1e-4: in 80
        # steps the colourfulness doubled and people lost 8 dB).
        log_variance = upsample(F.conv2d(features.detach(), last.weight[2:], last.bias[2:], padding=1))
        return ab, log_variance


class ColorizationNet(nn.Module):
    """The trainable head: encoder, fusion, decoder. The VGG16 backbone is separate.

    ``forward(lightness, global_features)`` takes L in [0, 100], shape (N, 1, H, W),
    any H and W (padded inside to a multiple of 8, cropped back), and the global
    vector (N, global_channels) from ``backbone.GlobalFeatures``; returns a*b*
    in Lab units, shape (N, 2, H, W).
    """

    def __init__(self, global_channels: int = 512, dropout: float = DEFAULT_DROPOUT, batch_norm: bool = False,
                 uncertainty: bool = False, uncertainty_strength: float = 1.0,
                 global_input_size: int = GLOBAL_INPUT_SIZE, confident_gain: float = 0.0):
        super().__init__()
        self.config = {"global_channels": global_channels, "dropout": dropout, "batch_norm": batch_norm}
        if uncertainty:  # only then, so that heads without it keep their config as it was
            self.config.update(uncertainty=True, uncertainty_strength=uncertainty_strength)
        # the square VGG16 saw when the global vectors this head was trained on were made
        self.global_input_size = int(global_input_size)
        if self.global_input_size != GLOBAL_INPUT_SIZE:  # likewise: older heads keep their config
            self.config["global_input_size"] = self.global_input_size
        self.uncertainty = uncertainty
        # how hard unsure colours fade: 0 keeps the plain prediction (the colour channels are
        # trained by the colour loss alone), 1 is c^2 / (c^2 + variance)
        self.uncertainty_strength = uncertainty_strength
        # how much stronger a colour the network is sure of comes out: the MSE mean is duller than the
        # truth even where the hue is known; 0 leaves it as predicted
        self.confident_gain = float(confident_gain)
        if self.confident_gain:
            self.config["confident_gain"] = self.confident_gain
        self.encoder = Encoder(dropout, batch_norm)
        self.fusion = Fusion(ENCODER_LAYERS[-1][1], global_channels, batch_norm)
        self.decoder = Decoder(batch_norm, uncertainty)

    def predict(self, lightness: torch.Tensor, global_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(a*b* in Lab units (N, 2, H, W), log-variance of a*b* / AB_SCALE (N, 1, H, W) or None)."""
        height, width = lightness.shape[-2:]
        pad_h = max(MIN_SIDE, height + -height % SIZE_MULTIPLE) - height
        pad_w = max(MIN_SIDE, width + -width % SIZE_MULTIPLE) - width
        x = lightness / 100.0 - 0.5
        if pad_h or pad_w:
            # replicate, not zeros: a black border would be coloured like a black object
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        ab, log_variance = self.decoder(self.fusion(self.encoder(x), global_features))
        if log_variance is not None:
            log_variance = log_variance[..., :height, :width]
        return ab[..., :height, :width] * AB_SCALE, log_variance

    def forward(self, lightness: torch.Tensor, global_features: torch.Tensor, raw: bool = False):
        """a*b* in Lab units. With ``uncertainty``, shrunk towards gray where the predicted variance is large.

        ``raw=True`` returns what :meth:`predict` does (training calls it so, through DDP's forward).
        """
        ab, log_variance = self.predict(lightness, global_features)
        if raw:
            return ab, log_variance
        if log_variance is None:
            return ab
        certainty = neutral_shrink(ab, log_variance, self.uncertainty_strength)
        if not self.confident_gain:
            return ab * certainty
        # vivid where sure, neutral where not: the certainty both fades and, where high, strengthens
        return ab * certainty * (1 + self.confident_gain * certainty)


def neutral_shrink(ab: torch.Tensor, log_variance: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The factor in [0, 1] that keeps a confident colour and fades an unsure one to gray.

    c^2 / (c^2 + strength * var), with c the predicted chroma and var the predicted
    variance of a*b* around it (both per pixel, on the a*b* / AB_SCALE scale):
    a colour the network is sure of (var << c^2) stays, a guess whose spread is
    as large as the colour itself is halved, a backdrop it cannot know goes gray.
    """
    chroma_squared = (ab.float() / AB_SCALE).pow(2).sum(dim=1, keepdim=True)
    variance = log_variance.float().clamp(-20, 5).exp()
    return (chroma_squared / (chroma_squared + strength * variance + 1e-8)).to(ab.dtype)
