"""The one interface every stage model implements, its spec, and the registry that finds them by name.

A model file defines an :class:`Interpolator` subclass, the :class:`~slomo.weights.Weights` it
loads and a module-level :class:`ModelSpec`; its package declares that spec in the ``slomo.models``
entry-point group (``name = "package.module:SPEC"``), which is how the registry finds every model,
the built-in ones included (see ``pyproject.toml``).  :func:`register` adds one programmatically.
The spec alone answers what the model can do (factors, timesteps, devices, precisions, scales, which
checkpoint serves a run, what follows it when it cannot do a run alone), so the API, the CLI,
``eval`` and ``bench`` ask it and name no model; :func:`create` checks a run against it, resolves
device, dtype and checkpoint once, and hands them to the model's factory.

Frames cross the interface as :data:`slomo.frames.Frame`; the pipeline hands a model
:class:`slomo.frames.Picture` objects through :meth:`Interpolator.interpolate_pictures`, which a
model overrides only to work on decoded planes directly (``blend``; RIFE on CUDA), and through
:meth:`Interpolator.interpolate_pictures_batch` when the model takes several windows a call
(:attr:`Interpolator.pairs_per_call`).
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TypeVar

from . import weights as _weights
from .errors import SlomoError, UsageError, WeightsError
from .frames import Frame, Picture
from .weights import Weights

#: The interpolator of a run that names none, and the one that finishes what a model cannot do alone.
DEFAULT_MODEL = "rife"

#: The entry-point group that declares models: each entry, named as its model, points at its spec.
ENTRY_POINT_GROUP = "slomo.models"

#: What a stage does to the stream: makes frames between the input ones, or resizes each frame.
KINDS = ("interpolate", "upscale")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class ModelOptions:
    """What a run asks of one model; each model uses the fields that concern it.

    ``device`` may be ``"auto"``; :func:`create` hands the factory a copy with the device resolved and
    ``checkpoint`` set to the verified file to load.
    """

    device: str = "cpu"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    weights: Path | None = None  # a checkpoint in its authors' format; None: the spec's choice
    scale: float = 1.0  # compute motion at this fraction of the resolution
    precision: str = "fp32"  # "fp32", "bf16" (CPU or CUDA), "fp16" (CUDA)
    #: frames per input frame (interpolators), or the size factor (upscalers)
    factor: int = 2
    #: output rate / input rate of a run that targets a frame rate; None for a factor run
    ratio: Fraction | None = None
    #: frames at arbitrary times (de-duplicated input, a capped rate): no fixed factor serves it
    retimed: bool = False
    checkpoint: Path | None = None  # resolved by :func:`create`

    @property
    def run_factor(self) -> int | None:
        """Frames per input frame the run needs, or None when its times fit no whole factor."""
        if self.retimed:
            return None
        if self.ratio is None:
            return self.factor
        return int(self.ratio) if self.ratio.denominator == 1 else None

    def checkpoint_file(self) -> Path:
        """The checkpoint a factory loads.  :func:`create` always sets it for a model that has
        checkpoints, so None here means the factory was called without :func:`create`."""
        if self.checkpoint is None:
            raise WeightsError("no checkpoint resolved for this model: build it with "
                               "slomo.interpolator.create")
        return self.checkpoint

    @property
    def dtype(self):
        """The torch dtype of ``precision`` (imports torch: for factories only)."""
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


def _listed(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _factors(factors: Sequence[int | None]) -> str:
    """``(2, 4, 8)`` as "2x, 4x and 8x"."""
    named = [f"{f}x" for f in factors]
    return " and ".join(filter(None, (", ".join(named[:-1]), named[-1])))


@dataclass(frozen=True)
class ModelSpec:
    """Everything the pipeline, the API and ``slomo models`` need to know about a stage model."""

    name: str
    summary: str
    #: builds the model from resolved options (device concrete, ``checkpoint`` located)
    factory: Callable[[ModelOptions], Interpolator]
    kind: str = "interpolate"
    #: frames of context: 1 gives (i); 2 gives (i, i+1); 4 gives (i-1, i, i+1, i+2). Frames between
    #: the two middle ones of the window are produced.
    window: int = 2
    #: "any": any t in (0, 1); "midpoint": only t = 0.5 (others by bisection);
    #: "fixed": exactly t = j/N for the factors in ``factors``
    timesteps: str = "any"
    #: the run factors a "fixed" interpolator makes; the size factors of an upscaler
    factors: tuple[int, ...] = ()
    #: the checkpoints it can load, the first being the default; empty when it needs none
    checkpoints: tuple[Weights, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    #: the motion scales it computes at; None: any
    scales: tuple[float, ...] | None = (1.0,)
    #: True when the model also rewrites the input frames (t = 0): a deblurring model, an upscaler
    restores_keyframes: bool = False
    #: True when outputs depend on earlier calls (recurrent state), reset at scene cuts
    stateful: bool = False
    #: the model that makes the rest of a run this one cannot make alone (it makes ``factors[-1]``)
    followed_by: str | None = None
    #: the scale it is benchmarked at on 4K frames; None: not benchmarked at 4K
    scale_at_4k: float | None = None
    aliases: tuple[str, ...] = field(default=())
    #: peak memory of a call, bytes per frame pixel: for one timestep, and for each further one
    #: (measured by benchmarks/memory_per_pixel.py)
    memory_per_pixel: tuple[int, int] = (0, 0)
    #: turns the files of a checkpoint published in another format (a source with ``"convert"``,
    #: e.g. an ncnn model) into a state dict of this model, at fetch time; None: none are
    convert: Callable[[Weights, dict[str, Path]], dict] | None = None

    @property
    def weights(self) -> tuple[str, ...]:
        """The names of its checkpoints."""
        return tuple(w.name for w in self.checkpoints)

    def check(self, options: ModelOptions) -> None:
        """Refuse, with a :class:`UsageError` naming the value, a run this model cannot do."""
        self.check_setup(options)
        if self.kind == "upscale":
            if options.factor not in self.factors:
                raise UsageError(f"model {self.name} upscales {_factors(self.factors)} only, "
                                 f"not {options.factor}x")
        else:
            self._check_frames(options)

    def check_setup(self, options: ModelOptions) -> None:
        """The checks that need no input: weights, device, precision, scale."""
        if options.weights is not None and not self.checkpoints:
            raise UsageError(f"model {self.name} uses no weights (got {options.weights})")
        if not DEVICE_PATTERN.fullmatch(options.device):
            raise UsageError(f"unknown device {options.device!r} (auto, cpu, cuda, cuda:N, mps)")
        if options.device != "auto" and options.device.split(":")[0] not in self.devices:
            raise UsageError(f"model {self.name} runs on {_listed(self.devices)} only, "
                             f"not {options.device!r}")
        if options.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {options.precision!r} ({_listed(PRECISIONS)})")
        if options.precision not in self.precisions:
            raise UsageError(f"model {self.name} computes in {_listed(self.precisions)} only, "
                             f"not {options.precision!r}")
        if self.scales is not None and options.scale not in self.scales:
            raise UsageError(f"model {self.name} computes motion at scale {_listed(self.scales)} only, "
                             f"not {options.scale:g}")

    def _check_frames(self, options: ModelOptions) -> None:
        """Whether the times the run asks for are ones this interpolator (and its follower) make."""
        if options.ratio is None and (int(options.factor) != options.factor
                                      or options.factor < (1 if self.restores_keyframes else 2)):
            raise UsageError(f"factor must be an integer >= 2 (got {options.factor})")
        factor = options.run_factor
        if self.timesteps != "fixed":
            return
        own = self.factors[-1]
        if self.followed_by:
            if factor is not None and options.ratio is None and factor not in (1, own) and factor % own:
                raise UsageError(f"{self.name} makes {own}x itself and {self.followed_by} the rest: "
                                 f"the factor must be 1 or a multiple of {own}, not {factor}")
            return
        if factor not in self.factors:
            if factor is not None:
                asked = f"{factor}x"
            elif options.retimed or options.ratio is None:
                asked = "frames at other times"
            else:
                asked = f"{float(options.ratio):g} times the rate"
            raise UsageError(f"model {self.name} only makes {_factors(self.factors)}, not {asked}; "
                             f"model {DEFAULT_MODEL} makes any rate")

    def own_factor(self, options: ModelOptions) -> int | None:
        """The factor this model makes itself when a follower makes the rest; None when it makes all."""
        if not self.followed_by:
            return None
        factor = options.run_factor if options.ratio is None else None
        return factor if factor in (1, self.factors[-1]) else self.factors[-1]

    def checkpoint_for(self, options: ModelOptions) -> Weights | None:
        """The checkpoint that serves a run: the one made for its factor, else the default."""
        if not self.checkpoints:
            return None
        # a model followed by another always runs its own largest factor
        factor = (options.factor if self.kind == "upscale" else self.factors[-1] if self.followed_by
                  else options.run_factor)
        specific = [w for w in self.checkpoints if w.factor is not None]
        if not specific:
            return self.checkpoints[0]
        for w in specific:
            if w.factor == factor:
                return w
        raise UsageError(f"model {self.name} has no checkpoint for {factor}x "
                         f"(it has {_factors([w.factor for w in specific])})")


class Interpolator(ABC):
    """A stage model: synthesizes frames between the two middle frames of a window.

    An upscaler is one too: window 1, asked only for t = 0 (``restores_keyframes``), returning the
    frame at its new size.
    """

    spec: ModelSpec  # attached by :func:`create`
    #: how many consecutive windows one call of :meth:`interpolate_pictures_batch` may take.  Above 1
    #: for a model that runs several pairs in one pass and gains from it (RIFE on a GPU, where one
    #: pair's few frames leave it underused); the pipeline then gathers that many and yields what
    #: one window at a time would.  Only a stateless model may set it above 1: the pipeline never
    #: batches a ``stateful`` model (each call continues the last) nor one that ``restores_keyframes``.
    pairs_per_call: int = 1

    @abstractmethod
    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        """Return one frame per entry of ``times`` (each in ``[0, 1)``).

        ``window`` holds ``spec.window`` frames, replicated at the ends of the stream and at
        scene cuts.  ``t = 0`` is only asked of models with ``restores_keyframes``.
        """

    def interpolate_batch(self, windows: Sequence[Sequence[Frame]],
                          times: Sequence[Sequence[float]]) -> list[list[Frame]]:
        """:meth:`interpolate` for consecutive windows; a model that runs several together (RIFE,
        one forward for several pairs on a GPU) overrides it."""
        return [self.interpolate(window, ts) for window, ts in zip(windows, times, strict=True)]

    def prepare(self, picture: Picture) -> None:
        """Work on an input picture that can overlap the model's own: the pipeline calls it from
        its decoding thread for every picture the first stage will see.  The base converts it to
        RGB there (once, kept by the picture), so the conversion is off the model's thread."""
        picture.rgb()

    def interpolate_pictures(self, window: Sequence[Picture], times: Sequence[float]) -> list[Picture]:
        """What the pipeline calls: :meth:`interpolate` on the window's RGB (each picture converted
        once, however many windows it sits in).  A model that can work on the decoded planes
        overrides it."""
        return [Picture(rgb=frame) for frame in self.interpolate([p.rgb() for p in window], times)]

    def interpolate_pictures_batch(self, windows: Sequence[Sequence[Picture]],
                                   times: Sequence[Sequence[float]]) -> list[list[Picture]]:
        """:meth:`interpolate_pictures` for consecutive windows (at most :attr:`pairs_per_call`; the
        same window again when a pair's timesteps take several requests), as :meth:`interpolate_batch`
        is for frames; a model that runs several together overrides it."""
        return [self.interpolate_pictures(window, ts) for window, ts in zip(windows, times, strict=True)]

    def reset(self) -> None:  # noqa: B027 - a no-op for the many stateless models, not abstract
        """Forget recurrent state: the next window does not continue the previous one."""


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}
_SOURCES: dict[str, str] = {}  # model name -> the distribution (or caller) that registered it
_loaded = False


