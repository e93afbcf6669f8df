"""Pictures as the codecs hold them: a luma plane and two chroma planes, no RGB.

A black-and-white film needs no RGB frame at all: its decoded luma plane is
the luminance the output keeps, and the colour to add is two chroma planes at
the encoder's chroma resolution. ``YuvPlanes`` carries those planes from the
decoder to the encoder, so the file's Y plane is the source's, bit for bit
(before the encoder's own lossy step), and swscale never runs.

Only planar formats with one plane per component are taken (yuv420p,
yuv422p10le, yuvj444p, ...); anything else is converted once, at decode, to
the planar format of its depth and subsampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# AVColorSpace values FFmpeg tags frames and streams with, and the matrix each names.
_MATRIX_BY_AVCOL_SPC = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
AVCOL_SPC = {"bt709": 1, "bt601": 6, "bt2020": 9}
# AVColorRange: 1 limited ("MPEG", 16-235 for 8 bits), 2 full ("JPEG", 0-255).
AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 1, 2
# Kr, Kb of each matrix (ITU-R BT.601, BT.709, BT.2020 non-constant luminance).
MATRIX_COEFFICIENTS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


@dataclass(frozen=True)
class PlaneFormat:
    """A planar YUV pixel format and how its codes are read.

    chroma_shift: (rows, columns) log2 subsampling: (1, 1) for 4:2:0, (0, 1)
    for 4:2:2, (0, 0) for 4:4:4. matrix: ``bt601``, ``bt709`` or ``bt2020``;
    full_range: codes span 0..2^bits-1 (JPEG range) rather than 16..235 scaled.
    """

    pix_fmt: str
    bits: int
    chroma_shift: tuple[int, int]
    matrix: str = "bt601"
    full_range: bool = False

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bits <= 8 else np.uint16

    @property
    def max_code(self) -> int:
        return (1 << self.bits) - 1

    def chroma_size(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of a chroma plane for a picture of this size (odd sizes round up)."""
        rows, columns = self.chroma_shift
        return -(-height >> rows), -(-width >> columns)

    def with_signal(self, matrix: str, full_range: bool) -> PlaneFormat:
        return PlaneFormat(self.pix_fmt, self.bits, self.chroma_shift, matrix, full_range)


