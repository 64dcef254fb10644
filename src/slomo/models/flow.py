"""``flow``: classical dense optical flow, the model that works with no download at all.

OpenCV's DIS flow is computed once per pair in both directions.  For each timestep the flows from
time t back to either frame are approximated from the two (as in Super SloMo), both frames are
backward-warped to t and blended, each weighted by its closeness in time and by how consistent
its flow is with the opposite one, so regions hidden in one frame come from the other.

DIS refuses images smaller than its patches (OpenCV 5 needs a side of 12 pixels), so tiny frames
(and tiny ``scale``-d ones) are edge-padded to :data:`MIN_FLOW_SIDE` for the flow, which is then
cropped back: a 1x1 video interpolates like any other.  The pipeline asks for a pair's timesteps
in batches, so the flows of the last pair are kept for the next batch of the same pair, and its
second frame's grey image for the next pair, which usually starts there.

Most of the time is DIS and ``cv2.remap``; the arithmetic around them is done by OpenCV calls and
in-place numpy on whole contiguous images (numpy is slow over a short last axis: a norm over a
flow's two channels, a weight broadcast over three colours), which keeps it to a few passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from ..frames import Frame
from ..interpolator import Interpolator, ModelOptions, ModelSpec

#: consistency error (pixels) at which a frame's weight falls to 1/e
OCCLUSION_PIXELS = 1.5
#: smallest side DIS is given; smaller images are edge-padded to it
MIN_FLOW_SIDE = 16
#: what a pixel's two weights are scaled to sum to before ``cv2.blendLinear`` (see ``_at``)
BLEND_WEIGHT_SUM = 1000.0


class _Pair(NamedTuple):
    """What every timestep of one pair shares: its frames and their flows."""

    a: Frame
    b: Frame
    gray_b: np.ndarray  # b as DIS saw it: the next pair's first frame, when it starts at b
    f01: np.ndarray
    f10: np.ndarray
    a4: np.ndarray  # a, with its consistency error as a fourth channel
    b4: np.ndarray


class DenseFlow(Interpolator):
    def __init__(self, options: ModelOptions):
        self.scale = options.scale
        self._dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._cached_grid: np.ndarray | None = None
        self._pair: _Pair | None = None

    def _gray(self, frame: Frame) -> np.ndarray:
        """``frame`` as DIS takes it: 8-bit grey, resized by ``scale``."""
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
        # OpenCV allocates the output for flow=None; its stubs only list array arguments
        return self._dis.calc(a, b, None)[:h, :w]  # type: ignore[call-overload]

    def _flow(self, a: np.ndarray, b: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The flow from grey ``a`` to ``b`` at the frames' ``size`` (width, height) in their pixels."""
        flow = self._dis_flow(a, b)
        if self.scale != 1.0:
            flow = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
            np.divide(flow, self.scale, out=flow)
        return flow

    @staticmethod
    def _warp(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """``image`` sampled at ``coords`` (x, y a pixel): one two-channel map, as remap likes it."""
        # map2=None takes map1 as both coordinates; OpenCV's stubs only list array arguments
        return cv2.remap(image, coords, None, cv2.INTER_LINEAR,  # type: ignore[call-overload]
                         borderMode=cv2.BORDER_REPLICATE)

    def _grid(self, h: int, w: int) -> np.ndarray:
        if self._cached_grid is None or self._cached_grid.shape[:2] != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._cached_grid = cv2.merge((xs, ys))
        return self._cached_grid

    def _with_error(self, frame: Frame, flow: np.ndarray, back: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """``frame`` with a fourth channel: how far ``back``, the opposite flow, misses undoing ``flow``
        (in :data:`OCCLUSION_PIXELS`), small where the pixel is seen in both frames."""
        miss = self._warp(back, grid + flow)
        np.add(miss, flow, out=miss)
        error = cv2.magnitude(*cv2.split(miss))
        np.divide(error, OCCLUSION_PIXELS, out=error)
        return cv2.merge((frame, error))

    def _pair_of(self, a: Frame, b: Frame) -> _Pair:
        """The flows of ``(a, b)``: those of the last call when it was the same pair."""
        pair = self._pair
        if pair is not None and pair.a is a and pair.b is b:
            return pair
        gray_a = pair.gray_b if pair is not None and pair.b is a else self._gray(a)
        self._pair = pair = None  # its arrays go before the new ones come
        gray_b = self._gray(b)
        size = (a.shape[1], a.shape[0])
        f01, f10 = self._flow(gray_a, gray_b, size), self._flow(gray_b, gray_a, size)
        grid = self._grid(*f01.shape[:2])
        # each frame travels with its consistency error as a fourth channel: one remap for both
        self._pair = _Pair(a, b, gray_b, f01, f10, self._with_error(a, f01, f10, grid),
                           self._with_error(b, f10, f01, grid))
        return self._pair

    @staticmethod
    def _moved(grid: np.ndarray, pair: _Pair, w01: float, w10: float) -> np.ndarray:
        """``grid`` moved by the flow ``w01 f01 + w10 f10``: where each pixel at t comes from."""
        coords = cv2.addWeighted(pair.f01, w01, pair.f10, w10, 0.0)
        return np.add(coords, grid, out=coords)

    @staticmethod
    def _weight(warped: np.ndarray, closeness: float) -> np.ndarray:
        """A warped frame's weight: ``closeness * exp(-e^2) + 1e-6``, its closeness in time less where
        its flow is inconsistent; ``e`` is its error channel, interpolated by the warp, then squared."""
        weight = cv2.extractChannel(warped, 3)
        np.square(weight, out=weight)
        np.negative(weight, out=weight)
        cv2.exp(weight, dst=weight)
        np.multiply(weight, closeness, out=weight)
        np.add(weight, 1e-6, out=weight)
        return weight

    def _blended(self, pair: _Pair, grid: np.ndarray, t: float) -> np.ndarray:
        """Both frames warped to ``t`` and blended by their weights, still with a fourth channel."""
        # the flows from t back to 0 and to 1, approximated from the pair's (as in Super SloMo)
        warped0 = self._warp(pair.a4, self._moved(grid, pair, -(1 - t) * t, t * t))
        warped1 = self._warp(pair.b4, self._moved(grid, pair, (1 - t) * (1 - t), -t * (1 - t)))
        w0, w1 = self._weight(warped0, 1 - t), self._weight(warped1, t)
        # blendLinear gives (x0 w0 + x1 w1) / (w0 + w1 + 1e-5) in one pass: weights that sum to
        # BLEND_WEIGHT_SUM make its 1e-5 a change below float32's rounding
        scale = np.add(w0, w1)
        np.divide(BLEND_WEIGHT_SUM, scale, out=scale)
        return cv2.blendLinear(warped0, warped1, np.multiply(w0, scale, out=w0),
                               np.multiply(w1, scale, out=w1))

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        pair = self._pair_of(*window)
        grid = self._grid(*pair.f01.shape[:2])
        # the fourth channel dropped once the warped frames and weights are gone
        return [cv2.cvtColor(self._blended(pair, grid, t), cv2.COLOR_RGBA2RGB) for t in times]


SPEC = ModelSpec(
    name="flow",
    summary="OpenCV DIS optical flow, both directions, occlusion-aware warping (no weights)",
    factory=DenseFlow,
    scales=None,
    scale_at_4k=1.0,
    memory_per_pixel=(167, 10),
)
