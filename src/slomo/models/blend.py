"""``blend``: a linear cross-fade between the two frames, the baseline every model must beat."""

from __future__ import annotations

from collections.abc import Sequence

from ..frames import Frame
from ..interpolator import Interpolator, ModelOptions, ModelSpec


class Blend(Interpolator):
    def __init__(self, options: ModelOptions):
        pass

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        a, b = window
        return [a * (1.0 - t) + b * t for t in times]


SPEC = ModelSpec(
    name="blend",
    summary="linear cross-fade (baseline, no weights)",
    factory=Blend,
    scale_at_4k=1.0,
    memory_per_pixel=(48, 12),
)
