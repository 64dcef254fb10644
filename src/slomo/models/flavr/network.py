"""The FLAVR network and its interpolator (imports torch; :mod:`slomo.models.flavr` declares them).

FLAVR (Kalluri et al., "FLAVR: Flow-Agnostic Video Representations for Fast Frame
Interpolation", CVPR 2021), re-implemented to load the authors' released checkpoints unchanged.

The published files ``FLAVR_2x.pth``, ``FLAVR_4x.pth`` and ``FLAVR_8x.pth`` hold
``{"state_dict": {"module.<key>": tensor}}`` for the configuration the authors' ``interpolate.py``
builds: a 3D-ResNet-18 U-Net encoder without batch norm, 4 input frames, skip connections joined by
concatenation, transposed-convolution upsampling and ``factor - 1`` output frames.  The module
names below mirror that layout so the keys load one to one (strict), and the arithmetic follows it:

- inputs are RGB in [0, 1]; the per-channel mean over all 4 frames (and all pixels) is subtracted
  before the network and added back to every output frame;
- the encoder's 3D convolutions have biases only in the 4x and 8x checkpoints (the authors'
  code switches ``useBias`` on when more than one frame is produced);
- every residual block and decoder stage is followed by squeeze-excitation "feature gating":
  a sigmoid of a 1x1x1 convolution of the global (T, H, W) average, multiplied per channel;
- the decoder's 4 time slices are stacked along channels, fused by a 1x1 convolution, and a
  reflection-padded 7x7 convolution gives ``3 * (factor - 1)`` channels, one RGB frame per
  timestep j / factor;
- outputs are clamped to [0, 1] (the authors clamp when they quantise to 8 bits).

Differences, each only where the authors' script could not run as is:

- the network needs sides that are multiples of 8; the authors resize the video to the nearest
  lower multiple of 8 (and, in their Middlebury script, back).  We instead pad the bottom and right
  edges by replicating border pixels and crop the result, which leaves sizes that are already
  multiples of 8 bit-identical and avoids resampling everything else;
- frames with a side over ``TILE`` pixels are processed in overlapping tiles (see
  :class:`Flavr`), blended with linear feathering: activations take about 4 GiB per megapixel of
  tile on the CPU, so 1080p runs as two 1080x1088 tiles in about 5 GiB instead of about 9, and 4K
  in the same 5 GiB.  The mean is taken over the whole frame, as without tiling; only the feature
  gates' global averages become per-tile averages (a small fraction of an 8-bit step in tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ... import tensors
from ... import weights as _weights
from ...frames import Frame
from ...interpolator import Interpolator, ModelOptions

N_INPUTS = 4
ALIGN = 8  # the encoder downsamples three times by 2

#: frames whose sides both fit in TILE pixels run in one piece; larger ones are tiled
TILE = 1088
#: overlap between neighbouring tiles, blended with linear ramps
OVERLAP = 96


# --------------------------------------------------------------------------------------------
# network (module and parameter names follow the authors' checkpoints)
# --------------------------------------------------------------------------------------------

class _Gate(nn.Module):
    """Squeeze-excitation feature gating: x * sigmoid(conv1x1(mean over T, H, W)).  In place."""

    def __init__(self, channels: int):
        super().__init__()
        self.attn_layer = nn.Sequential(nn.Conv3d(channels, channels, kernel_size=1, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3, 4), keepdim=True)
        return x.mul_(torch.sigmoid(self.attn_layer[0](pooled)))


class _ResBlock(nn.Module):
    """3D basic residual block with gating; index 0 of each Sequential is the convolution."""

    def __init__(self, cin: int, cout: int, stride, bias: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=bias))
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, stride=1, padding=1, bias=bias))
        self.fg = _Gate(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1[0](x))
        out = self.fg(self.conv2[0](out))
        out += x if self.downsample is None else self.downsample[0](x)
        return F.relu_(out)


class _Encoder(nn.Module):
    """R3D-18 without batch norm; spatial strides 2 (stem), 1, 2, 2, 1; temporal stride 1."""

    def __init__(self, bias: bool):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=bias))
        down = (1, 2, 2)
        self.layer1 = nn.Sequential(_ResBlock(64, 64, 1, bias), _ResBlock(64, 64, 1, bias))
        self.layer2 = nn.Sequential(_ResBlock(64, 128, down, bias), _ResBlock(128, 128, 1, bias))
        self.layer3 = nn.Sequential(_ResBlock(128, 256, down, bias), _ResBlock(256, 256, 1, bias))
        self.layer4 = nn.Sequential(_ResBlock(256, 512, 1, bias), _ResBlock(512, 512, 1, bias))


class _Conv3dGated(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=True), _Gate(cout))

    def forward(self, x):
        return self.conv[1](self.conv[0](x))


class _UpConv3dGated(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.upconv = nn.Sequential(
            nn.ConvTranspose3d(cin, cout, (3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)),
            _Gate(cout))

    def forward(self, x):
        return self.upconv[1](self.upconv[0](x))


class FlavrNet(nn.Module):
    """The UNet_3D_3D of the FLAVR paper (unet_18, 4 inputs, concat joins, transposed upsampling).

    ``forward(clip, mean)`` takes ``clip`` (B, 3, 4, H, W) in [0, 1] with H, W multiples of 8 and
    ``mean`` (B, 3, 1, 1, 1), the value subtracted on input and added to the outputs; it returns
    (B, n_outputs, 3, H, W), unclamped.
    """

    def __init__(self, n_outputs: int):
        super().__init__()
        self.n_outputs = n_outputs
        self.encoder = _Encoder(bias=n_outputs > 1)
        self.decoder = nn.Sequential(
            _Conv3dGated(512, 256),
            _UpConv3dGated(512, 128),
            _UpConv3dGated(256, 64),
            _Conv3dGated(128, 64),
            _UpConv3dGated(128, 64),
        )
        self.feature_fuse = nn.Module()
        self.feature_fuse.conv = nn.Sequential(nn.Conv2d(64 * N_INPUTS, 64, 1, bias=False))
        self.outconv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, 3 * n_outputs, 7))

    @staticmethod
    def _lrelu(x):
        return F.leaky_relu_(x, 0.2)

    def forward(self, clip: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        enc, dec = self.encoder, self.decoder
        x = clip - mean
        x0 = F.relu_(enc.stem[0](x))
        del x
        x1 = enc.layer1(x0)
        x2 = enc.layer2(x1)
        x3 = enc.layer3(x2)
        x4 = enc.layer4(x3)
        d = torch.cat([self._lrelu(dec[0](x4)), x3], 1)
        del x3, x4
        d = torch.cat([self._lrelu(dec[1](d)), x2], 1)
        del x2
        d = torch.cat([self._lrelu(dec[2](d)), x1], 1)
        del x1
        d = torch.cat([self._lrelu(dec[3](d)), x0], 1)
        del x0
        d = self._lrelu(dec[4](d))  # (B, 64, T, H, W)
        # the authors stack the 4 time slices along channels and fuse them with a 1x1 conv; the
        # same sum as a (T, 1, 1) 3D conv over (B, 64, T, H, W) avoids copying the stack
        b, c, t, h, w = d.shape
        weight = self.feature_fuse.get_parameter("conv.0.weight")  # (64, T * 64, 1, 1): index t * 64 + c
        fuse = weight.view(weight.shape[0], t, c).permute(0, 2, 1)[..., None, None]
        d = self._lrelu(F.conv3d(d, fuse.contiguous())[:, :, 0])
        out = self.outconv(d)
        del d
        out = out.view(b, self.n_outputs, 3, h, w)
        return out + mean.view(b, 1, 3, 1, 1).to(out.dtype)


# --------------------------------------------------------------------------------------------
# tiling
# --------------------------------------------------------------------------------------------

def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Cover [0, length) with windows of about ``tile`` px overlapping by at least ``overlap``.

    Starts are multiples of 8, so every tile samples the same stride-2 grid as the whole frame.
    """
    if length <= tile:
        return [(0, length)]
    step = tile - overlap - ALIGN  # leave room for rounding the starts down to the grid
    if step <= 0:
        raise ValueError(f"tile ({tile}) must exceed overlap + {ALIGN} ({overlap + ALIGN})")
    n = 1 + math.ceil((length - tile) / step)
    spans: list[tuple[int, int]] = []
    for i in range(n):
        start = (i * (length - tile) // (n - 1)) // ALIGN * ALIGN
        end = length if i == n - 1 else start + tile
        if spans and spans[-1][0] == start:  # rounding met the previous start: widen that one
            spans.pop()
        spans.append((start, end))
    return spans


def _ramp(start: int, end: int, lo_edge: int | None, hi_edge: int | None) -> np.ndarray:
    """Blend weights along one axis of a tile: 1 inside, linear ramps across the overlaps.

    ``lo_edge`` is where the previous tile ends (None at the frame border), ``hi_edge`` where the
    next one starts.  The outermost quarter of each overlap is left to the neighbour (a tile's
    border pixels lack context and are the least accurate); the ramps cross over the middle half,
    where the two neighbours' weights are complementary.
    """
    pos = np.arange(start, end, dtype=np.float64) + 0.5
    weight = np.ones(end - start)
    if lo_edge is not None:
        margin = (lo_edge - start) // 4
        weight = np.minimum(weight, (pos - start - margin) / (lo_edge - start - 2 * margin))
    if hi_edge is not None:
        margin = (end - hi_edge) // 4
        weight = np.minimum(weight, (end - margin - pos) / (end - hi_edge - 2 * margin))
    return np.clip(weight, 1e-6, 1.0)


def _axis_weights(spans: list[tuple[int, int]]) -> list[np.ndarray]:
    out = []
    for i, (s, e) in enumerate(spans):
        lo = spans[i - 1][1] if i > 0 else None
        hi = spans[i + 1][0] if i + 1 < len(spans) else None
        out.append(_ramp(s, e, lo, hi))
    return out


# --------------------------------------------------------------------------------------------
# interpolator
# --------------------------------------------------------------------------------------------

def _checkpoint_outputs(state: dict) -> int | None:
    """How many frames a checkpoint's output convolution produces, if it has one."""
    for key, value in state.items():
        if key.endswith("outconv.1.weight") and hasattr(value, "shape"):
            return int(value.shape[0]) // 3
    return None


def load_network(path: Path, factor: int) -> FlavrNet:
    """Build the network for ``factor`` and load an authors'-format checkpoint into it."""
    raw = _weights.load_checkpoint(path)
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state:
        raise _weights.WeightsError(f"{path}: not a FLAVR checkpoint (no state_dict)")
    produced = _checkpoint_outputs(state)
    if produced is not None and produced != factor - 1:
        raise _weights.WeightsError(
            f"{path}: this is a FLAVR {produced + 1}x checkpoint, but factor {factor} needs the "
            f"{factor}x one (flavr-{factor}x)")
    net = FlavrNet(n_outputs=factor - 1)
    _weights.load_into(net, state, strip="module.")
    return net.eval()


class Flavr(Interpolator):
    """FLAVR: 4 frames in, all ``factor - 1`` frames between the middle two out, in one pass.

    Frames larger than ``tile`` pixels on a side are split into tiles overlapping by ``overlap``
    pixels, each run separately and blended with linear ramps.
    """

    def __init__(self, net: FlavrNet, factor: int, device: str = "cpu", precision: str = "fp32",
                 tile: int = TILE, overlap: int = OVERLAP):
        self.factor = factor
        self.device = torch.device(device)
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16,
                      "fp16": torch.float16}[precision]
        if self.dtype == torch.float16 and self.device.type != "cuda":
            raise ValueError("fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
        self.net = net.to(self.device, self.dtype)
        self.tile = tile
        self.overlap = overlap
        self._cached_window: list[np.ndarray] | None = None
        self._cached_frames: list[Frame] | None = None

    # -- one tile -----------------------------------------------------------------------------
    def _run(self, clip: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """clip (3, 4, h, w) -> (n, 3, h, w) float32, on the device, padded to the grid and cropped."""
        _, _, h, w = clip.shape
        x = clip.unsqueeze(0).contiguous()
        ph, pw = -h % ALIGN, -w % ALIGN
        if ph or pw:
            x = F.pad(x.flatten(1, 2), (0, pw, 0, ph), mode="replicate").view(1, 3, N_INPUTS,
                                                                             h + ph, w + pw)
        out = self.net(x.to(self.dtype), mean.to(self.dtype))
        return out[0, :, :, :h, :w].float()

    @torch.inference_mode()
    def _predict(self, window: Sequence[Frame]) -> list[Frame]:
        """All factor - 1 frames of a window, clamped to [0, 1]."""
        clip = tensors.frames_to_tensor(window, self.device).transpose(0, 1).contiguous()  # (3, T, H, W)
        _, _, h, w = clip.shape
        # the authors subtract the per-channel mean over all frames and pixels of the window
        mean = clip.mean(dim=(1, 2, 3)).view(1, 3, 1, 1, 1)
        ys, xs = _spans(h, self.tile, self.overlap), _spans(w, self.tile, self.overlap)
        if len(ys) == 1 and len(xs) == 1:
            return tensors.tensor_to_frames(self._run(clip, mean))
        out = torch.zeros((self.factor - 1, 3, h, w), device=self.device)
        total = torch.zeros((h, w), device=self.device)
        for (y0, y1), wy in zip(ys, _axis_weights(ys), strict=True):
            for (x0, x1), wx in zip(xs, _axis_weights(xs), strict=True):
                piece = self._run(clip[:, :, y0:y1, x0:x1], mean)
                weight = torch.from_numpy(np.outer(wy, wx).astype(np.float32)).to(self.device)
                out[:, :, y0:y1, x0:x1] += piece * weight
                total[y0:y1, x0:x1] += weight
        return tensors.tensor_to_frames(out / total)

    # -- the interface ---------------------------------------------------------------------------
    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        if len(window) != N_INPUTS:
            raise ValueError(f"FLAVR needs a window of {N_INPUTS} frames, got {len(window)}")
        steps = []
        for t in times:
            j = round(t * self.factor)
            if abs(t * self.factor - j) > 1e-4 or not 0 <= j < self.factor:
                raise ValueError(f"FLAVR {self.factor}x only produces t = j/{self.factor}, not {t}")
            steps.append(j)
        middle = np.asarray(window[1], dtype=np.float32)
        if not any(steps):
            return [middle.copy() for _ in steps]
        made = self._predicted(window)
        return [middle.copy() if j == 0 else made[j - 1].copy() for j in steps]

    def _predicted(self, window: Sequence[Frame]) -> list[Frame]:
        """The in-between frames of ``window``, kept while the same window is asked again."""
        same = self._cached_window is not None and all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(self._cached_window, window, strict=True))
        if same and self._cached_frames is not None:
            return self._cached_frames
        self._cached_frames = None  # free the old frames before computing the new ones
        made = self._predict(window)
        self._cached_frames = made
        self._cached_window = [np.array(f, dtype=np.float32, copy=True) for f in window]
        return made

    def reset(self) -> None:
        self._cached_window = None
        self._cached_frames = None


def create(options: ModelOptions) -> Flavr:
    """The model for a resolved run: its factor's checkpoint loaded (strict) onto its device."""
    factor = options.run_factor
    # the spec admits only the factors it has checkpoints for, and create() located the file
    assert factor is not None and options.checkpoint is not None
    net = load_network(options.checkpoint, factor)
    return Flavr(net, factor, device=options.device, precision=options.precision)
