"""FLAVR: parity with the authors' code, checkpoint loading, tiling.

``tests/data/flavr_reference.pt`` holds 4 RGB frames (64x96, uint8, from Big Buck Bunny) and the
outputs of the authors' ``model/FLAVR_arch.py`` (github.com/tarun005/FLAVR, run unchanged on the
CPU) for the 2x and 8x configurations, with the deterministic weights :func:`deterministic_state`
makes from the seed stored next to them.  The test rebuilds those weights, saves them in the
authors' on-disk format and loads them through slomo's normal path.
"""

from __future__ import annotations

import math
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from slomo import interpolator, weights
from slomo.interpolator import ModelOptions
from slomo.models.flavr import network as flavr

DATA = Path(__file__).parent / "data" / "flavr_reference.pt"
STEP = 1 / 255  # one 8-bit rounding step


def deterministic_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Weights from a torch generator seeded per key (seed + crc32(key)), in sorted key order.

    Kernels are normal with std 1 / sqrt(numel / shape[0]) (about unit gain, so activations stay in
    a sane range through the 3D U-Net); biases are normal with std 0.02.
    """
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        gen = torch.Generator().manual_seed(seed + zlib.crc32(key.encode()))
        if len(shape) > 1:
            std = (math.prod(shape) / shape[0]) ** -0.5
        else:
            std = 0.02
        state[key] = torch.randn(shape, generator=gen, dtype=torch.float32) * std
    return state


def save_official(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Save weights the way the authors' DataParallel training did."""
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    return path


def shapes_for(factor: int) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in flavr.FlavrNet(factor - 1).state_dict().items()}


@pytest.fixture(scope="module")
def reference():
    return torch.load(DATA, weights_only=True)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOMO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _frames(reference) -> list[np.ndarray]:
    return [f.numpy().astype(np.float32) / 255 for f in reference["frames"]]


@pytest.mark.parametrize("factor", [2, 8])
def test_matches_official_code(reference, tmp_path, factor):
    ref = reference[f"out_{factor}x"]  # (factor - 1, 3, H, W) raw outputs of the authors' net
    state = deterministic_state(shapes_for(factor), int(reference["seed"]))
    path = save_official(state, tmp_path / f"FLAVR_{factor}x.pth")
    model = interpolator.create("flavr", ModelOptions(weights=path, factor=factor))
    times = [j / factor for j in range(1, factor)]
    got = np.stack(model.interpolate(_frames(reference), times))  # (n, H, W, 3)
    want = ref.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert got.shape == want.shape
    # the clamp must not hide the comparison: most of the reference is inside (0, 1)
    assert ((want > 0) & (want < 1)).mean() > 0.9
    diff = np.abs(got - want).max()
    assert diff <= STEP, diff
    assert diff < 1e-4, diff  # in practice float rounding only (about 1e-7 on x86 CPUs)
    # and quantised the way the authors write images, at most one step apart
    q = lambda a: np.round(a * 255)  # noqa: E731
    assert np.abs(q(got) - q(want)).max() <= 1


def test_cached_window_is_reused(reference, tmp_path):
    torch.manual_seed(4)
    state = {k: torch.randn(s) * 0.01 for k, s in shapes_for(4).items()}
    path = save_official(state, tmp_path / "FLAVR_4x.pth")
    model = interpolator.create("flavr", ModelOptions(weights=path, factor=4))
    frames = [f[:32, :48] for f in _frames(reference)]
    calls = []
    original = model._predict
    model._predict = lambda w: calls.append(1) or original(w)
    a = model.interpolate(frames, [0.25, 0.5, 0.75])
    b = model.interpolate([f.copy() for f in frames], [0.5])
    assert len(calls) == 1
    np.testing.assert_array_equal(a[1], b[0])
    model.interpolate([frames[1]] * 4, [0.5])
    assert len(calls) == 2
    with pytest.raises(ValueError, match="j/4"):
        model.interpolate(frames, [0.3])


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_import_random_checkpoints(home, tmp_path, factor):
    torch.manual_seed(factor)
    state = {k: torch.randn(s) * 0.01 for k, s in shapes_for(factor).items()}
    src = save_official(state, tmp_path / f"FLAVR_{factor}x.pth")
    name = f"flavr-{factor}x"
    installed = weights.import_file(name, src, interpolator.verify_checkpoint)
    assert installed == home / name / f"FLAVR_{factor}x.pth"
    assert weights.locate(name) == installed
    model = interpolator.create("flavr", ModelOptions(factor=factor))
    out = model.interpolate([np.full((20, 30, 3), 0.5, np.float32)] * 4, [1 / factor])
    assert out[0].shape == (20, 30, 3) and out[0].dtype == np.float32


