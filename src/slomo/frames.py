"""The frame formats stages exchange: :data:`Frame` for models, :class:`Picture` for the pipeline.

A :data:`Frame` is a ``float32`` numpy array of shape ``(H, W, 3)``, RGB in ``[0, 1]``: one format
whatever the source's bit depth, cheap to hand to OpenCV or to torch.  A :class:`Picture` is what
crosses the pipeline's queues: a decoded frame's integer planes as they came, converted to a
:data:`Frame` only when a model asks.  io, the pipeline and the models import this module; it
imports only :mod:`slomo.colour`.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

from . import colour

Frame = np.ndarray
#: scene detection's summary of a picture (:meth:`slomo.pipeline.SceneDetector.summary`)
Signature = tuple[np.ndarray, np.ndarray]


def to_frame(array: np.ndarray) -> Frame:
    """An 8- or 16-bit RGB image as a :data:`Frame`."""
    scale = 255.0 if array.dtype == np.uint8 else 65535.0
    return np.multiply(array, np.float32(1.0 / scale), dtype=np.float32)


def from_frame(frame: Frame, bits: int = 8) -> np.ndarray:
    """A :data:`Frame` rounded to 8-bit (``bits <= 8``) or 16-bit RGB."""
    if bits <= 8:
        return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return (np.clip(frame, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


class Picture:
    """One frame in the pipeline: a decoded planar YUV frame (``video``), or a :data:`Frame`.

    Float RGB takes 12 bytes a pixel, 8-bit 4:2:0 planes 1.5: the queues hold planes, and a frame
    that only passes through (half the output at factor 2) reaches the encoder as it was decoded,
    never converted.  :meth:`rgb` converts once and keeps the result, since each input frame sits
    in two or more windows.  Formats :mod:`slomo.colour` does not handle (RGB, NV12, palettes)
    come in as a :data:`Frame`, converted by the reader.
    """

    __slots__ = ("video", "_rgb", "width", "height", "signature")
    width: int
    height: int
    #: what scene detection summarised of it, made once (:meth:`slomo.pipeline.SceneDetector.signature`)
    signature: Signature | None

    def __init__(self, rgb: Frame | None = None, video: av.VideoFrame | None = None):
        if (rgb is None) == (video is None):
            raise ValueError("a Picture is either float RGB or a decoded frame")
        if video is not None and not colour.supports(video.format.name):
            raise ValueError(f"{video.format.name} is not a planar YUV format")
        self.video = video
        self._rgb = rgb
        self.signature = None
        if video is not None:
            self.width, self.height = video.width, video.height
        elif rgb is not None:
            self.height, self.width = rgb.shape[:2]

    def rgb(self) -> Frame:
        """The picture as float32 RGB, converted with the frame's own matrix and range once."""
        if self._rgb is None:
            assert self.video is not None  # one of the two is always set
            self._rgb = colour.to_rgb(self.video, *self.colour())
        return self._rgb

    def colour(self) -> tuple[int, int]:
        """(colorspace, color_range) of a decoded frame, FFmpeg's numbers."""
        assert self.video is not None
        return int(self.video.colorspace), int(self.video.color_range)

    def thumbnail(self, width: int, height: int) -> Frame:
        """The picture area-averaged down to ``width`` x ``height`` float32 RGB, from the planes
        (a cheap shrink of integer planes, not a conversion of every pixel)."""
        if self.video is not None:
            return colour.thumbnail(self.video, width, height, *self.colour())
        return cv2.resize(self.rgb(), (width, height), interpolation=cv2.INTER_AREA)
