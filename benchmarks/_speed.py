"""What the model speed benchmarks (``bin_speed``, ``dain_speed``, ``flavr_speed``) share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


def timed_calls(calls: Iterable[Callable[[], object]], device: str) -> list[float]:
    """Seconds each call took, the device synchronised after each: CUDA runs asynchronously, and
    an unsynchronised call would only time its launch."""
    import torch

    seconds = []
    for call in calls:
        started = time.perf_counter()
        call()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return seconds
