"""DAIN: each custom CUDA layer against a loop transcription of its kernel, checkpoint
compatibility with the official module definitions, and runs through the pipeline.

No GPU was available to build and run the official CUDA extensions, so there is no parity test
against the compiled official forward yet.  Instead every layer that the official code
implements in CUDA (``my_package/*/*_cuda_kernel.cu`` and PWC-Net's correlation package of
https://github.com/baowenbo/DAIN) is checked here against a plain-Python transcription of its
forward kernel, one loop iteration per CUDA thread, on tiny random inputs; and (with the official
repositories at hand) the official Python forward, its CUDA layers swapped for ours, is checked
to give our model's output.

MEMC-Net (https://github.com/baowenbo/MEMC-Net) shares the layers; its flow projection kernel
differs only in a typo that disables the downward hole search, transcribed as such.

``tests/data/dain_memcnet_official_keys.json`` lists the key names and shapes of
``networks.DAIN_slowmotion(training=False).state_dict()`` and of ``MEMC_Net(training=False)``,
taken from the official classes themselves (their CUDA imports stubbed, see
:func:`official_source`).  With ``SLOMO_DAIN_REPO`` / ``SLOMO_MEMCNET_REPO`` pointing at git
clones of the official repositories the lists are rebuilt from them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from slomo import interpolator, weights
from slomo.interpolator import ModelOptions, create, get_spec
from slomo.models import dain, memcnet

KEYS = Path(__file__).parent / "data" / "dain_memcnet_official_keys.json"

# --------------------------------------------------------------------------------------------
# loop transcriptions of the official CUDA kernels (forward passes)


def loop_correlation(input1: np.ndarray, input2: np.ndarray, md: int) -> np.ndarray:
    """``correlation_forward`` with pad_size = max_displacement = md, kernel_size 1, strides 1:
    ``channels_first`` copies both inputs into zero-filled padded HWC buffers, then one block per
    output pixel sums the products over channels and divides by ``kernel_size^2 * C``."""
    n, c, h, w = input1.shape
    ph, pw = h + 2 * md, w + 2 * md
    r1 = np.zeros((n, ph, pw, c), np.float32)
    r2 = np.zeros((n, ph, pw, c), np.float32)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                for ch in range(c):
                    r1[b, y + md, x + md, ch] = input1[b, ch, y, x]
                    r2[b, y + md, x + md, ch] = input2[b, ch, y, x]
    size = 2 * md + 1
    out = np.zeros((n, size * size, h, w), np.float32)
    nelems = 1 * 1 * c
    for b in range(n):
        for oy in range(h):
            for ox in range(w):
                y1, x1 = oy + md, ox + md
                for tj in range(-md, md + 1):
                    for ti in range(-md, md + 1):
                        x2, y2 = x1 + ti, y1 + tj
                        acc0 = 0.0
                        for ch in range(c):
                            acc0 += float(r1[b, y1, x1, ch]) * float(r2[b, y2, x2, ch])
                        tc = (tj + md) * size + (ti + md)
                        out[b, tc, oy, ox] = acc0 / nelems
    return out


def loop_depth_flow_projection(input1: np.ndarray, input2: np.ndarray, fillhole: bool,
                               memc_typo: bool = False) -> np.ndarray:
    """``DepthFlowProjection_gpu_forward_kernel``: the projection kernel, the averaging kernel,
    and (``fillhole``) the hole-filling kernel, each over every pixel.  ``memc_typo``: MEMC-Net's
    ``FlowFillhole_kernelfunc``, whose ``while(down_temp = 0.0f && ...)`` assigns
    ``0.0f && ...`` (false) to ``down_temp`` and so never enters the downward search."""
    n, _, h, w = input1.shape
    output = np.zeros(input1.shape, np.float32)
    count = np.zeros((n, 1, h, w), np.float32)
    for b in range(n):  # DepthFlowProjection_gpu_forward_kernelfunc
        for h_i in range(h):
            for w_i in range(w):
                fx = input1[b, 0, h_i, w_i]
                fy = input1[b, 1, h_i, w_i]
                x2 = np.float32(w_i) + fx
                y2 = np.float32(h_i) + fy
                if x2 >= 0 and y2 >= 0 and x2 <= w - 1 and y2 <= h - 1:
                    ix2_L, iy2_T = int(x2), int(y2)
                    ix2_R, iy2_B = min(ix2_L + 1, w - 1), min(iy2_T + 1, h - 1)
                    temp = input2[b, 0, h_i, w_i]
                    for iy, ix in ((iy2_T, ix2_L), (iy2_T, ix2_R), (iy2_B, ix2_L), (iy2_B, ix2_R)):
                        output[b, 0, iy, ix] += -temp * fx
                        output[b, 1, iy, ix] += -temp * fy
                        count[b, 0, iy, ix] += temp * 1
    for b in range(n):  # DepthFlowProjectionAveraging_kernelfunc
        for h_i in range(h):
            for w_i in range(w):
                temp = count[b, 0, h_i, w_i]
                if temp > 0:
                    output[b, 0, h_i, w_i] /= temp
                    output[b, 1, h_i, w_i] /= temp
    if not fillhole:
        return output
    averaged = output.copy()  # the threads read the averaged flow; holes never read holes
    for b in range(n):  # DepthFlowFillhole_kernelfunc
        for h_i in range(h):
            for w_i in range(w):
                temp = count[b, 0, h_i, w_i]
                if temp > 0:
                    continue
                left_offset, left_temp = w_i, 0.0
                while left_temp == 0 and left_offset - 1 >= 0:
                    left_offset -= 1
                    left_temp = count[b, 0, h_i, left_offset]
                right_offset, right_temp = w_i, 0.0
                while right_temp == 0 and right_offset + 1 <= w - 1:
                    right_offset += 1
                    right_temp = count[b, 0, h_i, right_offset]
                up_offset, up_temp = h_i, 0.0
                while up_temp == 0 and up_offset - 1 >= 0:
                    up_offset -= 1
                    up_temp = count[b, 0, up_offset, w_i]
                down_offset, down_temp = h_i, 0.0
                while not memc_typo and down_temp == 0 and down_offset + 1 <= h - 1:
                    down_offset += 1
                    down_temp = count[b, 0, down_offset, w_i]
                if left_temp + right_temp + up_temp + down_temp <= 0:
                    continue
                left_temp = 1 if left_temp > 0 else 0
                right_temp = 1 if right_temp > 0 else 0
                up_temp = 1 if up_temp > 0 else 0
                down_temp = 1 if down_temp > 0 else 0
                for ch in range(2):
                    output[b, ch, h_i, w_i] = (
                        left_temp * averaged[b, ch, h_i, left_offset]
                        + right_temp * averaged[b, ch, h_i, right_offset]
                        + up_temp * averaged[b, ch, up_offset, w_i]
                        + down_temp * averaged[b, ch, down_offset, w_i]
                    ) / (left_temp + right_temp + up_temp + down_temp)
    return output


def loop_filter_interpolation(input1: np.ndarray, input2: np.ndarray, input3: np.ndarray,
                              filter_size: int) -> np.ndarray:
    """``FilterInterpolationLayer_gpu_forward_kernelfunc``: per pixel and channel the four
    quadrant sums TL, TR, BL, BR of kernel-weighted clamped taps, blended bilinearly; pixels whose
    flow leaves the frame (or moves half of it) are copied."""
    n, channel, h, w = input1.shape
    output = np.zeros(input1.shape, np.float32)
    for b in range(n):
        for h_i in range(h):
            for w_i in range(w):
                fx = input2[b, 0, h_i, w_i]
                fy = input2[b, 1, h_i, w_i]
                x2 = np.float32(w_i) + fx
                y2 = np.float32(h_i) + fy
                if (x2 >= 0 and y2 >= 0 and x2 <= w - 1 and y2 <= h - 1
                        and abs(fx) < w / 2.0 and abs(fy) < h / 2.0):
                    ix2_L = int(x2) + 1 - filter_size // 2
                    iy2_T = int(y2) + 1 - filter_size // 2
                    ix2_R = ix2_L + filter_size
                    iy2_B = iy2_T + filter_size
                    alpha = x2 - int(x2)
                    beta = y2 - int(y2)

                    def quadrant(rows, cols, c_i):
                        total = 0.0
                        for filter_j in rows:
                            _filter_j = min(max(0, filter_j), h - 1)
                            for filter_i in cols:
                                _filter_i = min(max(0, filter_i), w - 1)
                                k = (filter_j - iy2_T) * filter_size + (filter_i - ix2_L)
                                total += input1[b, c_i, _filter_j, _filter_i] * input3[b, k, h_i, w_i]
                        return total

                    top, bottom = range(iy2_T, int(y2) + 1), range(int(y2) + 1, iy2_B)
                    left, right = range(ix2_L, int(x2) + 1), range(int(x2) + 1, ix2_R)
                    for c_i in range(channel):
                        TL = quadrant(top, left, c_i)
                        TR = quadrant(top, right, c_i)
                        BL = quadrant(bottom, left, c_i)
                        BR = quadrant(bottom, right, c_i)
                        output[b, c_i, h_i, w_i] = ((1 - alpha) * (1 - beta) * TL + alpha * (1 - beta) * TR
                                                    + (1 - alpha) * beta * BL + alpha * beta * BR)
                else:
                    output[b, :, h_i, w_i] = input1[b, :, h_i, w_i]
    return output


def loop_pwc_warp(x: np.ndarray, flo: np.ndarray) -> np.ndarray:
    """``PWCDCNet.warp`` as torch 1.0 ran it: ``grid_sample`` bilinear with corner-aligned
    coordinates and zero padding, times a mask that is 0 where the sampled ones fall below
    0.9999 (any tap outside the frame)."""
    n, c, h, w = x.shape
    out = np.zeros(x.shape, np.float32)
    for b in range(n):
        for y in range(h):
            for xx in range(w):
                gx = 2.0 * (xx + flo[b, 0, y, xx]) / max(w - 1, 1) - 1.0
                gy = 2.0 * (y + flo[b, 1, y, xx]) / max(h - 1, 1) - 1.0
                px, py = (gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)
                x0, y0 = math.floor(px), math.floor(py)
                taps = [(y0, x0, (x0 + 1 - px) * (y0 + 1 - py)), (y0, x0 + 1, (px - x0) * (y0 + 1 - py)),
                        (y0 + 1, x0, (x0 + 1 - px) * (py - y0)), (y0 + 1, x0 + 1, (px - x0) * (py - y0))]
                inside = [(ty, tx, tw) for ty, tx, tw in taps if 0 <= ty < h and 0 <= tx < w]
                mask = sum(tw for _, _, tw in inside)
                if mask < 0.9999:
                    continue
                for ch in range(c):
                    out[b, ch, y, xx] = sum(tw * x[b, ch, ty, tx] for ty, tx, tw in inside)
    return out


# --------------------------------------------------------------------------------------------
# per-layer tests


def _rng_inputs(seed: int, shape=(2, 3, 5, 6), flow_scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    image = torch.rand(shape, generator=gen)
    flow = torch.randn((b, 2, h, w), generator=gen) * flow_scale
    return gen, image, flow


@pytest.mark.parametrize("md", [1, 4])
def test_correlation_matches_kernel(md):
    gen, first, _ = _rng_inputs(0)
    second = torch.rand(first.shape, generator=gen)
    ours = dain.correlation(first, second, md).numpy()
    ref = loop_correlation(first.numpy(), second.numpy(), md)
    assert ours.shape == ref.shape == (2, (2 * md + 1) ** 2, 5, 6)
    assert np.abs(ours - ref).max() < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fill", [True, False])
def test_depth_flow_projection_matches_kernel(seed, fill):
    gen, _, flow = _rng_inputs(seed, (2, 2, 5, 6), flow_scale=1.5)
    weight = torch.rand((2, 1, 5, 6), generator=gen) + 0.05  # 1e-6 + 1/exp(log depth) > 0
    ours = dain.depth_flow_projection(flow, weight, fill_holes=fill).numpy()
    ref = loop_depth_flow_projection(flow.numpy(), weight.numpy(), fill)
    assert np.abs(ours - ref).max() < 1e-5
    unfilled = loop_depth_flow_projection(flow.numpy(), weight.numpy(), False)
    assert (unfilled == 0).all(axis=1).any() and (unfilled != 0).any()  # holes and splats
    assert fill == (ref != unfilled).any()  # filling changed some holes


@pytest.mark.parametrize("seed", [3, 4])
def test_memcnet_flow_projection_matches_kernel(seed):
    """MEMC-Net's ``FlowProjection`` adds ``-f`` and ``1`` where the depth-aware one adds ``-w f``
    and ``w`` (so: unit weights), and fills holes without the downward search."""
    _, _, flow = _rng_inputs(seed, (1, 2, 6, 7), flow_scale=2.0)
    ours = dain.depth_flow_projection(flow, torch.ones(1, 1, 6, 7), search_down=False).numpy()
    ones = np.ones((1, 1, 6, 7), np.float32)
    ref = loop_depth_flow_projection(flow.numpy(), ones, True, memc_typo=True)
    assert np.abs(ours - ref).max() < 1e-5
    with_down = loop_depth_flow_projection(flow.numpy(), ones, True)
    assert (ref != with_down).any()  # the typo matters on these inputs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("channels", [3, 7])
def test_filter_interpolation_matches_kernel(seed, channels):
    gen, image, flow = _rng_inputs(seed, (2, channels, 5, 6), flow_scale=1.5)
    filters = torch.rand((2, 16, 5, 6), generator=gen)
    ours = dain.filter_interpolation(image, flow, filters).numpy()
    ref = loop_filter_interpolation(image.numpy(), flow.numpy(), filters.numpy(), 4)
    assert np.abs(ours - ref).max() < 1e-5
    copied = ~np.isclose(ours, image.numpy()).all(axis=1)
    assert copied.any() and not copied.all()  # both branches of the kernel are taken


def test_pwc_warp_matches_torch_1_0_grid_sample():
    _, image, flow = _rng_inputs(4, (2, 3, 5, 6), flow_scale=0.8)
    ours = dain.backward_warp(image, flow).numpy()
    ref = loop_pwc_warp(image.numpy(), flow.numpy())
    assert np.abs(ours - ref).max() < 1e-5
    assert (ref == 0).all(axis=1).any() and (ref != 0).any()


def test_single_path_adds_skips_like_the_official_stack():
    """``forward_singlePath``: a pooling layer's input is added after the matching upsample."""
    layers = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(2),
                                  torch.nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)])
    x = torch.arange(16.0).view(1, 1, 4, 4)
    p1 = torch.nn.functional.max_pool2d(x, 2)
    p2 = torch.nn.functional.max_pool2d(p1, 2)
    up = torch.nn.functional.interpolate
    expected = up(up(p2, scale_factor=2) + p1, scale_factor=2) + x
    assert torch.equal(dain.single_path(layers, x), expected)


