"""``blend``: a linear cross-fade between the two frames, the baseline every model must beat."""

from __future__ import annotations

from collections.abc import Sequence

import av
import cv2

from .. import colour
from ..frames import Frame, Picture
from ..interpolator import Interpolator, ModelOptions, ModelSpec


class Blend(Interpolator):
    def __init__(self, options: ModelOptions):
        pass

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        a, b = window
        return [a * (1.0 - t) + b * t for t in times]

    def prepare(self, picture: Picture) -> None:
        """Nothing: the planes are mixed as decoded."""

    def interpolate_pictures(self, window: Sequence[Picture], times: Sequence[float]) -> list[Picture]:
        """Mixes the decoded planes themselves when both frames have the same layout: YUV is an
        affine map of RGB, so mixing the planes is mixing the colours, rounded once (within one
        level of the RGB path, a fraction of its cost and memory)."""
        a, b = window
        if a.video is None or b.video is None or colour.layout(a.video) != colour.layout(b.video):
            return super().interpolate_pictures(window, times)
        return [Picture(video=_mix(a.video, b.video, t)) for t in times]


def _mix(a: av.VideoFrame, b: av.VideoFrame, t: float) -> av.VideoFrame:
    """``a * (1 - t) + b * t`` plane by plane, written straight into a new frame's buffers."""
    mixed = colour.blank(a)
    for index in range(len(a.planes)):
        target = colour.plane(mixed, index)
        cv2.addWeighted(colour.plane(a, index), 1.0 - t, colour.plane(b, index), t, 0.0, dst=target)
    return mixed


SPEC = ModelSpec(
    name="blend",
    summary="linear cross-fade (baseline, no weights)",
    factory=Blend,
    scale_at_4k=1.0,
    memory_per_pixel=(48, 12),
)
