"""``flow``: classical dense optical flow, the model that works with no download at all.

OpenCV's DIS flow is computed once per pair in both directions.  For each timestep the flows from
time t back to either frame are approximated from the two (as in Super SloMo), both frames are
backward-warped to t and blended, each weighted by its closeness in time and by how consistent
its flow is with the opposite one, so regions hidden in one frame come from the other.

DIS refuses images smaller than its patches (OpenCV 5 needs a side of 12 pixels), so tiny frames
(and tiny ``scale``-d ones) are edge-padded to :data:`MIN_FLOW_SIDE` for the flow, which is then
cropped back: a 1x1 video interpolates like any other.  The pipeline asks for a pair's timesteps
in batches, so the flows of the last pair are kept for the next batch of the same pair.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import cv2
import numpy as np

from ..frames import Frame
from ..interpolator import Interpolator, ModelOptions, ModelSpec

#: consistency error (pixels) at which a frame's weight falls to 1/e
OCCLUSION_PIXELS = 1.5
#: smallest side DIS is given; smaller images are edge-padded to it
MIN_FLOW_SIDE = 16


class _Pair(NamedTuple):
    """What every timestep of one pair shares: its frames and their flows."""

    a: Frame
    b: Frame
    f01: np.ndarray
    f10: np.ndarray
    a4: np.ndarray  # a, with its consistency error as a fourth channel
    b4: np.ndarray


class DenseFlow(Interpolator):
    def __init__(self, options: ModelOptions):
        self.scale = options.scale
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._cached_grid: np.ndarray | None = None
        self._pair: _Pair | None = None

    def _gray(self, frame: Frame) -> np.ndarray:
        gray = cv2.cvtColor((frame * 255.0).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        if self.scale != 1.0:
            h, w = gray.shape
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return gray

    def _dis_flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """DIS flow from grey ``a`` to ``b``, edge-padded to :data:`MIN_FLOW_SIDE` where smaller."""
        h, w = a.shape
        pad_y, pad_x = max(0, MIN_FLOW_SIDE - h), max(0, MIN_FLOW_SIDE - w)
        if pad_y or pad_x:
            a, b = (cv2.copyMakeBorder(g, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE) for g in (a, b))
        return self._dis.calc(a, b, None)[:h, :w]

    def _flows(self, a: Frame, b: Frame) -> tuple[np.ndarray, np.ndarray]:
        ga, gb = self._gray(a), self._gray(b)
        f01 = self._dis_flow(ga, gb)
        f10 = self._dis_flow(gb, ga)
        if self.scale != 1.0:
            size = (a.shape[1], a.shape[0])
            f01 = cv2.resize(f01, size, interpolation=cv2.INTER_LINEAR) / self.scale
            f10 = cv2.resize(f10, size, interpolation=cv2.INTER_LINEAR) / self.scale
        return f01, f10

    @staticmethod
    def _warp(image: np.ndarray, flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
        coords = grid + flow
        return cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    def _grid(self, h: int, w: int) -> np.ndarray:
        if self._cached_grid is None or self._cached_grid.shape[:2] != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._cached_grid = np.dstack((xs, ys))
        return self._cached_grid

    def _pair_of(self, a: Frame, b: Frame) -> _Pair:
        """The flows of ``(a, b)``: those of the last call when it was the same pair."""
        pair = self._pair
        if pair is not None and pair.a is a and pair.b is b:
            return pair
        f01, f10 = self._flows(a, b)
        grid = self._grid(*f01.shape[:2])
        # forward-backward consistency: small where a pixel's flow is undone by the opposite flow
        err0 = np.linalg.norm(f01 + self._warp(f10, f01, grid), axis=2)
        err1 = np.linalg.norm(f10 + self._warp(f01, f10, grid), axis=2)
        # each frame travels with its consistency error as a fourth channel: one remap for both
        self._pair = _Pair(a, b, f01, f10, np.dstack((a, err0 / OCCLUSION_PIXELS)),
                           np.dstack((b, err1 / OCCLUSION_PIXELS)))
        return self._pair

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        pair = self._pair_of(*window)
        f01, f10 = pair.f01, pair.f10
        grid = self._grid(*f01.shape[:2])
        out = []
        for t in times:
            ft0 = -(1 - t) * t * f01 + t * t * f10
            ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
            warped0 = self._warp(pair.a4, ft0, grid)
            warped1 = self._warp(pair.b4, ft1, grid)
            w0 = (1 - t) * np.exp(-np.square(warped0[..., 3:])) + 1e-6
            w1 = t * np.exp(-np.square(warped1[..., 3:])) + 1e-6
            out.append((warped0[..., :3] * w0 + warped1[..., :3] * w1) / (w0 + w1))
        return out


SPEC = ModelSpec(
    name="flow",
    summary="OpenCV DIS optical flow, both directions, occlusion-aware warping (no weights)",
    factory=DenseFlow,
    scales=None,
    scale_at_4k=1.0,
    memory_per_pixel=(182, 15),
)