def _holder(name: str) -> ModelSpec | None:
    """The registered model that already answers to ``name`` (as its name or an alias)."""
    return _REGISTRY.get(_ALIASES.get(name, name))


def register(spec: ModelSpec, source: str = "register()") -> ModelSpec:
    """Add a model to the registry; ``source`` says where it comes from (``slomo models`` shows it).

    A name or alias another model already answers to is refused, naming both sources: two plugins
    must never silently replace each other.
    """
    if spec.kind not in KINDS:
        raise ValueError(f"model {spec.name}: unknown kind {spec.kind!r} ({_listed(KINDS)})")
    for w in spec.checkpoints:
        if w.model != spec.name:
            raise ValueError(f"model {spec.name}: checkpoint {w.name} is declared for {w.model}")
    for name in (spec.name, *spec.aliases):
        taken = _holder(name)
        if taken is not None:
            raise SlomoError(f"model {spec.name} from {source}: the name {name!r} is already taken by "
                             f"model {taken.name} from {_SOURCES[taken.name]}")
    _REGISTRY[spec.name] = spec
    _SOURCES[spec.name] = source
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def source(spec: ModelSpec) -> str:
    """Where a registered model comes from: its distribution's name, or ``register()``."""
    return _SOURCES[spec.name]


def _load_entry(entry: EntryPoint) -> tuple[ModelSpec, str]:
    """The spec an entry point names and its distribution; a target that does not load is a
    packaging error, reported, never skipped."""
    origin = entry.dist.name if entry.dist else entry.value
    try:
        spec = entry.load()
    except (ImportError, AttributeError) as exc:
        raise SlomoError(f"model {entry.name} = {entry.value!r} from {origin} does not load: {exc}") from exc
    if not isinstance(spec, ModelSpec) or spec.name != entry.name:
        raise SlomoError(f"model {entry.name} = {entry.value!r} from {origin} is not the ModelSpec "
                         f"of a model named {entry.name!r}")
    return spec, origin