# --------------------------------------------------------------------------------------------
# checkpoint compatibility with the official definitions


class _FilterInterpolationModule(torch.nn.Module):
    def forward(self, image, flow, filters):
        return dain.filter_interpolation(image, flow, filters)


class _DepthFlowProjectionModule(torch.nn.Module):
    def __init__(self, requires_grad=True):
        super().__init__()
        self.fill = not requires_grad

    def forward(self, flow, weight):
        return dain.depth_flow_projection(flow, weight, fill_holes=self.fill)


class _MemcFlowProjectionModule(_DepthFlowProjectionModule):
    def forward(self, flow):
        return dain.depth_flow_projection(flow, torch.ones_like(flow[:, :1]), fill_holes=self.fill,
                                          search_down=False)


class _Correlation(torch.nn.Module):
    def __init__(self, pad_size, kernel_size, max_displacement, stride1, stride2, corr_multiply):
        super().__init__()
        assert (pad_size, kernel_size, stride1, stride2) == (max_displacement, 1, 1, 1)
        self.md = max_displacement

    def forward(self, first, second):
        return dain.correlation(first, second, self.md)


@contextlib.contextmanager
def _patched(obj, **attrs):
    saved = {name: getattr(obj, name) for name in attrs if hasattr(obj, name)}
    for name, value in attrs.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name in attrs:
            if name in saved:
                setattr(obj, name, saved[name])
            else:
                delattr(obj, name)


