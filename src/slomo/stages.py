"""A run as a chain of stages: upscale, then interpolate (deblurring models: deblur and interpolate,
then upscale), each a model with a spec.

:func:`plan` turns a request into :class:`StagePlan` items, checked against each spec before any
work starts; :func:`build` creates their models for :func:`slomo.pipeline.run`, which composes them.
A model whose spec has ``followed_by`` makes its own factor and leaves the rest of the run to its
follower; an upscaler (window 1, ``restores_keyframes``) rewrites every frame at its new size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import interpolator, pipeline
from .interpolator import ModelOptions, ModelSpec


@dataclass(frozen=True)
class StagePlan:
    """One stage of a run: which model, asked what, filling which timeline."""

    spec: ModelSpec
    options: ModelOptions
    timeline: pipeline.Timeline


def interpolation(spec: ModelSpec, options: ModelOptions, timeline: pipeline.Timeline) -> list[StagePlan]:
    """The interpolating stages of a run: the model alone, or its own factor and then its follower;
    none for a factor-1 run of a model that only makes frames between others (a run that only
    upscales)."""
    if only_upscales(spec, options):
        return []
    spec.check(options)
    own = spec.own_factor(options)
    if own is None or (options.ratio is None and own == options.run_factor):
        return [StagePlan(spec, options, pipeline.FactorTimeline(own) if own else timeline)]
    assert spec.followed_by  # own_factor is None for a model nobody follows
    follower = interpolator.get_spec(spec.followed_by)
    by_factor = options.ratio is None
    rest = replace(options, weights=None, factor=options.factor // own if by_factor else options.factor)
    follow = pipeline.FactorTimeline(rest.factor) if by_factor and not options.retimed else timeline
    follower.check(rest)
    return [StagePlan(spec, options, pipeline.FactorTimeline(own)), StagePlan(follower, rest, follow)]


def only_upscales(spec: ModelSpec, options: ModelOptions) -> bool:
    """Whether a factor-1 run leaves ``spec`` nothing to do (it does not rewrite input frames), so
    the run's only stage is its upscaler."""
    return options.ratio is None and options.factor == 1 and not spec.restores_keyframes


def upscaling(spec: ModelSpec, options: ModelOptions) -> StagePlan:
    """The stage that resizes every frame ``options.factor`` times; it makes no new timestamps."""
    spec.check(options)
    return StagePlan(spec, options, pipeline.FactorTimeline(1))


def upscales_first(spec: ModelSpec) -> bool:
    """Whether the upscaler runs before interpolator ``spec``: yes (it then upscales the input frames
    only, and the measured cost of the whole run is lower: ``benchmarks/upscale_order.py``, README),
    unless ``spec`` rewrites the input frames (deblurring), which must see the frames as shot."""
    return not spec.restores_keyframes


def chain(interpolating: list[StagePlan], upscale: StagePlan | None) -> list[StagePlan]:
    """A run's stages in order (see :func:`upscales_first`)."""
    if upscale is None:
        return interpolating
    if not interpolating or upscales_first(interpolating[0].spec):
        return [upscale, *interpolating]
    return [*interpolating, upscale]


def upscaler_for(factor: int, name: str | None = None) -> ModelSpec:
    """The named upscaling model, or the first registered one that makes ``factor``."""
    if name:
        return interpolator.get_spec(name, kind="upscale")
    for spec in interpolator.available("upscale"):
        if factor in spec.factors:
            return spec
    raise interpolator.UsageError(f"no upscaling model for {factor}x is installed")


def build(plans: list[StagePlan]) -> list[pipeline.Stage]:
    """Create each stage's model (device, dtype and checkpoint resolved by its spec)."""
    return [(interpolator.create(p.spec, p.options), p.timeline) for p in plans]