def test_wrong_key_is_refused(home, tmp_path):
    state = {k: torch.zeros(s) for k, s in shapes_for(2).items()}
    state["encoder.stem.0.weight_renamed"] = state.pop("encoder.stem.0.weight")
    src = save_official(state, tmp_path / "FLAVR_2x.pth")
    with pytest.raises(weights.WeightsError, match="missing"):
        weights.import_file("flavr-2x", src, interpolator.verify_checkpoint)
    assert weights.installed("flavr-2x") is None


def test_checkpoint_for_another_factor_is_refused(home, tmp_path):
    state = {k: torch.zeros(s) for k, s in shapes_for(8).items()}
    src = save_official(state, tmp_path / "FLAVR_8x.pth")
    with pytest.raises(weights.WeightsError, match="8x checkpoint"):
        weights.import_file("flavr-2x", src, interpolator.verify_checkpoint)


def test_factor_without_checkpoint_is_refused():
    with pytest.raises(ValueError, match="2x, 4x and 8x"):
        interpolator.create("flavr", ModelOptions(factor=3))


def test_missing_weights_point_to_the_authors_drive(home):
    with pytest.raises(weights.WeightsError) as info:
        interpolator.create("flavr", ModelOptions(factor=4))
    message = str(info.value)
    assert "drive.google.com" in message and "slomo weights import flavr-4x" in message


def test_spec():
    spec = interpolator.get_spec("flavr")
    assert spec.window == 4 and spec.timesteps == "fixed" and spec.factors == (2, 4, 8)
    assert spec.weights == ("flavr-2x", "flavr-4x", "flavr-8x")
    assert set(spec.devices) == {"cpu", "cuda"}
    entries = weights.entries()
    for factor in (2, 4, 8):
        e = entries[f"flavr-{factor}x"]
        assert (e.model, e.factor, e.file) == ("flavr", factor, f"FLAVR_{factor}x.pth")
        assert e.manual_links


def test_tiles_blend_without_seams(reference):
    """Tiles blend into the untiled result: the only difference left is that each tile's
    feature gates average over the tile instead of the frame, which the feathering spreads out."""
    state = deterministic_state(shapes_for(2), int(reference["seed"]))
    net = flavr.FlavrNet(1)
    net.load_state_dict(state)
    frames = _frames(reference)
    # widen the 64x96 clip to 64x128 by mirroring, so 3 tiles of 64 overlapping by 32 are needed
    frames = [np.pad(f, ((0, 0), (16, 16), (0, 0)), mode="reflect") for f in frames]
    whole = flavr.Flavr(net, 2, tile=10_000).interpolate(frames, [0.5])[0]
    tiled_model = flavr.Flavr(net, 2, tile=64, overlap=24)
    assert len(flavr._spans(128, 64, 24)) == 3  # really tiled
    tiled = tiled_model.interpolate(frames, [0.5])[0]
    diff = np.abs(tiled - whole)
    assert diff.mean() < 0.05 * STEP, diff.mean() / STEP  # measured: 0.016 steps
    assert diff.max() < 0.5 * STEP, diff.max() / STEP  # measured: 0.12 steps
    # no seam: the difference has no step from one column to the next (measured: 0.04 steps)
    jumps = np.abs(np.diff(tiled - whole, axis=1)).mean(axis=(0, 2))
    assert jumps.max() < 0.1 * STEP, jumps.max() / STEP


def test_spans_cover_and_align():
    for length in (50, 64, 65, 200, 1080, 1920):
        spans = flavr._spans(length, 64, 24)
        assert spans[0][0] == 0 and spans[-1][1] == length
        for (s0, e0), (s1, _) in pairwise(spans):
            assert s1 % 8 == 0 and e0 - s1 >= 24 and s1 > s0
        weights_ = flavr._axis_weights(spans)
        total = np.zeros(length)
        for (s, e), w in zip(spans, weights_, strict=True):
            total[s:e] += w
        assert total.min() > 0.99 - 1e-9 or len(spans) == 1


def test_end_to_end_8x_through_convert(tmp_path):
    """``slomo clip.mp4 --model flavr --factor 8 --weights FLAVR_8x.pth``, with audio."""
    from conftest import audio_track, moving_frames, read_video, write_clip

    import slomo

    checkpoint = save_official(deterministic_state(shapes_for(8), 0), tmp_path / "FLAVR_8x.pth")
    src = write_clip(tmp_path / "clip.mp4", moving_frames(4, size=(64, 48)))
    result = slomo.convert(src, tmp_path / "out.mp4", factor=8, model="flavr", weights=checkpoint)
    frames, times, info = read_video(result.output)
    assert len(frames) == result.frames_out == 32 and info["rate"] == 200
    assert times == pytest.approx([i / 200 for i in range(32)], abs=1e-6)
    assert len(audio_track(result.output)[0]) == len(audio_track(src)[0])
    with pytest.raises(slomo.api.UsageError, match="not 3x; model rife makes any rate"):
        slomo.convert(src, tmp_path / "bad.mp4", factor=3, model="flavr", weights=checkpoint)