@contextlib.contextmanager
def official_source(repo: Path, torch_version: str):
    """The official code of ``repo`` (a git clone) importable from a temporary checkout and
    runnable on the CPU as under ``torch_version`` ("1.0" for DAIN, "0.2" for MEMC-Net).

    The CUDA extensions are replaced by this package's torch layers (each tested against its
    kernel above); PIL (only unused utilities import it) is stubbed; ``Tensor.cuda`` is the
    identity, the CUDA stream calls are no-ops and ``torch.cuda.FloatTensor`` is the CPU one;
    ``np.int`` and ``nn.init.kaiming_uniform`` are restored; ``grid_sample`` aligns corners as
    before torch 1.3, and (torch 0.2) so does bilinear ``nn.Upsample``; there are no command-line
    arguments and the working directory is the checkout (MegaDepth's option parser writes
    ``opt.txt`` there).  Everything is put back afterwards."""
    tar = subprocess.run(["git", "-C", str(repo), "archive", "HEAD"], capture_output=True,
                         check=True).stdout
    saved_modules = dict(sys.modules)
    saved_path, saved_argv, saved_cwd = list(sys.path), sys.argv, os.getcwd()
    grid_sample = torch.nn.functional.grid_sample
    upsample_init = torch.nn.Upsample.__init__

    def old_grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True):
        return grid_sample(x, grid, mode, padding_mode, align_corners)

    def corner_aligned_upsample(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        if mode == "bilinear" and align_corners is None:
            align_corners = True
        upsample_init(self, size, scale_factor, mode, align_corners)

    def stub(name, **attrs):
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return module

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp)
        for name in ("PIL", "PIL.Image", "my_package", "my_package.modules"):
            stub(name, Image=None)
        layers = {"FilterInterpolation": _FilterInterpolationModule,
                  "DepthFlowProjection": _DepthFlowProjectionModule,
                  "FlowProjection": _MemcFlowProjectionModule}
        for layer, module in layers.items():
            stub(f"my_package.{layer}", **{f"{layer}Module": module})  # DAIN
            stub(f"my_package.modules.{layer}Module", **{f"{layer}Module": module})  # MEMC-Net
        stub("PWCNet.correlation_package_pytorch1_0.correlation", Correlation=_Correlation)
        stack.enter_context(_patched(torch.Tensor, cuda=lambda self, *args, **kwargs: self))
        stack.enter_context(_patched(torch.cuda, current_device=lambda: 0, current_stream=lambda: None,
                                     stream=lambda s: contextlib.nullcontext(),
                                     synchronize=lambda: None, FloatTensor=torch.FloatTensor))
        stack.enter_context(_patched(np, int=int))
        stack.enter_context(_patched(torch.nn.init, kaiming_uniform=torch.nn.init.kaiming_uniform_))
        stack.enter_context(_patched(torch.nn.functional, grid_sample=old_grid_sample))
        if torch_version == "0.2":
            stack.enter_context(_patched(torch.nn.Upsample, __init__=corner_aligned_upsample))
        try:
            sys.path.insert(0, str(tmp))
            sys.argv = ["official"]
            os.chdir(tmp)
            yield tmp
        finally:
            os.chdir(saved_cwd)
            sys.argv, sys.path[:] = saved_argv, saved_path
            for name in set(sys.modules) - set(saved_modules):
                del sys.modules[name]


