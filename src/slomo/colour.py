"""YUV <-> RGB with the source's matrix (BT.601/709/2020) and range (limited/full), both ways.

swscale's full-range RGB -> YUV conversion rounds chroma down by up to a level, so a frame that
goes through RGB and back drifts by two or three levels.  Doing the arithmetic here, in float with
one rounding at the end, keeps flat colours within one level and untouched frames intact.
Planar YUV formats (8 to 16 bits, 4:2:0/4:2:2/4:4:4) are handled here; the caller falls back to
swscale for anything else (RGB, NV12, palettes...).
"""

from __future__ import annotations

import re

import av
import cv2
import numpy as np

#: (Kr, Kb) by FFmpeg's colorspace number.
_COEFFICIENTS = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 9: (0.2627, 0.0593),
                 10: (0.2627, 0.0593)}
_PLANAR_YUV = re.compile(r"^yuvj?4(20|22|44)p(\d+)?(le)?$")
FULL_RANGE = 2


def supports(pix_fmt: str) -> bool:
    """Whether this module converts ``pix_fmt`` (planar little-endian YUV)."""
    return _PLANAR_YUV.match(pix_fmt) is not None


def coefficients(colorspace: int, height: int) -> tuple[float, float]:
    """(Kr, Kb) of a matrix; unspecified means BT.709 for HD and BT.601 below, as players assume."""
    return _COEFFICIENTS.get(colorspace, _COEFFICIENTS[1] if height >= 720 else _COEFFICIENTS[5])


def affine(colorspace: int, full: bool, bits: int, height: int) -> np.ndarray:
    """The 3x4 matrix taking RGB in [0, 1] to YUV code values (also used by :mod:`slomo.tensors`,
    so both conversions share one set of coefficients)."""
    kr, kb = coefficients(colorspace, height)
    kg = 1.0 - kr - kb
    rgb_to_ypbpr = np.array([[kr, kg, kb],
                             [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                             [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
    scale = 2 ** (bits - 8)
    if full:
        gains = np.full(3, 2 ** bits - 1.0)
        offsets = np.array([0.0, 128.0 * scale, 128.0 * scale])
    else:
        gains = np.array([219.0, 224.0, 224.0]) * scale
        offsets = np.array([16.0, 128.0, 128.0]) * scale
    return np.hstack([rgb_to_ypbpr * gains[:, None], offsets[:, None]]).astype(np.float32)


def inverse_affine(colorspace: int, full: bool, bits: int, height: int) -> np.ndarray:
    """The 3x4 matrix taking YUV code values to RGB in [0, 1]: the inverse of :func:`affine`."""
    forward = affine(colorspace, full, bits, height)
    return np.linalg.inv(np.vstack([forward, [0, 0, 0, 1]]))[:3].astype(np.float32)


def is_full(frame_range: int, pix_fmt: str) -> bool:
    """Whether code values span the whole range (JPEG-style ``yuvj`` formats always do)."""
    return frame_range == FULL_RANGE or pix_fmt.startswith("yuvj")


def bit_depth(fmt: av.VideoFormat) -> int:
    """Bits per component of a planar format (8 to 16)."""
    return fmt.components[0].bits


def plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    """Plane ``index`` of a planar YUV frame as a writable uint8/uint16 view of its buffer (no copy)."""
    dtype = np.uint8 if bit_depth(frame.format) <= 8 else np.uint16
    data = frame.planes[index]
    per_row = data.line_size // np.dtype(dtype).itemsize
    rows = np.frombuffer(memoryview(data), dtype).reshape(data.height, per_row)
    return rows[:, : data.width]


def layout(frame: av.VideoFrame) -> tuple[str, int, int, int, int]:
    """What frames must share to be worked on plane by plane as one: format, size, matrix, range."""
    return frame.format.name, frame.width, frame.height, int(frame.colorspace), int(frame.color_range)


def blank(like: av.VideoFrame) -> av.VideoFrame:
    """A new frame of ``like``'s :func:`layout`, its planes not yet written."""
    frame = av.VideoFrame(like.width, like.height, like.format.name)
    frame.colorspace, frame.color_range = like.colorspace, like.color_range
    return frame


def _inverse(frame: av.VideoFrame, colorspace: int, color_range: int) -> np.ndarray:
    """The 3x4 matrix taking ``frame``'s YUV code values to RGB in [0, 1]."""
    fmt = frame.format
    return inverse_affine(colorspace, is_full(color_range, fmt.name), bit_depth(fmt), frame.height)


def _planes_to_rgb(planes: list[np.ndarray], inverse: np.ndarray) -> np.ndarray:
    rgb = cv2.transform(np.dstack(planes), inverse)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def to_rgb(frame: av.VideoFrame, colorspace: int, color_range: int) -> np.ndarray:
    """A planar YUV frame as float32 RGB in [0, 1].

    Chroma is upsampled by replication: the block average in :func:`from_rgb` then gives back
    exactly the same chroma, so frames that pass through unchanged are not softened.
    """
    h, w = frame.height, frame.width
    planes: list[np.ndarray] = [plane(frame, i).astype(np.float32) for i in range(3)]
    planes[1:] = [p if p.shape == (h, w) else cv2.resize(p, (w, h), interpolation=cv2.INTER_NEAREST)
                  for p in planes[1:]]
    return _planes_to_rgb(planes, _inverse(frame, colorspace, color_range))


def thumbnail(frame: av.VideoFrame, width: int, height: int, colorspace: int, color_range: int) -> np.ndarray:
    """A planar YUV frame shrunk to ``width`` x ``height`` float32 RGB: each plane area-averaged
    first, then converted, so only the thumbnail's pixels go through the matrix (the same
    thumbnail as :func:`to_rgb` then an area resize, but for clipping out-of-gamut pixels)."""
    planes = [cv2.resize(plane(frame, i), (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
              for i in range(3)]
    return _planes_to_rgb(planes, _inverse(frame, colorspace, color_range))


def from_rgb(rgb: np.ndarray, pix_fmt: str, colorspace: int, color_range: int) -> av.VideoFrame:
    """A float32 RGB frame as a planar YUV frame, chroma averaged over each subsampled block."""
    h, w = rgb.shape[:2]
    frame = av.VideoFrame(w, h, pix_fmt)
    depth = bit_depth(frame.format)
    dtype = np.uint8 if depth <= 8 else np.uint16
    yuv = cv2.transform(rgb, affine(colorspace, is_full(color_range, pix_fmt), depth, h))
    top = 2 ** depth - 1
    for index in range(3):
        target = plane(frame, index)
        values = yuv[..., index]
        if target.shape != (h, w):
            values = cv2.resize(values, (target.shape[1], target.shape[0]), interpolation=cv2.INTER_AREA)
        target[...] = np.clip(np.rint(values), 0, top).astype(dtype)
    return frame