def plane_format(pix_fmt: str | None, matrix: str = "bt601", full_range: bool | None = None) -> PlaneFormat | None:
    """The ``PlaneFormat`` of a pixel format name, or None when it is not planar YUV with one plane per component.

    full_range None: the yuvj formats are full range, the others limited.
    """
    if not pix_fmt:
        return None
    import av  # here, not at the top: the model's colour code imports this module where PyAV may be absent

    try:
        video_format = av.VideoFormat(pix_fmt, 64, 64)
    except (ValueError, av.FFmpegError):
        return None
    components = video_format.components
    if (len(components) != 3 or not video_format.is_planar or [c.plane for c in components] != [0, 1, 2]
            or not components[0].is_luma or video_format.is_rgb or not (8 <= components[0].bits <= 16)):
        return None
    if pix_fmt.endswith("be") or len({c.bits for c in components}) != 1:
        return None
    chroma = components[1]
    shift = ((64 // chroma.height).bit_length() - 1, (64 // chroma.width).bit_length() - 1)
    if full_range is None:
        full_range = pix_fmt.startswith("yuvj")
    return PlaneFormat(pix_fmt, components[0].bits, shift, matrix, full_range)


def matrix_of(colorspace: int | None) -> str:
    """The YUV matrix a frame or stream is tagged with; untagged: BT.601, as swscale reads it whatever the size."""
    return _MATRIX_BY_AVCOL_SPC.get(int(colorspace or 0), "bt601")


@dataclass
class YuvPlanes:
    """One picture as planes: luma (H, W) and, once composed, chroma (2, Hc, Wc), dtype of ``format``."""

    luma: np.ndarray
    format: PlaneFormat
    chroma: np.ndarray | None = None

    @property
    def height(self) -> int:
        return self.luma.shape[0]

    @property
    def width(self) -> int:
        return self.luma.shape[1]

    @property
    def nbytes(self) -> int:
        return self.luma.nbytes + (self.chroma.nbytes if self.chroma is not None else 0)


def _plane_array(plane, rows: int, columns: int, dtype) -> np.ndarray:
    """A numpy view of an FFmpeg plane without its row padding."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(-1, plane.line_size // item)[:rows, :columns]


def _planar_equivalent(video_format) -> str:
    """The planar 4:x:x format of the same depth and subsampling, for frames of other layouts."""
    components = video_format.components
    bits = max(c.bits for c in components if not c.is_alpha)
    chroma = [c for c in components if c.is_chroma]
    if not chroma:
        subsampling = "444"
    else:
        wide = chroma[0].width < components[0].width
        tall = chroma[0].height < components[0].height
        subsampling = "420" if wide and tall else "422" if wide else "440" if tall else "444"
    depth = "" if bits <= 8 else f"{min(16, 10 if bits <= 10 else 12 if bits <= 12 else 16)}le"
    return f"yuv{subsampling}p{depth}"


def decoded_planes(frame: av.VideoFrame, keep_chroma: bool = False) -> YuvPlanes:
    """The luma plane of a decoded frame, copied as it is (and the chroma planes when asked).

    Frames in another layout (semi-planar, packed, RGB) are converted once to
    the planar format of their depth; then their luma is swscale's.
    """
    matrix = matrix_of(frame.colorspace)
    layout = plane_format(frame.format.name, matrix, full_range=None)
    if layout is None:
        frame = frame.reformat(format=_planar_equivalent(frame.format))
        layout = plane_format(frame.format.name, matrix)
    full_range = layout.full_range or int(frame.color_range or 0) == AVCOL_RANGE_JPEG
    layout = layout.with_signal(matrix, full_range)
    height, width = frame.height, frame.width
    luma = _plane_array(frame.planes[0], height, width, layout.dtype).copy()
    chroma = None
    if keep_chroma:
        rows, columns = layout.chroma_size(height, width)
        chroma = np.stack([_plane_array(frame.planes[i], rows, columns, layout.dtype) for i in (1, 2)])
    return YuvPlanes(luma, layout, chroma)


def convert_luma(luma: np.ndarray, source: PlaneFormat, target: PlaneFormat) -> np.ndarray:
    """Luma codes of ``source`` as codes of ``target``: the same array when depth and range agree.

    A change of depth is a shift (how BT.709/BT.2020 scale codes between
    depths); a change of range maps the nominal black and white onto each other.
    """
    if source.bits == target.bits and source.full_range == target.full_range:
        return luma
    values = luma.astype(np.float32)
    if source.full_range != target.full_range:
        black, white = _luma_span(source)
        new_black, new_white = _luma_span(target)
        scale = (new_white - new_black) / (white - black)
        values = (values - black) * scale + new_black
    else:
        values = values * float(1 << target.bits) / float(1 << source.bits)
    return np.clip(np.rint(values), 0, target.max_code).astype(target.dtype)


def _luma_span(layout: PlaneFormat) -> tuple[float, float]:
    if layout.full_range:
        return 0.0, float(layout.max_code)
    scale = 1 << (layout.bits - 8)
    return 16.0 * scale, 235.0 * scale


def to_av_frame(planes: YuvPlanes) -> av.VideoFrame:
    """A frame in ``planes.format`` with the planes copied in; no conversion."""
    layout = planes.format
    if planes.chroma is None:
        raise ValueError("the picture has no chroma planes yet")
    import av

    height, width = planes.luma.shape
    frame = av.VideoFrame(width, height, layout.pix_fmt)
    rows, columns = layout.chroma_size(height, width)
    _plane_array(frame.planes[0], height, width, layout.dtype)[:] = planes.luma
    for index in (1, 2):
        _plane_array(frame.planes[index], rows, columns, layout.dtype)[:] = planes.chroma[index - 1]
    frame.colorspace = AVCOL_SPC[layout.matrix]
    frame.color_range = AVCOL_RANGE_JPEG if layout.full_range else AVCOL_RANGE_MPEG
    return frame
