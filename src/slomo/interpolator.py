"""The one interface every interpolator implements, and the registry that finds them by name.

A model file in ``slomo.models`` defines an :class:`Interpolator` subclass and registers a
:class:`ModelSpec` for it with :func:`register`.  The pipeline only ever talks to this interface,
so adding a model never touches the pipeline.

Frames cross the interface as ``float32`` numpy arrays of shape ``(H, W, 3)``, RGB in ``[0, 1]``:
one format whatever the source's bit depth, cheap to hand to OpenCV or to torch.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

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

#: Modules that register models when imported; imported lazily so ``slomo --help`` stays fast.
MODEL_MODULES = (
    "slomo.models.rife",
    "slomo.models.flavr",
    "slomo.models.bin",
    "slomo.models.dain",
    "slomo.models.memcnet",
    "slomo.models.flow",
    "slomo.models.blend",
    "slomo.models.ffmpeg_mci",
)


@dataclass(frozen=True)
class ModelOptions:
    """What a run asks of a model; each model uses the fields that concern it."""

    device: str = "cpu"  # a resolved torch device string: "cpu", "cuda", "cuda:1", "mps"
    weights: Path | None = None  # a checkpoint in its authors' format; None: the manifest default
    scale: float = 1.0  # compute motion at this fraction of the resolution
    precision: str = "fp32"  # "fp32", "bf16" (CPU or CUDA), "fp16" (CUDA)
    factor: int = 2  # the run's frame-count factor, for models whose checkpoint depends on it


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline and ``slomo models`` need to know about an interpolator."""

    name: str
    summary: str
    factory: Callable[[ModelOptions], "Interpolator"]
    #: frames of context: 2 gives (i, i+1); 4 gives (i-1, i, i+1, i+2). Frames between the two
    #: middle ones of the window are produced.
    window: int = 2
    #: "any": any t in (0, 1); "midpoint": only t = 0.5 (others by bisection);
    #: "fixed": exactly t = j/N for the factors in ``factors``
    timesteps: str = "any"
    factors: tuple[int, ...] = ()
    #: manifest entries it loads; empty when it needs no weights
    weights: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    #: True when the model also rewrites the input frames (t = 0), as a deblurring model does
    restores_keyframes: bool = False
    #: True when outputs depend on earlier calls (recurrent state), reset at scene cuts
    stateful: bool = False
    aliases: tuple[str, ...] = field(default=())


class Interpolator(ABC):
    """Synthesizes frames between the two middle frames of a window."""

    spec: ModelSpec  # attached by :func:`create`

    @abstractmethod
    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        """Return one frame per entry of ``times`` (each in ``[0, 1)``).

        ``window`` holds ``spec.window`` frames, replicated at the ends of the stream and at
        scene cuts.  ``t = 0`` is only asked of models with ``restores_keyframes``.
        """

    def reset(self) -> None:
        """Forget recurrent state: the next window does not continue the previous one."""


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (called at import time by each model module)."""
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in MODEL_MODULES:
            importlib.import_module(module)
        _loaded = True


def available() -> list[ModelSpec]:
    """All registered models, in registration order."""
    _load_all()
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    """The spec of a model by name or alias; ``KeyError`` with the known names otherwise."""
    _load_all()
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown model {name!r} (known: {known})")
    return _REGISTRY[name]


def create(name: str, options: ModelOptions | None = None) -> Interpolator:
    """Build a ready-to-run interpolator by name; it carries its spec as ``.spec``."""
    spec = get_spec(name)
    model = spec.factory(options or ModelOptions())
    model.spec = spec
    return model


def bisect_times(
    midpoint: Callable[[Frame, Frame], Frame],
    f0: Frame,
    f1: Frame,
    times: Sequence[float],
    threshold: float = 0.02,
    max_depth: int = 8,
) -> list[Frame]:
    """Frames at ``times`` from a model that only predicts t = 0.5, by recursive bisection.

    Follows the official ECCV2022-RIFE ``--ratio`` search (``inference_img.py``, ``--rthreshold``
    and ``--rmaxcycles``): a t within ``threshold / 2`` of an end returns that end frame;
    otherwise halve the interval containing t until its midpoint lies within ``threshold / 2``
    of t (or after ``max_depth`` midpoints), and return the last midpoint.  Midpoints are
    memoised so the frames of one pair share their work (factor 4 costs 3 forward passes, not 4).
    """
    cache: dict[tuple[float, float], Frame] = {}

    def mid(lo: float, hi: float, a: Frame, b: Frame) -> Frame:
        if (lo, hi) not in cache:
            cache[(lo, hi)] = midpoint(a, b)
        return cache[(lo, hi)]

    half = threshold / 2
    out = []
    for t in times:
        if t <= half:
            out.append(f0)
            continue
        if t >= 1 - half:
            out.append(f1)
            continue
        lo, hi, a, b = 0.0, 1.0, f0, f1
        for _ in range(max_depth):
            m = mid(lo, hi, a, b)
            centre = (lo + hi) / 2
            if t - half <= centre <= t + half:
                break
            if t > centre:
                lo, a = centre, m
            else:
                hi, b = centre, m
        out.append(m)
    return out
