"""The frame format every stage exchanges, and its conversions to and from integer images.

Frames are ``float32`` numpy arrays of shape ``(H, W, 3)``, RGB in ``[0, 1]``: one format whatever
the source's bit depth, cheap to hand to OpenCV or to torch.  A leaf module: io, the pipeline and
the models all import it, and it imports none of them.
"""

from __future__ import annotations

import numpy as np

Frame = np.ndarray


def to_frame(array: np.ndarray) -> Frame:
    """An 8- or 16-bit RGB image as a :data:`Frame`."""
    scale = 255.0 if array.dtype == np.uint8 else 65535.0
    return np.multiply(array, np.float32(1.0 / scale), dtype=np.float32)


def from_frame(frame: Frame, bits: int = 8) -> np.ndarray:
    """A :data:`Frame` rounded to 8-bit (``bits <= 8``) or 16-bit RGB."""
    if bits <= 8:
        return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return (np.clip(frame, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
