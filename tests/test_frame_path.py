"""The integer frame path: pictures cross the pipeline as decoded planes, and give today's output.

The reference is the float RGB path every frame took before: ``colour.to_rgb`` on the decoded
inputs, ``model.interpolate``, ``colour.from_rgb`` in the output format.
"""

import subprocess
import sys

import av
import numpy as np
import pytest
from conftest import ROOT

import slomo
from slomo import colour, interpolator
from slomo.frames import Picture

FRAMES = 5


@pytest.fixture(scope="module")
def short_real(tmp_path_factory):
    """The first frames of the real montage bikes.mp4 (640x272 yuv420p), copied losslessly (FFV1)."""
    from slomo import samples

    montage = samples.fetch(ROOT / ".cache" / "media" / "bikes.mp4")
    return samples.lossless_start(montage, FRAMES, tmp_path_factory.mktemp("real") / "short.mkv")


def _decoded(path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [colour.plane(frame, i).astype(np.int32) for i in range(3)]


def _old_path(model_name: str, inputs: list[av.VideoFrame]) -> list[list[np.ndarray]]:
    """The in-between frames as the float RGB path made them, as planes."""
    model = interpolator.create(model_name, interpolator.ModelOptions(device="cpu"))
    made = []
    for a, b in zip(inputs, inputs[1:], strict=False):
        window = [colour.to_rgb(f, int(f.colorspace), int(f.color_range)) for f in (a, b)]
        [middle] = model.interpolate(window, [0.5])
        made.append(_planes(colour.from_rgb(middle, a.format.name, int(a.colorspace), int(a.color_range))))
    return made


def _clipped(frame: av.VideoFrame) -> list[np.ndarray]:
    """Where the float RGB path changes a frame it only passes through: YUV values outside the RGB
    gamut, clipped by ``to_rgb`` (about 1% of bikes' pixels)."""
    rgb = colour.to_rgb(frame, int(frame.colorspace), int(frame.color_range))
    back = colour.from_rgb(rgb, frame.format.name, int(frame.colorspace), int(frame.color_range))
    return [got != want for got, want in zip(_planes(back), _planes(frame), strict=True)]


@pytest.mark.parametrize("model", ["blend", "flow"])
def test_integer_path_matches_the_float_rgb_path_within_one_level(short_real, tmp_path, model):
    """Everywhere but where the old path clipped out-of-gamut input (there the integer path keeps
    what was decoded; the old path was off by up to 8 levels on bikes)."""
    result = slomo.convert(short_real, tmp_path / "out.mkv", factor=2, model=model, codec="ffv1")
    out = _decoded(result.output)
    inputs = _decoded(short_real)
    assert len(out) == 2 * FRAMES and out[0].format.name == "yuv420p"
    for index, expected in enumerate(_old_path(model, inputs)):
        clipped = zip(_clipped(inputs[index]), _clipped(inputs[index + 1]), strict=True)
        for got, want, (in_a, in_b) in zip(_planes(out[2 * index + 1]), expected, clipped, strict=True):
            kept = ~(in_a | in_b)
            assert kept.mean() > 0.98
            assert np.abs(got - want)[kept].max() <= 1, (model, index)


def test_untouched_frames_are_encoded_from_their_planes_bit_for_bit(short_real, tmp_path):
    result = slomo.convert(short_real, tmp_path / "out.mkv", factor=2, model="blend", codec="ffv1")
    out = _decoded(result.output)
    for index, source in enumerate(_decoded(short_real)):
        for got, want in zip(_planes(out[2 * index]), _planes(source), strict=True):
            assert np.array_equal(got, want), index
    # the last frame is held to the end: its repeat is the same planes again
    assert all(np.array_equal(g, w) for g, w in zip(_planes(out[-1]), _planes(out[-2]), strict=True))


def test_blend_mixes_planes_of_padded_rows_and_16_bit_formats():
    for fmt, width in (("yuv420p", 70), ("yuv422p10le", 38)):
        a, b = (av.VideoFrame(width, 20, fmt) for _ in range(2))
        rng = np.random.default_rng(0)
        top = 255 if fmt == "yuv420p" else 1023
        for frame in (a, b):
            for index in range(3):
                view = colour.plane(frame, index)
                view[...] = rng.integers(0, top + 1, view.shape)
        model = interpolator.create("blend")
        [mixed] = model.interpolate_pictures([Picture(video=a), Picture(video=b)], [0.25])
        assert mixed.video is not None and mixed.video.format.name == fmt
        for got, pa, pb in zip(_planes(mixed.video), _planes(a), _planes(b), strict=True):
            assert np.abs(got - (0.75 * pa + 0.25 * pb)).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("through", ["api", "cli"])
def test_a_blend_run_never_imports_torch(short_real, tmp_path, through):
    run = {"api": "slomo.convert(sys.argv[1], sys.argv[2], factor=2, model='blend')",
           "cli": "sys.argv = ['slomo', sys.argv[1], '-o', sys.argv[2], '-m', 'blend', '-q']\n"
                  "try:\n    slomo.cli.main()\nexcept SystemExit:\n    pass"}[through]
    code = f"import sys, slomo, slomo.cli\n{run}\nprint('torch' in sys.modules, file=sys.stderr)"
    out = tmp_path / "out.mp4"
    done = subprocess.run([sys.executable, "-c", code, str(short_real), str(out)], capture_output=True,
                          text=True, check=True)
    assert out.exists()
    assert done.stderr.strip().splitlines()[-1] == "False"
