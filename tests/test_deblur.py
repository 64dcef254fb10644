"""--deblur end to end: BIN deblurs and doubles the rate, RIFE makes the rest, audio kept."""

import pytest
import torch
from conftest import audio_track, moving_frames, read_video, write_clip
from test_bin import seeded_state

import slomo
import slomo.api
import slomo.weights


@pytest.fixture(scope="module")
def bin_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("bin") / "adobe_bin.pth"
    torch.save(seeded_state(), path)
    return path


@pytest.fixture
def blurry(tmp_path):
    return write_clip(tmp_path / "shaky.mp4", moving_frames(4, size=(64, 64), motion=(2, 1)))


@pytest.mark.slow  # BIN's full network on CPU
@pytest.mark.parametrize("factor", [1, 4])
def test_deblur_factors(blurry, tmp_path, bin_weights, factor):
    result = slomo.convert(blurry, tmp_path / "out.mp4", factor=factor, model="bin",
                           weights=bin_weights)
    frames, times, info = read_video(result.output)
    assert len(frames) == result.frames_out == 4 * factor
    assert times == pytest.approx([i / (25 * factor) for i in range(4 * factor)], abs=1e-6)
    assert result.model == ("bin" if factor <= 2 else "bin+rife")
    samples, rate, start = audio_track(result.output)
    assert start == pytest.approx(0, abs=1e-3) and len(samples) / rate == pytest.approx(0.16, abs=0.03)


def test_deblur_needs_an_even_factor(blurry, tmp_path, bin_weights):
    with pytest.raises(slomo.api.UsageError, match="the factor must be 1 or a multiple of 2, not 3"):
        slomo.convert(blurry, tmp_path / "out.mp4", factor=3, model="bin", weights=bin_weights)


def test_deblur_without_weights_says_where_to_get_them(blurry, tmp_path, monkeypatch):
    monkeypatch.setenv("SLOMO_HOME", str(tmp_path / "empty"))
    with pytest.raises(slomo.weights.WeightsError, match="slomo weights import bin FILE"):
        slomo.convert(blurry, tmp_path / "out.mp4", factor=2, model="bin")
    assert not (tmp_path / "out.mp4").exists()