def official_model(model: str, tmp: Path, timestep: float = 0.5) -> torch.nn.Module:
    """``DAIN_slowmotion(timestep, training=False)`` (``dain``) or ``MEMC_Net(training=False)``
    (``memc-net``; its ``networks`` package is entered without its ``__init__``, which imports
    every variant's dependencies), inside :func:`official_source`."""
    if model == "dain":
        import networks

        return networks.DAIN_slowmotion(channel=3, filter_size=4, timestep=timestep, training=False)
    package = types.ModuleType("networks")
    package.__path__ = [str(tmp / "networks")]
    sys.modules["networks"] = package
    from networks.MEMC_Net import MEMC_Net

    return MEMC_Net(channel=3, filter_size=4, training=False)


def official_state_shapes(model: str, repo: Path) -> dict[str, list[int]]:
    """Key names and shapes of the official model's ``state_dict``."""
    with official_source(repo, TORCH_OF[model]) as tmp:
        net = official_model(model, tmp)
        return {k: list(v.shape) for k, v in net.state_dict().items()}


OURS = {"dain": dain.DAINNet, "memc-net": memcnet.MEMCNet}
TORCH_OF = {"dain": "1.0", "memc-net": "0.2"}
REPO_ENV = {"dain": "SLOMO_DAIN_REPO", "memc-net": "SLOMO_MEMCNET_REPO"}


