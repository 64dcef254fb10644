"""Every registered model keeps its spec's promises, whoever wrote it.

Its checkpoints are the manifest's entries, and every factor the spec admits runs end to end on a
tiny clip, by factor and (for a fixed-factor model) by the equivalent target rate.  A checkpoint
that is not installed is replaced by a seeded one saved in its authors' format when that is cheap
(the manual-only FLAVR and BIN files), else the case is skipped saying why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import moving_frames, read_video, write_clip

import slomo
from slomo import interpolator, weights
from slomo.interpolator import ModelOptions, ModelSpec

RATE = 25


def _seeded_flavr(factor: int):
    def save(path: Path) -> Path:
        from test_flavr import deterministic_state, save_official, shapes_for

        return save_official(deterministic_state(shapes_for(factor), 0), path)
    return save


def _seeded_bin(path: Path) -> Path:
    import torch
    from test_bin import seeded_state

    torch.save(seeded_state(), path)
    return path


#: checkpoint name -> writes a seeded file in the official format (for manual-only checkpoints)
SEEDED = {"flavr-2x": _seeded_flavr(2), "flavr-4x": _seeded_flavr(4), "flavr-8x": _seeded_flavr(8),
          "bin": _seeded_bin}


def _factors(spec: ModelSpec) -> tuple[int, ...]:
    """The factors a spec promises: its fixed ones, its own and one its follower completes, else 2."""
    if spec.followed_by:
        return spec.factors[-1], 2 * spec.factors[-1]
    return spec.factors if spec.timesteps == "fixed" or spec.kind == "upscale" else (2,)


def _ways(spec: ModelSpec, factor: int) -> tuple[str, ...]:
    """By factor, and by rate for a fixed-factor model; a followed one (slow: BIN) by factor for its
    own factor and by rate for the one its follower completes."""
    if spec.followed_by:
        return ("factor",) if factor == spec.factors[-1] else ("fps",)
    return ("factor", "fps") if spec.timesteps == "fixed" else ("factor",)


def _cases():
    for spec in interpolator.available():
        marks = [pytest.mark.slow] if spec.checkpoints else []
        for factor in _factors(spec):
            for way in _ways(spec, factor):
                yield pytest.param(spec.name, factor, way, marks=marks, id=f"{spec.name}-{factor}x-{way}")


@pytest.mark.parametrize("name", [s.name for s in interpolator.available()])
def test_its_checkpoints_are_the_manifests_entries(name):
    spec = interpolator.get_spec(name)
    shipped = weights.entries()
    for entry in spec.checkpoints:
        assert shipped.get(entry.name) == entry


def _weights_for(spec: ModelSpec, options: ModelOptions, folder: Path) -> Path | None:
    """None when the model needs no file or its checkpoint is installed; else a seeded file."""
    entry = spec.checkpoint_for(options)
    if entry is None or weights.installed(entry.name):
        return None
    if entry.name in SEEDED:
        return SEEDED[entry.name](folder / entry.file)
    pytest.skip(f"checkpoint {entry.name} is not installed and no seeded stand-in is cheap "
                f"('slomo weights fetch {entry.name}' makes this case run)")


@pytest.mark.parametrize("name, factor, way", list(_cases()))
def test_each_promised_factor_runs_end_to_end(tmp_path, name, factor, way):
    spec = interpolator.get_spec(name)
    src = write_clip(tmp_path / "in.mp4", moving_frames(4, size=(64, 48)), fps=RATE, audio=False)
    out = tmp_path / "out.mp4"
    if spec.kind == "upscale":
        checkpoint = _weights_for(spec, ModelOptions(factor=factor), tmp_path)
        assert checkpoint is None, "an upscaler's checkpoint is taken from its spec alone"
        result = slomo.convert(src, out, factor=2, model="blend", upscale=factor, upscale_model=name)
        frames, _, _ = read_video(out)
        assert result.frames_out == 8 and frames[0].shape == (48 * factor, 64 * factor, 3)
        return
    checkpoint = _weights_for(spec, ModelOptions(factor=factor), tmp_path)
    rate = {"factor": None, "fps": RATE * factor}[way]
    result = slomo.convert(src, out, factor=None if rate else factor, fps=rate, model=name,
                           weights=checkpoint, device="cpu")
    frames, _, _ = read_video(out)
    assert result.frames_out == len(frames) == 4 * factor and result.output_fps == RATE * factor
    assert result.model.split("+")[0] == spec.name