def _load_all() -> None:
    """Register every model the installed distributions declare, all or none."""
    global _loaded
    if _loaded:
        return
    found = [_load_entry(e) for e in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)]
    tables: tuple[dict[str, Any], ...] = (_REGISTRY, _ALIASES, _SOURCES)
    before = [dict(table) for table in tables]
    try:
        for spec, origin in found:
            register(spec, origin)
    except SlomoError:
        for table, saved in zip(tables, before, strict=True):
            table.clear()
            table.update(saved)
        raise
    _loaded = True


def available(kind: str | None = None) -> list[ModelSpec]:
    """All registered models (of ``kind``, if given): the declared ones by name, then those added
    by :func:`register`."""
    _load_all()
    return [s for s in _REGISTRY.values() if kind is None or s.kind == kind]


def get_spec(name: str, kind: str | None = None) -> ModelSpec:
    """The spec of a model by name or alias; :class:`UsageError` with the known names otherwise."""
    _load_all()
    spec = _REGISTRY.get(_ALIASES.get(name, name))
    if spec is None or (kind is not None and spec.kind != kind):
        known = ", ".join(s.name for s in available(kind))
        what = "model" if kind in (None, "interpolate") else f"{kind} model"
        raise UsageError(f"unknown {what} {name!r} (known: {known or 'none installed'})")
    return spec