@pytest.mark.parametrize("model, n_keys", [("dain", 954), ("memc-net", 261)])
def test_keys_and_shapes_equal_the_official_model(model, n_keys):
    official = json.loads(KEYS.read_text())[model]
    ours = {k: list(v.shape) for k, v in OURS[model]().state_dict().items()}
    assert list(ours) == list(official)  # same names, same order
    assert ours == official
    assert len(ours) == n_keys


@pytest.mark.parametrize("model", ["dain", "memc-net"])
def test_key_list_is_the_official_code_s(model):
    repo = os.environ.get(REPO_ENV[model])
    if not repo:
        pytest.skip(f"{REPO_ENV[model]} (a clone of the official repository) not set")
    official = official_state_shapes(model, Path(repo))
    assert official == json.loads(KEYS.read_text())[model]


# --------------------------------------------------------------------------------------------
# the model through slomo


def seeded_state(model: str = "dain", seed: int = 0, gain: float = 0.5) -> dict[str, torch.Tensor]:
    """Deterministic weights in the official on-disk layout (a plain ``state_dict``): conv
    weights with std ``gain / sqrt(fan_in)``, biases std 0.01, batch-norm variances in
    ``[0.5, 1.5]``, each tensor from a generator seeded by ``seed`` and its index."""
    tensors = {}
    for i, (key, value) in enumerate(OURS[model]().state_dict().items()):
        gen = torch.Generator().manual_seed(seed * 100_000 + i)
        if key.endswith("num_batches_tracked"):
            tensors[key] = torch.zeros_like(value)
        elif key.endswith("running_var"):
            tensors[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith("weight") and value.dim() > 1:
            fan_in = value[0].numel()
            tensors[key] = torch.randn(value.shape, generator=gen) * (gain / fan_in ** 0.5)
        else:
            tensors[key] = torch.randn(value.shape, generator=gen) * 0.01
    return tensors


def torch02_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as MEMC-Net's torch 0.2 training saved it: no batch-norm counters, and the
    ``module.`` prefix of a DataParallel model."""
    return {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOMO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights, "CHECKOUT_WEIGHTS", tmp_path / "none")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dain") / "best.pth"
    torch.save(seeded_state("dain"), path)
    return path


@pytest.fixture(scope="module")
def memc_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("memc") / "MEMC-Net_best.pth"
    torch.save(torch02_layout(seeded_state("memc-net")), path)
    return path


@pytest.mark.parametrize("model, file, timesteps", [("dain", "best.pth", "any"),
                                                     ("memc-net", "MEMC-Net_best.pth", "midpoint")])
def test_spec(model, file, timesteps):
    spec = get_spec(model)
    assert spec.window == 2 and spec.timesteps == timesteps and spec.weights == (model,)
    e = weights.entries()[model]
    assert (e.model, e.file, e.sha256) == (model, file, None)
    assert e.manual_links


@pytest.mark.parametrize("model, link", [("dain", "vllab1.ucmerced.edu/~wenbobao/DAIN/best.pth"),
                                         ("memc-net", "wenbobao/MEMC-Net/MEMC-Net_best.pth")])
def test_missing_weights_name_the_link_and_the_import_command(home, model, link):
    with pytest.raises(weights.WeightsError) as info:
        create(model, ModelOptions())
    message = str(info.value)
    assert link in message
    assert f"slomo weights import {model} FILE" in message


def test_import_installs_a_fitting_checkpoint_and_refuses_others(home, checkpoint, tmp_path):
    installed = weights.import_file("dain", checkpoint, interpolator.verify_checkpoint)
    assert installed == home / "dain" / "best.pth" and weights.locate("dain") == installed
    state = seeded_state()
    state["depthNet.0.weight_renamed"] = state.pop("depthNet.0.weight")
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(weights.WeightsError, match="missing: depthNet.0.weight"):
        weights.import_file("dain", bad, interpolator.verify_checkpoint)


def test_memcnet_import_takes_the_torch_0_2_layout(home, memc_checkpoint, tmp_path):
    installed = weights.import_file("memc-net", memc_checkpoint, interpolator.verify_checkpoint)
    assert installed == home / "memc-net" / "MEMC-Net_best.pth"
    state = torch02_layout(seeded_state("memc-net"))
    del state["module.rectifyNet.14.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(weights.WeightsError, match="missing: rectifyNet.14.bias"):
        weights.import_file("memc-net", bad, interpolator.verify_checkpoint)


@pytest.mark.slow
def test_seeded_checkpoint_runs_deterministically(checkpoint):
    """A strict load of the official-format file, then two calls on the same frames (any t)."""
    model = create("dain", ModelOptions(weights=checkpoint))
    rng = np.random.default_rng(0)
    frames = [rng.random((20, 28, 3), dtype=np.float32) for _ in range(2)]
    first = model.interpolate(frames, [0.3, 0.5])
    again = model.interpolate([f.copy() for f in frames], [0.5])
    assert [f.shape for f in first] == [(20, 28, 3)] * 2
    assert all(np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1 for f in first)
    np.testing.assert_array_equal(first[1], again[0])
    assert np.abs(first[0] - first[1]).max() > 0  # t enters the result


@pytest.mark.slow
def test_memcnet_seeded_checkpoint_runs_deterministically(memc_checkpoint):
    model = create("memc-net", ModelOptions(weights=memc_checkpoint))
    rng = np.random.default_rng(1)
    frames = [rng.random((20, 28, 3), dtype=np.float32) for _ in range(2)]
    first = model.interpolate(frames, [0.5])[0]
    again = model.interpolate([f.copy() for f in frames], [0.5])[0]
    assert first.shape == (20, 28, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - frames[0]).max() > 0.01 and np.abs(first - frames[1]).max() > 0.01
    with pytest.raises(ValueError, match="t = 0.5 only"):
        model.interpolate(frames, [0.25])


@pytest.mark.slow
@pytest.mark.parametrize("model, timestep", [("dain", 0.25), ("memc-net", 0.5)])
def test_official_forward_with_our_layers_equals_ours(model, timestep):
    """The official Python forward, its CUDA layers replaced by ours, gives our outputs: the
    network around the layers (wiring, flow scaling and upsampling, skips, blending, rectifying)
    is the official one.  Seeded weights, two 128x128 textures, ``DAIN_slowmotion`` at t = 0.25,
    0.5 and 0.75; MEMC-Net at t = 0.5."""
    repo = os.environ.get(REPO_ENV[model])
    if not repo:
        pytest.skip(f"{REPO_ENV[model]} (a clone of the official repository) not set")
    from conftest import texture

    frames = [torch.from_numpy(texture(128, 160, seed).astype(np.float32) / 255)[:128, 16:144]
              for seed in (0, 1)]
    i0, i1 = (f.permute(2, 0, 1).unsqueeze(0).contiguous() for f in frames)
    state = seeded_state(model)
    ours = OURS[model]()
    ours.load_state_dict(state)
    times = [timestep * k for k in range(1, round(1 / timestep))]
    with torch.no_grad():
        mine = ours.eval()(i0, i1, times) if model == "dain" else [ours.eval()(i0, i1)]
        with official_source(Path(repo), TORCH_OF[model]) as tmp:
            net = official_model(model, tmp, timestep)
            net.load_state_dict(state)
            outputs = net.eval()(torch.stack((i0, i1), 0))[0][1]
    outputs = outputs if isinstance(outputs, list) else [outputs]
    assert len(outputs) == len(mine) == len(times)
    for theirs, ours_t in zip(outputs, mine):
        assert theirs.std() > 0.01  # not a degenerate output
        assert (theirs - ours_t).abs().max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dain", "memc-net"])
def test_cli_end_to_end_with_audio(model, checkpoint, memc_checkpoint, tmp_path):
    """``slomo clip.mp4 -m dain --weights best.pth`` (and ``-m memc-net``): 2x, audio kept."""
    from click.testing import CliRunner
    from conftest import audio_track, moving_frames, read_video, write_clip

    from slomo.cli import main

    src = write_clip(tmp_path / "clip.mp4", moving_frames(3, size=(32, 24)))
    out = tmp_path / "out.mp4"
    weights_file = checkpoint if model == "dain" else memc_checkpoint
    args = [str(src), "-o", str(out), "-m", model, "--weights", str(weights_file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    frames, times, info = read_video(out)
    assert len(frames) == 6 and info["rate"] == 50
    assert frames[0].shape == (24, 32, 3)
    assert len(audio_track(out)[0]) == len(audio_track(src)[0])


if __name__ == "__main__":  # regenerate the key lists: python tests/test_dain.py DAIN_REPO MEMC_REPO
    KEYS.write_text(json.dumps({"dain": official_state_shapes("dain", Path(sys.argv[1])),
                                "memc-net": official_state_shapes("memc-net", Path(sys.argv[2]))}) + "\n")
