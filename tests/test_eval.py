"""slomo eval (metrics, layouts, JSON), the ffmpeg-mci model, and slomo bench."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import moving_frames, psnr, write_clip

from slomo import evaluate, interpolator, io
from slomo.cli import main

RECORD_FIELDS = {"model", "clip", "psnr", "ssim", "frames", "seconds"}


def test_blend_psnr_matches_a_direct_computation(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(11), audio=False)
    # what eval sees: the decoded frames as the pipeline gets them, and their 8-bit versions
    floats = [f for _, f in io.open_input(str(clip)).frames()]
    decoded = [evaluate.to_uint8(f) for f in floats]
    assert len(decoded) == 11
    factor = 3
    expected = []
    for k in range(0, len(decoded) - factor, factor):  # pairs (0, 3), (3, 6), (6, 9)
        a, b = floats[k], floats[k + factor]
        for j in range(1, factor):
            t = j / factor
            made = (np.clip(a * (1 - t) + b * t, 0, 1) * 255 + 0.5).astype(np.uint8)
            expected.append(psnr(made, decoded[k + j]))
    per_model, _ = evaluate.run(clip, ["blend"], factor=factor)
    [result] = per_model["blend"]
    assert len(result.frames) == len(expected) == 6  # frame 10 follows the last kept one: unscored
    assert [f.index for f in result.frames] == [1, 2, 4, 5, 7, 8]
    assert result.record()["psnr"] == pytest.approx(float(np.mean(expected)), abs=1e-6)


def test_metrics():
    rng = np.random.default_rng(1)
    image = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    assert evaluate.ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert evaluate.psnr(image, image) == evaluate.PSNR_CAP
    noisy = np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    assert 0 < evaluate.ssim(image, noisy) < 0.99
    assert evaluate.ssim(image, noisy) == pytest.approx(evaluate.ssim(noisy, image))
    # flat grey images: only the luminance term is left, (2 x y + C1) / (x^2 + y^2 + C1)
    c1 = (0.01 * 255) ** 2
    grey = lambda v: np.full((30, 30, 3), v, np.uint8)  # noqa: E731
    assert evaluate.ssim(grey(100), grey(120)) == pytest.approx(
        (2 * 100 * 120 + c1) / (100 ** 2 + 120 ** 2 + c1), abs=1e-9)
    # a uniform error of 3 per channel: IE is the RGB vector's norm, sqrt(3 * 9)
    shifted = image.astype(int)
    shifted[image < 128] += 3
    shifted[image >= 128] -= 3
    assert evaluate.interpolation_error(image, shifted.astype(np.uint8)) == pytest.approx(
        math.sqrt(27))
    assert evaluate.psnr(image, shifted.astype(np.uint8)) == pytest.approx(
        10 * math.log10(255 ** 2 / 9))


def _png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_middlebury_layout(tmp_path):
    frames = moving_frames(4, size=(64, 48), motion=(2, 0))
    for seq, context in (("Alpha", True), ("Beta", False)):
        data = tmp_path / "other-data" / seq
        _png(data / "frame10.png", frames[0])
        _png(data / "frame11.png", frames[2])
        if context:
            _png(data / "frame09.png", frames[0])
            _png(data / "frame12.png", frames[3])
        _png(tmp_path / "other-gt-interp" / seq / "frame10i11.png", frames[1])
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "other-data"), "--model", "blend",
                                       "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["clip"] for r in records] == ["Alpha", "Beta", "overall"]
    a, b = (np.multiply(f, np.float32(1 / 255), dtype=np.float32) for f in (frames[0], frames[2]))
    expected_image = evaluate.to_uint8(a * 0.5 + b * 0.5)
    for r in records:
        assert set(r) == RECORD_FIELDS | {"ie"}
        assert r["psnr"] == pytest.approx(psnr(expected_image, frames[1]), abs=1e-6)
        assert r["ie"] == pytest.approx(evaluate.interpolation_error(expected_image, frames[1]),
                                        abs=1e-6)
    assert records[-1]["frames"] == 2


def test_vimeo_layout_and_limit(tmp_path):
    frames = moving_frames(3, size=(64, 48), motion=(1, 1))
    for name in ("00001/0001", "00001/0002", "00002/0001"):
        for i, image in enumerate(frames, 1):
            _png(tmp_path / "sequences" / name / f"im{i}.png", image)
    (tmp_path / "tri_testlist.txt").write_text("00002/0001\n00001/0002\n")
    result = CliRunner().invoke(main, ["eval", str(tmp_path), "-m", "blend,flow", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [(r["model"], r["clip"]) for r in records] == [
        ("blend", "00002/0001"), ("blend", "00001/0002"), ("blend", "overall"),
        ("flow", "00002/0001"), ("flow", "00001/0002"), ("flow", "overall")]
    assert all(set(r) == RECORD_FIELDS and r["frames"] >= 1 for r in records)
    assert records[-1]["psnr"] > records[2]["psnr"]  # flow beats blend on moving texture
    limited = CliRunner().invoke(main, ["eval", str(tmp_path), "-m", "blend", "--limit", "1",
                                        "--json"])
    assert [r["clip"] for r in json.loads(limited.output)] == ["00002/0001"]


def test_cli_json_table_plot_and_diffs(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(7), audio=False)
    out = CliRunner().invoke(main, ["eval", str(clip), "-m", "blend", "--json"])
    assert out.exit_code == 0, out.output
    [record] = json.loads(out.output)
    assert set(record) == RECORD_FIELDS
    assert record["model"] == "blend" and record["clip"] == "clip.mp4" and record["frames"] == 3
    assert 0 < record["ssim"] < 1 and record["seconds"] >= 0
    args = ["eval", str(clip), "-m", "blend", "--save-diff", str(tmp_path / "diff"),
            "--worst", "2"]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", str(tmp_path / "psnr.png")]
    except ImportError:
        pass
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "blend" in table.output and "PSNR" in table.output
    diffs = sorted((tmp_path / "diff").glob("blend.*.png"))
    assert len(diffs) == 2
    assert cv2.imread(str(diffs[0])).shape == (64, 96 * 3, 3)
    if "--plot" in args:
        assert (tmp_path / "psnr.png").stat().st_size > 0


def test_cli_errors(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(4), audio=False)
    unknown = CliRunner().invoke(main, ["eval", str(clip), "-m", "nope"])
    assert unknown.exit_code == 2
    assert "slomo: error:" in unknown.output and "unknown model" in unknown.output
    missing = CliRunner().invoke(main, ["eval", str(tmp_path / "none.mp4")])
    assert missing.exit_code == 1
    assert missing.output.strip() == f"slomo: error: {tmp_path / 'none.mp4'}: no such file or folder"


@pytest.fixture(scope="module")
def mci():
    return interpolator.create("ffmpeg-mci")


def test_ffmpeg_mci_midpoint_on_translating_texture(mci):
    frames = moving_frames(3, size=(192, 128), motion=(4, 2))
    a, mid, b = (f.astype(np.float32) / 255 for f in frames)
    [out] = mci.interpolate([a, b], [0.5])
    assert out.shape == a.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    made = evaluate.to_uint8(out)
    # measured: about 28 dB, against about 17 dB for repeating a frame and 20 dB for blending
    repeat = max(psnr(frames[0], frames[1]), psnr(frames[2], frames[1]))
    blend = psnr(evaluate.to_uint8((a + b) / 2), frames[1])
    assert psnr(made, frames[1]) > blend + 4 > repeat + 4
    # in content it lies between the inputs: closer to the true middle than to either input
    assert psnr(made, frames[1]) > max(psnr(made, frames[0]), psnr(made, frames[2])) + 5


def test_ffmpeg_mci_timesteps(mci):
    frames = moving_frames(5, size=(160, 96), motion=(2, 1))
    f = [x.astype(np.float32) / 255 for x in frames]
    quarter = mci.interpolate([f[0], f[4]], [0.25, 0.5, 0.75])
    for made, truth in zip(quarter, frames[1:4], strict=True):
        assert psnr(evaluate.to_uint8(made), truth) > 24
    # off-grid t runs its own graph; on the grid it is the very same frame
    off = mci.interpolate([f[0], f[4]], [0.25 + 1e-9, 0.3])
    assert np.array_equal(off[0], quarter[0])
    assert psnr(evaluate.to_uint8(off[1]), evaluate.to_uint8(quarter[0])) > 30
    # end points need no filter
    ends = mci.interpolate([f[0], f[4]], [0.0, 0.9999])
    assert np.array_equal(ends[0], f[0]) and np.array_equal(ends[1], f[4])


def test_bench_quick_json(tmp_path):
    done = subprocess.run([sys.executable, "-m", "slomo.cli", "bench", "--quick", "--models",
                           "blend", "--sizes", "360p", "--json", "--write",
                           str(tmp_path / "bench.md")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert {r["mode"] for r in records} == {"model", "pipeline"}
    for r in records:
        assert r["model"] == "blend" and r["size"] == "360p"
        assert r["fps"] > 0 and r["memory_mb"] > 0 and r["runs"] >= 1
    report = (tmp_path / "bench.md").read_text()
    assert "| blend | 360p |" in report and "CPU:" in report