def checkpoints() -> list[Weights]:
    """Every registered model's checkpoints: the data ``manifest.json`` is generated from."""
    return [w for spec in available() for w in spec.checkpoints]


def resolve_device(device: str, supported: Sequence[str] = ("cpu", "cuda", "mps")) -> str:
    """``auto`` becomes the best available of the ``supported`` devices; explicit ones are checked.

    A CPU-only model resolves without importing torch.
    """
    if device == "cpu" or (device == "auto" and tuple(supported) == ("cpu",)):
        return "cpu"
    if not DEVICE_PATTERN.fullmatch(device):
        raise UsageError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N, mps)")
    import torch

    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        if has_cuda and "cuda" in supported:
            return "cuda"
        return "mps" if has_mps and "mps" in supported else "cpu"
    if device.startswith("cuda") and not has_cuda:
        raise UsageError(f"device {device!r} requested but CUDA is not available")
    if device == "mps" and not has_mps:
        raise UsageError("device 'mps' requested but MPS is not available")
    return device


def resolve(spec: ModelSpec, options: ModelOptions) -> ModelOptions:
    """``options`` checked against ``spec``, with device and checkpoint resolved (the checkpoint's
    file is located, and fetched if missing)."""
    spec.check(options)
    device = resolve_device(options.device, spec.devices)
    if options.precision == "fp16" and not device.startswith("cuda"):
        raise UsageError(f"precision 'fp16' needs a CUDA device, not {device!r}; use 'bf16' or 'fp32'")
    entry = spec.checkpoint_for(options)
    checkpoint = _weights.locate(entry.name, options.weights) if entry else None
    return replace(options, device=device, checkpoint=checkpoint)


