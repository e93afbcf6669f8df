"""Predicted a*b* -> the encoder's chroma planes, at chroma resolution, on the model's device.

The luma plane of the output is the source's, as decoded. What is left to
compute is Cb and Cr, and only at the chroma planes' size (a quarter of the
pixels for 4:2:0): for each chroma sample, the source's lightness L (each
luma code read as a gray sRGB value, as the RGB path reads it, then averaged
over the chroma sample's luma pixels) is joined with the predicted a*b*
(bilinearly resized to the chroma plane), turned into R'G'B' through Lab, and
R'G'B' into Cb/Cr with the output's matrix and range. The decoder then adds
that colour difference to the source's own luma.

Measured against the Lab path (full-size Lab -> RGB, encoded through
swscale's RGB -> YUV), see the README's Performance section.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..media.planes import MATRIX_COEFFICIENTS, PlaneFormat
from .color import lab_curve, lab_to_rgb, srgb_to_linear


def lightness_of_codes(layout: PlaneFormat, device: torch.device | str = "cpu") -> torch.Tensor:
    """L (0..100) of every luma code of ``layout``, the picture read as gray: a lookup table (2^bits,)."""
    codes = torch.arange(layout.max_code + 1, dtype=torch.float64)
    if layout.full_range:
        gray = codes / layout.max_code
    else:
        scale = 1 << (layout.bits - 8)
        gray = (codes - 16 * scale) / (219 * scale)
    # a gray sRGB value's relative luminance is its linear value (the XYZ row sums to 1)
    luminance = srgb_to_linear(gray.clamp(0, 1))
    return (116 * lab_curve(luminance) - 16).float().to(device)


def chroma_matrix(layout: PlaneFormat) -> tuple[torch.Tensor, float, float]:
    """R'G'B' (0..1) -> Cb, Cr codes: a (2, 3) matrix, the code of zero colour, the largest code."""
    kr, kb = MATRIX_COEFFICIENTS[layout.matrix]
    kg = 1 - kr - kb
    rows = torch.tensor([
        [-kr, -kg, 1 - kb],
        [1 - kr, -kg, -kb],
    ], dtype=torch.float64)
    rows[0] /= 2 * (1 - kb)
    rows[1] /= 2 * (1 - kr)
    excursion = layout.max_code if layout.full_range else 224 * (1 << (layout.bits - 8))
    return (rows * excursion).float(), float(1 << (layout.bits - 1)), float(layout.max_code)


def lightness_from_luma(luma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Luma codes (any integer shape) -> L of the same shape, float32, through ``lightness_of_codes``."""
    return table.index_select(0, luma.reshape(-1).int()).view(luma.shape)


class ChromaComposer:
    """Cb/Cr planes for batches of frames; one per composing thread (it keeps a CUDA stream and host buffers).

    On CUDA the work runs on the composer's own stream, beside the network's,
    and the planes come back through one pinned host buffer reused from batch
    to batch (grown when a batch needs more). On a CPU the same code runs in
    cache-sized strips and the planes are returned as computed.
    """

    def __init__(self, device: torch.device, strip_pixels: int):
        self.device = device
        self.strip_pixels = strip_pixels
        self._tables: dict[tuple[int, bool], torch.Tensor] = {}
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._staging: torch.Tensor | None = None

    def table(self, layout: PlaneFormat) -> torch.Tensor:
        key = (layout.bits, layout.full_range)
        if key not in self._tables:
            self._tables[key] = lightness_of_codes(layout, self.device)
        return self._tables[key]

    @torch.no_grad()
    def compose(self, luma: torch.Tensor, ab: torch.Tensor, source: PlaneFormat, layout: PlaneFormat) -> np.ndarray:
        """Luma codes (N, 1, H, W) read as ``source`` + a*b* (N, 2, h, w) -> Cb/Cr codes (N, 2, Hc, Wc) of ``layout``."""
        if self._stream is None:
            return self._compose(luma, ab, source, layout).numpy().astype(layout.dtype, copy=False)
        # the tensors were made on the network's stream: wait for it, then work beside it
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            planes = self._compose(luma.to(self.device, non_blocking=True), ab.to(self.device), source, layout)
            staging = self._host_buffer(planes)
            staging.copy_(planes, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        done.synchronize()
        return staging.numpy().astype(layout.dtype)  # a copy: the buffer is reused by the next batch

    def _host_buffer(self, planes: torch.Tensor) -> torch.Tensor:
        wanted = planes.numel() * planes.element_size()
        if self._staging is None or self._staging.numel() < wanted:
            self._staging = torch.empty(wanted, dtype=torch.uint8, pin_memory=True)
        return self._staging[:wanted].view(planes.dtype).view(planes.shape)

    def _compose(self, luma: torch.Tensor, ab: torch.Tensor, source: PlaneFormat, layout: PlaneFormat) -> torch.Tensor:
        count, _, height, width = luma.shape
        rows, columns = layout.chroma_size(height, width)
        shift_rows, shift_columns = layout.chroma_shift
        table = self.table(source)
        matrix, zero, top = chroma_matrix(layout)
        matrix = matrix.to(self.device)
        ab = ab.float()
        if ab.shape[-2:] != (rows, columns):
            ab = F.interpolate(ab, size=(rows, columns), mode="bilinear", align_corners=False)
        # int32 holds 16-bit codes where the device has no uint16 arithmetic
        out_dtype = torch.uint8 if layout.bits <= 8 else torch.int32
        planes = torch.empty((count, 2, rows, columns), dtype=out_dtype, device=self.device)
        step = max(1, self.strip_pixels // max(1, count * columns))
        for top_row in range(0, rows, step):
            bottom_row = min(rows, top_row + step)
            strip = luma[:, :, top_row << shift_rows:bottom_row << shift_rows]
            lightness = lightness_from_luma(strip, table)
            if shift_rows or shift_columns:
                lightness = F.avg_pool2d(lightness, (1 << shift_rows, 1 << shift_columns), ceil_mode=True)
            rgb = lab_to_rgb(torch.cat([lightness, ab[:, :, top_row:bottom_row]], dim=1))
            codes = torch.einsum("ij,njhw->nihw", matrix, rgb).add_(zero).round_().clamp_(0, top)
            planes[:, :, top_row:bottom_row] = codes.to(out_dtype)
        return planes
