"""sRGB (D65) <-> CIE Lab on torch tensors.

Pure tensor functions: batched, any device, any leading dimensions. Shapes are
``(*, 3, H, W)``. RGB values are in [0, 1]; L is in [0, 100], a* and b* are in
roughly [-110, 110]. Arithmetic runs in float32 even for float16/bfloat16 input
(the cube root and the sRGB gamma are not accurate in half precision) and the
result comes back in the input's dtype.
"""

import torch

# sRGB primaries with the D65 white point (IEC 61966-2-1), the same matrices
# scikit-image uses, so results agree with skimage.color.rgb2lab.
RGB_TO_XYZ = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = torch.linalg.inv(RGB_TO_XYZ.double()).float()
_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883])

LAB_EPSILON = 0.008856  # (6/29)^3: below it the Lab curve is linear
LAB_KAPPA = 7.787  # slope of that linear part


def lab_curve(t: torch.Tensor) -> torch.Tensor:
    """CIE Lab's f: the cube root, linear near black. Written once; every L in the project goes through it."""
    return torch.where(t > LAB_EPSILON, t.clamp(min=LAB_EPSILON) ** (1 / 3), LAB_KAPPA * t + 16 / 116)


def lab_curve_inverse(f: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`lab_curve`; its linear part starts where f^3 = epsilon."""
    return torch.where(f > 6 / 29, f**3, (f - 16 / 116) / LAB_KAPPA)


def lightness_to_luminance(lightness: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> relative luminance Y in [0, 1] (of a gray, its linear sRGB value)."""
    return lab_curve_inverse((lightness + 16) / 116)


def _working(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():
        raise TypeError(f"expected a floating point tensor, got {x.dtype}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected shape (*, 3, H, W), got {tuple(x.shape)}")
    return x.float()


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix along the channel dimension of (*, 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x.device), x)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    # clamp first: pow of a negative number is NaN
    linear = linear.clamp(min=0.0)
    return torch.where(
        linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear
    )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], ``(*, 3, H, W)`` -> Lab ``(*, 3, H, W)`` (L 0..100)."""
    x = _working(rgb)
    xyz = _mix(RGB_TO_XYZ, srgb_to_linear(x))
    xyz = xyz / _D65_WHITE.to(x.device).view(3, 1, 1)
    f = lab_curve(xyz)
    fx, fy, fz = f.unbind(-3)
    lab = torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)
    return lab.to(rgb.dtype)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab ``(*, 3, H, W)`` -> sRGB ``(*, 3, H, W)``, clipped to [0, 1] unless ``clip=False``."""
    x = _working(lab)
    lightness, a, b = x.unbind(-3)
    fy = (lightness + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = lab_curve_inverse(f)
    xyz = xyz * _D65_WHITE.to(x.device).view(3, 1, 1)
    rgb = linear_to_srgb(_mix(_XYZ_TO_RGB, xyz))
    if clip:
        rgb = rgb.clamp(0.0, 1.0)
    return rgb.to(lab.dtype)


def rgb_to_lightness(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> L ``(*, 1, H, W)`` in [0, 100], cheaper than full Lab."""
    x = _working(rgb)
    y = _mix(RGB_TO_XYZ[1:2], srgb_to_linear(x))
    return (116 * lab_curve(y) - 16).to(rgb.dtype)