def deferred(module: str, name: str, *bound: Any) -> Callable[..., Any]:
    """``module.name(*bound, ...)``, importing ``module`` (and with it torch) only when called: a
    factory (or converter) for a spec declared in a module that stays light, so specs can be
    listed and checked without loading any network."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*bound, *args)

    call.__qualname__ = f"{module}.{name}"
    return call


def create(name: str | ModelSpec, options: ModelOptions | None = None) -> Interpolator:
    """Build a ready-to-run model by name (or spec); it carries its spec as ``.spec``."""
    spec = name if isinstance(name, ModelSpec) else get_spec(name)
    model = spec.factory(resolve(spec, options or ModelOptions()))
    model.spec = spec
    return model


def verify_checkpoint(entry: Weights, path: Path) -> None:
    """Build the model of checkpoint ``entry`` from ``path`` on the CPU: a :class:`WeightsError`
    when the file's keys or shapes do not fit before ``weights.import_file`` installs it)."""
    create(entry.model, ModelOptions(weights=Path(path), factor=entry.factor or 2))


#: what :func:`bisect_times` bisects: frames, or placeholders a caller computes later in batches
Bisected = TypeVar("Bisected")


def bisect_times(
    midpoint: Callable[[Bisected, Bisected], Bisected],
    f0: Bisected,
    f1: Bisected,
    times: Sequence[float],
    threshold: float = 0.02,
    max_depth: int = 8,
) -> list[Bisected]:
    """Frames at ``times`` from a model that only predicts t = 0.5, by recursive bisection.

    Follows the official ECCV2022-RIFE ``--ratio`` search (``inference_img.py``, ``--rthreshold``
    and ``--rmaxcycles``): a t within ``threshold / 2`` of an end returns that end frame;
    otherwise halve the interval containing t until its midpoint lies within ``threshold / 2``
    of t (or after ``max_depth`` midpoints), and return the last midpoint.  Midpoints are
    memoised so the frames of one pair share their work (factor 4 costs 3 forward passes, not 4).
    """
    cache: dict[tuple[float, float], Bisected] = {}

    def mid(lo: float, hi: float, a: Bisected, b: Bisected) -> Bisected:
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
