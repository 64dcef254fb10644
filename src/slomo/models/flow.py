"""``flow``: classical dense optical flow, the model that works with no download at all.

OpenCV's DIS flow is computed once per pair in both directions.  For each timestep the flows from
time t back to either frame are approximated from the two (as in Super SloMo), both frames are
backward-warped to t and blended, each weighted by its closeness in time and by how consistent
its flow is with the opposite one, so regions hidden in one frame come from the other.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..frames import Frame
from ..interpolator import Interpolator, ModelOptions, ModelSpec

#: consistency error (pixels) at which a frame's weight falls to 1/e
OCCLUSION_PIXELS = 1.5


class DenseFlow(Interpolator):
    def __init__(self, options: ModelOptions):
        self.scale = options.scale
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._cached_grid: np.ndarray | None = None

    def _gray(self, frame: Frame) -> np.ndarray:
        gray = cv2.cvtColor((frame * 255.0).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        if self.scale != 1.0:
            gray = cv2.resize(gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        return gray

    def _flows(self, a: Frame, b: Frame) -> tuple[np.ndarray, np.ndarray]:
        ga, gb = self._gray(a), self._gray(b)
        f01 = self._dis.calc(ga, gb, None)
        f10 = self._dis.calc(gb, ga, None)
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

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        a, b = window
        f01, f10 = self._flows(a, b)
        grid = self._grid(*f01.shape[:2])
        # forward-backward consistency: small where a pixel's flow is undone by the opposite flow
        err0 = np.linalg.norm(f01 + self._warp(f10, f01, grid), axis=2)
        err1 = np.linalg.norm(f10 + self._warp(f01, f10, grid), axis=2)
        # each frame travels with its consistency error as a fourth channel: one remap for both
        a4 = np.dstack((a, err0 / OCCLUSION_PIXELS))
        b4 = np.dstack((b, err1 / OCCLUSION_PIXELS))
        out = []
        for t in times:
            ft0 = -(1 - t) * t * f01 + t * t * f10
            ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
            warped0 = self._warp(a4, ft0, grid)
            warped1 = self._warp(b4, ft1, grid)
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
)
