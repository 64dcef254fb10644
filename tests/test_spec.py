"""The model spec decides what a run can do; stages chain; checkpoints are data beside their model."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import moving_frames, read_video, write_clip

import slomo
from slomo import interpolator, stages, weights
from slomo.interpolator import Interpolator, ModelOptions, ModelSpec


def test_shipped_manifest_is_the_data_the_model_files_declare():
    shipped = json.loads(weights.MANIFEST.read_text())
    generated = json.loads(json.dumps(weights.manifest_data(interpolator.checkpoints())))
    assert shipped == generated
    assert not weights.MANIFEST.is_symlink()  # a checkout without symlinks (Windows) works


def test_help_and_weights_list_do_not_import_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom slomo.cli import main\n"
            "for args in (['--help'], ['weights', 'list', '--json']):\n"
            "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("options,name", [
    (ModelOptions(factor=4), "flavr-4x"),
    (ModelOptions(ratio=Fraction(8)), "flavr-8x"),  # a target rate 8 times the input's
    (ModelOptions(factor=2, ratio=Fraction(4)), "flavr-4x"),  # the rate decides, not the default factor
])
def test_flavr_checkpoint_follows_factor_or_rate(options, name):
    assert interpolator.get_spec("flavr").checkpoint_for(options).name == name


@pytest.mark.parametrize("model,options,message", [
    ("flow", ModelOptions(device="cuda"), "runs on cpu only, not 'cuda'"),
    ("flow", ModelOptions(device="bogus"), "unknown device 'bogus'"),
    ("flow", ModelOptions(precision="bf16"), "computes in fp32 only, not 'bf16'"),
    ("blend", ModelOptions(weights="x.pth"), "uses no weights (got x.pth)"),
    ("rife", ModelOptions(scale=0.3), "scale 0.25, 0.5, 1, 2, 4 only, not 0.3"),
    ("rife", ModelOptions(precision="fp16"), "fp16' needs a CUDA device"),
    ("flavr", ModelOptions(ratio=Fraction(12, 5)), "not 2.4 times the rate"),
    ("flavr", ModelOptions(retimed=True), "not frames at other times"),
    ("bin", ModelOptions(factor=3), "factor must be 1 or a multiple of 2, not 3"),
])
def test_the_spec_refuses_what_its_model_cannot_do(model, options, message):
    with pytest.raises(slomo.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        interpolator.create(model, options)  # refused before any weights are looked for


def test_a_model_that_cannot_do_a_run_alone_is_followed():
    bin_spec = interpolator.get_spec("deblur")
    plans = stages.interpolation(bin_spec, ModelOptions(factor=8), None)
    assert [(p.spec.name, p.timeline.factor) for p in plans] == [(bin_spec.name, 2),
                                                                  (interpolator.DEFAULT_MODEL, 4)]
    assert plans[1].options.weights is None


class _Nearest(Interpolator):
    """A test-only spatial upscaler: every pixel repeated ``factor`` times each way."""

    def __init__(self, options: ModelOptions):
        self.factor = options.factor

    def interpolate(self, window, times):
        assert len(window) == 1 and list(times) == [0.0]
        return [np.repeat(np.repeat(window[0], self.factor, 0), self.factor, 1)]


NEAREST = ModelSpec(name="test-nearest", summary="nearest-neighbour upscaling (tests)", factory=_Nearest,
                    kind="upscale", window=1, timesteps="fixed", factors=(2, 3),
                    restores_keyframes=True)


@pytest.fixture
def nearest(monkeypatch):
    interpolator.available()  # the built-in models first, so the test one is added to them
    monkeypatch.setitem(interpolator._REGISTRY, NEAREST.name, NEAREST)
    return NEAREST


def test_interpolate_then_upscale_end_to_end(nearest, tmp_path):
    src = write_clip(tmp_path / "clip.mp4", moving_frames(6, size=(48, 32)), audio=False)
    plain = slomo.convert(src, tmp_path / "plain.mp4", factor=2, model="blend", crf=0)
    big = slomo.convert(src, tmp_path / "big.mp4", factor=2, model="blend", upscale=2,
                        upscale_model=nearest.name, crf=0)
    assert big.frames_out == plain.frames_out == 12
    small_frames, small_times, _ = read_video(plain.output)
    big_frames, big_times, _ = read_video(big.output)
    assert big_frames[0].shape == (64, 96, 3) and big_times == small_times
    for small, large in zip(small_frames, big_frames, strict=True):
        shrunk = cv2.resize(large, (48, 32), interpolation=cv2.INTER_AREA)
        assert np.abs(shrunk.astype(int) - small.astype(int)).mean() < 3


def test_upscaling_is_refused_when_it_cannot_be_done(nearest, clip):
    with pytest.raises(slomo.UsageError, match="upscales 2x and 3x only, not 4x"):
        slomo.convert(clip, factor=2, model="blend", upscale=4, upscale_model="test-nearest")
    with pytest.raises(slomo.UsageError, match="no upscaling model for 5x"):
        slomo.convert(clip, factor=2, model="blend", upscale=5)
    with pytest.raises(slomo.UsageError, match="unknown upscale model 'blend'"):
        slomo.convert(clip, factor=2, model="blend", upscale=2, upscale_model="blend")
    assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4"]


@pytest.fixture
def registry(monkeypatch):
    """The loaded registry, restored after the test."""
    interpolator.available()
    for table in ("_REGISTRY", "_ALIASES", "_SOURCES"):
        monkeypatch.setattr(interpolator, table, dict(getattr(interpolator, table)))
    return interpolator


def test_built_in_models_come_from_the_entry_point_group_of_the_slomo_distribution(registry):
    from importlib.metadata import entry_points

    declared = {e.name for e in entry_points(group="slomo.models") if e.dist.name == "slomo"}
    built_in = {s.name for s in registry.available() if registry.source(s) == "slomo"}
    assert declared == built_in >= {"rife", "rife-hd", "flavr", "bin", "flow", "blend", "ffmpeg-mci"}


@pytest.mark.parametrize("name", ["blend", "minterpolate"])
def test_a_name_or_alias_already_taken_is_refused_naming_both_sources(registry, name):
    with pytest.raises(slomo.SlomoError, match=rf"model mine from tests: the name '{name}' is already taken "
                                               r"by model (blend|ffmpeg-mci) from slomo"):
        registry.register(ModelSpec(name="mine", summary="", factory=None, aliases=(name,)), "tests")
    assert "mine" not in {s.name for s in registry.available()}


def test_register_adds_a_model_programmatically(registry):
    spec = registry.register(ModelSpec(name="mine", summary="", factory=None))
    assert registry.get_spec("mine") is spec and registry.source(spec) == "register()"


def _entry(value: str, name: str = "broken"):
    from importlib.metadata import EntryPoint

    return EntryPoint(name=name, value=value, group="slomo.models")


@pytest.mark.parametrize("value, problem", [
    ("slomo.models.nonexistent:SPEC", "does not load: No module named 'slomo.models.nonexistent'"),
    ("slomo.models.blend:NOPE", "does not load"),
    ("slomo.models.blend:SPEC", "is not the ModelSpec of a model named 'broken'"),
])
def test_an_entry_point_that_does_not_name_a_spec_is_a_packaging_error_not_skipped(
        monkeypatch, value, problem):
    monkeypatch.setattr(interpolator, "_loaded", False)
    for table in ("_REGISTRY", "_ALIASES", "_SOURCES"):
        monkeypatch.setattr(interpolator, table, {})
    monkeypatch.setattr(interpolator, "entry_points", lambda group: [_entry(value)])
    for _ in range(2):  # reported again on the next lookup, never half-registered
        with pytest.raises(slomo.SlomoError, match=f"model broken = '{value}' from {value}.*{problem}"):
            interpolator.available()
    assert interpolator._REGISTRY == {}


def _imports_torch(*args: str) -> bool:
    """Whether ``python args`` imports torch (Python's own import log says)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True,
                          timeout=120, check=True)
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in done.stderr.splitlines())


def _built_in_entries():
    from importlib.metadata import entry_points

    return sorted(e.name for e in entry_points(group="slomo.models") if e.dist.name == "slomo")


@pytest.mark.parametrize("name", _built_in_entries())
def test_a_built_in_spec_loads_without_torch(name):
    assert not _imports_torch("-c", "from importlib.metadata import entry_points; "
                                    f"entry_points(group='slomo.models')[{name!r}].load()")


def test_listing_the_models_does_not_import_torch():
    assert not _imports_torch("-m", "slomo", "models")


def test_a_followed_model_takes_a_retimed_run_its_follower_finishes():
    # de-duplicated input or a rate cap has no whole factor: BIN makes 2x and RIFE the times
    interpolator.get_spec("bin").check(ModelOptions(factor=4, retimed=True))
