"""RIFE: Real-Time Intermediate Flow Estimation (Huang et al., ECCV 2022), as three interpolators.

- ``rife``: the Practical-RIFE v4.25 IFNet (five flow blocks over a 16/8/4/2/1 pyramid, a
  4-channel feature head computed once per input frame, the timestep an input channel), so any
  ``t`` in (0, 1) costs one forward pass, and all the timesteps of one pair run as one batch.
  The authors recommend this generation by default.
- ``rife-4.0``: the Practical-RIFE v4.0 IFNet (four flow blocks, the same any-``t`` batching).
- ``rife-hd``: the ECCV2022-RIFE "HDv3" IFNet (three flow blocks, each run in both directions),
  which only predicts ``t = 0.5``; other timesteps come from :func:`bisect_times`, evaluated one
  bisection depth at a time as one batch.

The networks are written here from the papers' published architecture so that they reproduce the
official inference numerics (checked against the authors' code by ``tests/test_rife.py``) and
load the authors' checkpoints unchanged.  Parts of the checkpoints that inference does not use
(the distillation teachers ``block_tea``/``teacher``, v4.0's unused ``contextnet``/``unet``
refiners, v4.25's time-regression head ``caltime``) are dropped by name, and every other key must fit exactly.

Speed, compared with the official forward: inference mode, channels-last convolutions, cached
sampling grids, one ``grid_sample`` for both warps (it only parallelises over the batch), only
the pixels a following downscale reads are warped, v4.25's images and features warped together
and its mask and features handed on at block resolution (:func:`_carried`), each frame's v4.25
features computed once, both directions of ``rife-hd`` in one batch,
no resampling at factor 1, padding cropped before the last warp, and optional bfloat16 weights
(``precision="bf16"``: convolutions in bfloat16 through oneDNN; flows, warps and blending stay
float32, so sampling positions keep full precision).  torch.compile was tried and left out: on
CPU it took a minute to compile and ran the warps slower.

On a GPU: ``interpolate_batch`` and ``interpolate_tensors`` run several pairs per forward (one
pair's timesteps are too few to fill a GPU), the latter on frames already on the device
(:func:`slomo.tensors.to_rgb` converts decoded planes there); on CUDA the pipeline's decoded
pictures take that path (``interpolate_pictures_batch``, several consecutive pairs a call:
``pairs_per_call``): integer planes up, integer planes down, no conversion on the host.
``precision="fp16"`` (CUDA only) takes the bf16 path: half weights and activations in
channels-last convolutions (cuDNN's fast layout for fp16), flows, warps and blending in float32,
frames padded as officially (64 for v4.25, 128 for v4.0, 32 for HDv3).  No GPU was available to
run any of it: the CUDA tests in ``tests/test_rife.py`` (fp16 within 0.1 dB of fp32, batched equal
to one pair at a time, the pictures' device path equal to the host path within one level, the
pipeline's batches equal to one pair at a time) have not run yet; the device path itself is
tested on the CPU device.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import TypeVar

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ... import colour, tensors, weights
from ...frames import Frame, Picture
from ...interpolator import Interpolator, ModelOptions, bisect_times

log = logging.getLogger("slomo")

#: checkpoint parts inference does not use, dropped by name
V4_IGNORED = ("block_tea.", "contextnet.", "unet.")
V425_IGNORED = ("teacher.", "caltime.")
HD_IGNORED = ("block_tea.",)
#: large-motion rule of v4.0: when block 1's flow update exceeds this (pixels, both directions),
#: the whole pyramid is recomputed at half the resolution
LARGE_MOTION = 32.0
#: at most this many timesteps per batched forward (bounds memory at high resolutions)
MAX_BATCH = 8


# --------------------------------------------------------------------------------------------
# building blocks


def _conv(cin: int, cout: int, stride: int = 1, act: nn.Module | None = None) -> nn.Sequential:
    """3x3 convolution + activation (keys ``0.weight``, ``0.bias``, and ``1.weight`` for the
    default per-channel PReLU of v4.0/HDv3; v4.25 uses a parameter-free LeakyReLU)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act or nn.PReLU(cout))


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resampling by ``factor`` exactly as the official code calls it (no-op at 1)."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                         recompute_scale_factor=False)


def _pick(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rows and columns ``k*i + k/2 - 1`` and ``k*i + k/2`` of x (..., H, W): the only pixels a
    bilinear ``1/k`` resize (``align_corners=False``, even k) reads, each with weight 1/2."""
    *lead, h, w = x.shape
    a = k // 2 - 1
    x = x.reshape(*lead, h // k, k, w // k, k)[..., a:a + 2, :, a:a + 2]
    return x.reshape(*lead, 2 * (h // k), 2 * (w // k))


class _Warper:
    """Backward warping with ``grid_sample`` (border padding, as officially).

    The identity grids are cached per size and device.  Images and flows are warped in one call
    (``grid_sample`` only parallelises over the batch).  When the warped image is only used
    downscaled by an even ``k >= 4``, only the pixels that resize reads are warped, then
    resized by 1/2 with the very same weights: bitwise the same result for far less work.
    """

    def __init__(self) -> None:
        self._grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _grid(self, flows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, h, w = flows.shape
        key = (flows.device, h, w, k)
        if key not in self._grids:
            if k == 1:
                xs = torch.linspace(-1.0, 1.0, w, device=flows.device).view(1, w).expand(h, w)
                ys = torch.linspace(-1.0, 1.0, h, device=flows.device).view(h, 1).expand(h, w)
                grid = torch.stack((xs, ys), -1).unsqueeze(0)  # (1, H, W, 2), x then y
                half = torch.tensor([(w - 1.0) / 2.0, (h - 1.0) / 2.0], device=flows.device)
            else:
                grid, half = self._grid(flows, 1)
                grid = _pick(grid.permute(0, 3, 1, 2), k).permute(0, 2, 3, 1).contiguous()
            self._grids[key] = (grid, half)
        return self._grids[key]

    def __call__(self, images: torch.Tensor, flows: torch.Tensor, k: float = 1,
                 size: tuple[int, int] | None = None) -> torch.Tensor:
        """``images`` (N, C, H, W) sampled at pixel + ``flows`` (N, 2, H, W) (in pixels), then
        resized by ``1 / k``; or, with ``size``, only its top-left ``size`` crop."""
        flows = flows.float()
        fast = k >= 4 and k == int(k) and int(k) % 2 == 0 and size is None
        fast = fast and flows.shape[2] % int(k) == 0 and flows.shape[3] % int(k) == 0
        grid, half = self._grid(flows, int(k) if fast else 1)
        if fast:
            flows = _pick(flows, int(k))
        elif size is not None:
            grid = grid[:, :size[0], :size[1]]
            flows = flows[:, :, :size[0], :size[1]]
        g = torch.addcdiv(grid, flows.permute(0, 2, 3, 1), half)  # grid + flow / half, one pass
        out = F.grid_sample(images, g, mode="bilinear", padding_mode="border", align_corners=True)
        return _resize(out, 0.5) if fast else _resize(out, 1.0 / k)


def _warped(warp: _Warper, sources: torch.Tensor, flow: torch.Tensor, k: float,
            size: tuple[int, int] | None = None) -> torch.Tensor:
    """Both frames of each sample warped by its 4-channel flow, as (N, 2C, ...): warped 0 then
    warped 1 (``sources`` (2N, C, H, W) holds 0, 1, 0, 1... so both warps are one call)."""
    n, _, h, w = flow.shape
    out = warp(sources, flow.reshape(2 * n, 2, h, w), k, size)
    return out.reshape(n, -1, out.shape[2], out.shape[3])


def _interleaved(x0: torch.Tensor, x1: torch.Tensor, n: int) -> torch.Tensor:
    """The two frames of each of ``n`` samples as (2n, C, H, W): 0, 1, 0, 1...  ``x0`` and ``x1``
    hold one frame shared by every sample, or one per sample (several pairs in one batch)."""
    return torch.stack((x0, x1), 1).expand(n, -1, -1, -1, -1).reshape(2 * n, *x0.shape[1:])


def _rows(x: torch.Tensor, picked: Sequence[int]) -> torch.Tensor:
    """The rows ``picked`` of a per-sample input; a shared (one-row) input as it is."""
    return x if x.shape[0] == 1 else x[list(picked)]


def _blend(warped: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The official merge ``w0 * m + w1 * (1 - m)``, ``m = sigmoid(mask)``, as one lerp."""
    m = torch.sigmoid(mask[:, :, :size[0], :size[1]])
    return torch.lerp(warped[:, 3:], warped[:, :3], m)


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """Exchange the two flows of a 4-channel (to-0, to-1) flow tensor."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


class _Block(nn.Module):
    """Shared plumbing: precision of the convolutions and the channels-last layout.

    ``forward(x, flow, scale)`` takes ``x`` already resampled to ``1 / scale`` of the full
    resolution (callers share that work between timesteps) and ``flow`` at full resolution.
    ``x`` may be the input's parts, concatenated here in the same copy that changes layout.
    """

    dtype = torch.float32

    def set_precision(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        # Module.to takes memory_format at runtime; torch's stubs for its overloads omit it
        self.to(dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _head(self, x: torch.Tensor | Sequence[torch.Tensor], flow: torch.Tensor | None,
              scale: float) -> torch.Tensor:
        """The input of the first convolution: parts and resampled flow, in one copy, in the
        blocks' precision and layout."""
        parts = [x] if isinstance(x, torch.Tensor) else list(x)
        if flow is not None:
            parts.append(_resize(flow, 1.0 / scale) / scale)
        n, _, h, w = parts[0].shape
        out = torch.empty(n, sum(p.shape[1] for p in parts), h, w, dtype=self.dtype,
                          device=parts[0].device, memory_format=torch.channels_last)
        return torch.cat(parts, 1, out=out)


class IFBlockV4(_Block):
    """One flow block of RIFE v4.0: two strided convs, 8 residual convs, a transposed conv."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*[_conv(c, c) for _ in range(8)])
        self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)

    def forward(self, x, flow, scale):
        feat = self.conv0(self._head(x, flow, scale))
        feat = self.convblock(feat) + feat
        out = self.lastconv(feat).float()
        out[:, :4] *= scale * 2  # before upsampling: the same, exactly, for a power-of-two scale
        out = _resize(out, scale * 2)
        return out[:, :4], out[:, 4:5]


class IFNetV4(nn.Module):
    """RIFE v4.0 flow network (the official ``fastmode`` inference path, no refinement net)."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = IFBlockV4(7, 192)
        self.block1 = IFBlockV4(8 + 4, 128)
        self.block2 = IFBlockV4(8 + 4, 96)
        self.block3 = IFBlockV4(8 + 4, 64)
        self.warp = _Warper()
        self.large_motion = 0  # how many frames took the large-motion path (for tests)

    def set_precision(self, dtype: torch.dtype) -> None:
        for block in (self.block0, self.block1, self.block2, self.block3):
            block.set_precision(dtype)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, times: Sequence[float],
                scale: float = 1.0, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames at ``times`` between ``img0`` and ``img1``: (T, 3, H, W), or only their top-left
        ``size`` crop (the frame without its padding).  The inputs are (1, 3, H, W), one pair for
        every timestep, or (T, 3, H, W), a pair per timestep (several pairs in one batch)."""
        size = size or (img0.shape[2], img0.shape[3])
        return self._run(img0, img1, list(times), [8 / scale, 4 / scale, 2 / scale, 1 / scale],
                         check=True, size=size)

    def _run(self, img0, img1, times, scales, check, size):
        n = len(times)
        sources = _interleaved(img0, img1, n)
        t = torch.tensor(times, dtype=torch.float32, device=img0.device).view(n, 1, 1, 1)

        def stamp(x: torch.Tensor) -> torch.Tensor:  # the timestep plane at the size of x
            return t.expand(n, 1, x.shape[2], x.shape[3])

        pair = _resize(torch.cat((img0, img1), 1), 1.0 / scales[0]).expand(n, -1, -1, -1)
        flow, mask = self.block0(torch.cat((pair, stamp(pair)), 1), None, scales[0])
        for i, block in enumerate((self.block1, self.block2, self.block3), start=1):
            small = _warped(self.warp, sources, flow, scales[i])
            x = torch.cat((small, stamp(small), _resize(mask, 1.0 / scales[i])), 1)
            df, dm = block(x, flow, scales[i])
            if i == 1 and check:
                peak = torch.maximum(df.amax((2, 3)), -df.amin((2, 3)))  # (T, 4): max |flow|
                big = (peak[:, :2].amax(1) > LARGE_MOTION) & (peak[:, 2:].amax(1) > LARGE_MOTION)
                if bool(big.any()):
                    return self._large(img0, img1, times, scales, big.tolist(), size)
            flow = flow + df
            mask = mask + dm
        return _blend(_warped(self.warp, sources, flow, 1, size), mask, size)

    def _large(self, img0, img1, times, scales, big, size):
        """The official large-motion rule, per frame: redo the frames whose block-1 flow update
        exceeds the limit in both directions with every scale doubled (no second check)."""
        self.large_motion += sum(big)
        doubled = [s * 2 for s in scales]
        if all(big):
            return self._run(img0, img1, times, doubled, check=False, size=size)
        out = [None] * len(times)
        for flag, sel in ((True, doubled), (False, scales)):
            idx = [k for k, b in enumerate(big) if b == flag]
            part = self._run(_rows(img0, idx), _rows(img1, idx), [times[k] for k in idx], sel,
                             check=not flag, size=size)
            for j, k in enumerate(idx):
                out[k] = part[j]
        return torch.stack(out)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class _ResConv(nn.Module):
    """v4.25's residual unit: ``leaky(conv(x) * beta + x)`` with a learned per-channel ``beta``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return F.leaky_relu_(torch.addcmul(x, y, self.beta, out=y), 0.2)  # in place: no new buffer


class FeatureHead(_Block):
    """v4.25's ``encode``: 4 feature channels per input frame, at full resolution.  They depend on
    the frame alone, so each frame's are computed once and shared by the two pairs it is in."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self._head(image, None, 1)
        for conv in (self.cnn0, self.cnn1, self.cnn2):
            x = F.leaky_relu_(conv(x), 0.2)
        return self.cnn3(x).float().contiguous()


class IFBlockV425(_Block):
    """One flow block of RIFE v4.25: two strided convs, 8 residual units, a transposed conv and a
    pixel shuffle giving 4 flow + 1 mask + 8 feature channels passed on to the next block."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2, _leaky()), _conv(c // 2, c, 2, _leaky()))
        self.convblock = nn.Sequential(*[_ResConv(c) for _ in range(8)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow, scale):
        """The flow update at full resolution, and mask + features at this block's resolution
        (see :func:`_carried` for why they need not be upsampled)."""
        out = self.lastconv(self.convblock(self.conv0(self._head(x, flow, scale)))).float()
        out[:, :4] *= scale  # before upsampling: the same, exactly, for a power-of-two scale
        return _resize(out[:, :4], scale), out[:, 4:]


def _carried(x: torch.Tensor, scale: float, next_scale: float) -> torch.Tensor:
    """A block output at ``1 / scale`` of the full resolution as the next block reads it: the
    official upsamples it to full resolution by ``scale``, then resamples by ``1 / next_scale``.
    When the next block works at or below full resolution that equals one resize by
    ``scale / next_scale`` (= 2): a 1/k bilinear downscale averages pixel pairs that never
    straddle a seam of the k*2 upscale, so it reads that upscale at exactly the coarser
    sampling points.  Skips full-resolution copies of 9 channels per block."""
    if next_scale >= 1:
        return _resize(x, scale / next_scale)
    return _resize(_resize(x, scale), 1.0 / next_scale)


class IFNetV425(nn.Module):
    """RIFE v4.25 flow network.

    Inputs are frames with their features, (1, 7, H, W) from :meth:`features`.  Each block after
    the first sees both frames and both feature maps warped by the current flow, the timestep,
    and the previous block's mask and 8 feature channels; it adds to the flow and replaces the
    mask.  Images and features share their flow, so each block's warps are one ``grid_sample``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.block0 = IFBlockV425(7 + 8, 192)
        self.block1 = IFBlockV425(8 + 4 + 8 + 8, 128)
        self.block2 = IFBlockV425(8 + 4 + 8 + 8, 96)
        self.block3 = IFBlockV425(8 + 4 + 8 + 8, 64)
        self.block4 = IFBlockV425(8 + 4 + 8 + 8, 32)
        self.encode = FeatureHead()
        self.warp = _Warper()

    def set_precision(self, dtype: torch.dtype) -> None:
        for block in (self.block0, self.block1, self.block2, self.block3, self.block4, self.encode):
            block.set_precision(dtype)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """A padded frame (1, 3, H, W), clamped as officially, with its features: (1, 7, H, W)."""
        image = image.clamp(0.0, 1.0)
        return torch.cat((image, self.encode(image)), 1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, times: Sequence[float],
                scale: float = 1.0, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames at ``times`` between the two frames (with features, see :meth:`features`):
        (T, 3, H, W), or only their top-left ``size`` crop (the frame without its padding).
        ``x0`` and ``x1`` hold one pair for every timestep, or a pair per timestep, as in
        :meth:`IFNetV4.forward`."""
        n = len(times)
        size = size or (x0.shape[2], x0.shape[3])
        scales = [16 / scale, 8 / scale, 4 / scale, 2 / scale, 1 / scale]
        sources = _interleaved(x0, x1, n)  # (2T, 7, H, W)
        t = torch.tensor(times, dtype=torch.float32, device=x0.device).view(n, 1, 1, 1)

        def stamp(x: torch.Tensor) -> torch.Tensor:  # the timestep plane at the size of x
            return t.expand(n, 1, x.shape[2], x.shape[3])

        # block 0 reads image 0, image 1, features 0, features 1, t
        pair = _resize(torch.cat((x0[:, :3], x1[:, :3], x0[:, 3:], x1[:, 3:]), 1), 1.0 / scales[0])
        pair = pair.expand(n, -1, -1, -1)
        flow, carry = self.block0((pair, stamp(pair)), None, scales[0])  # carry: mask, features
        blocks = (self.block1, self.block2, self.block3, self.block4)
        for block, s, previous in zip(blocks, scales[1:], scales[:-1], strict=True):
            w = _warped(self.warp, sources, flow, s)  # image 0, features 0, image 1, features 1
            x = (w[:, 0:3], w[:, 7:10], w[:, 3:7], w[:, 10:14], stamp(w), _carried(carry, previous, s))
            df, carry = block(x, flow, s)
            flow = flow + df  # the mask is replaced, not accumulated
        mask = _resize(carry[:, :1], scales[-1])
        return _blend(_warped(self.warp, sources[:, :3], flow, 1, size), mask, size)


class IFBlockHD(_Block):
    """One flow block of RIFE HDv3: two strided convs, 4 residual pairs, two transposed heads."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2), _conv(c // 2, c, 2))
        for k in range(4):
            setattr(self, f"convblock{k}", nn.Sequential(_conv(c, c), _conv(c, c)))
        self.conv1 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 4, 4, 2, 1))
        self.conv2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 1, 4, 2, 1))

    def forward(self, x, flow, scale):
        feat = self.conv0(self._head(x, flow, scale))
        feat = self.convblock0(feat) + feat
        feat = self.convblock1(feat) + feat
        feat = self.convblock2(feat) + feat
        feat = self.convblock3(feat) + feat
        flow = _resize(self.conv1(feat).float() * scale, scale)
        mask = _resize(self.conv2(feat).float(), scale)
        return flow, mask


class IFNetHD(nn.Module):
    """RIFE HDv3 flow network: t = 0.5, each block run forwards and backwards and averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = IFBlockHD(7 + 4, 90)
        self.block1 = IFBlockHD(7 + 4, 90)
        self.block2 = IFBlockHD(7 + 4, 90)
        self.warp = _Warper()

    def set_precision(self, dtype: torch.dtype) -> None:
        for block in (self.block0, self.block1, self.block2):
            block.set_precision(dtype)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """Midpoints of N pairs, ``img0`` and ``img1`` (N, 3, H, W) each: (N, 3, H, W), or
        only their top-left ``size`` crop."""
        n, _, h, w = img0.shape
        scales = [4 / scale, 2 / scale, 1 / scale]
        size = size or (h, w)
        sources = torch.stack((img0, img1), 1).view(2 * n, 3, h, w)  # 0, 1, 0, 1...
        small = _resize(torch.cat((img0, img1), 1), 1.0 / scales[0])
        flow: torch.Tensor | None = None
        mask: torch.Tensor | None = None
        for i, block in enumerate((self.block0, self.block1, self.block2)):
            s = scales[i]
            if flow is None or mask is None:  # the official starts from zero flow and mask
                small_mask = small.new_zeros(n, 1, small.shape[2], small.shape[3])
                zeros = small.new_zeros(n, 4, small.shape[2], small.shape[3])
                x = torch.cat((torch.cat((small, small_mask, zeros), 1),
                               torch.cat((small[:, 3:], small[:, :3], small_mask, zeros), 1)), 0)
                f, m = block(x, None, s)
            else:
                # forward direction (0, 1, mask) and backward (1, 0, -mask) as one batch
                small_mask = _resize(mask, 1.0 / s)
                x = torch.cat((torch.cat((small, small_mask), 1),
                               torch.cat((small[:, 3:], small[:, :3], -small_mask), 1)), 0)
                f, m = block(x, torch.cat((flow, _swap(flow)), 0), s)
            df = (f[:n] + _swap(f[n:])) / 2
            dm = (m[:n] + (-m[n:])) / 2
            flow = df if flow is None else flow + df
            mask = dm if mask is None else mask + dm
            if i < 2:
                small = _warped(self.warp, sources, flow, scales[i + 1])
        assert flow is not None and mask is not None  # set by each of the three blocks above
        return _blend(_warped(self.warp, sources, flow, 1, size), mask, size)


# --------------------------------------------------------------------------------------------
# interpolators


def _native_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


#: a frame as some interface holds it: a float RGB array, a decoded frame
_Held = TypeVar("_Held")


def _distinct(windows: Sequence[Sequence[_Held]]) -> tuple[list[_Held], list[tuple[int, int]]]:
    """The distinct frames of the windows' pairs (by identity: consecutive windows share one),
    and each pair as two indices into them."""
    frames: list[_Held] = []

    def index(frame: _Held) -> int:
        for i, seen in enumerate(frames):
            if seen is frame:
                return i
        frames.append(frame)
        return len(frames) - 1

    return frames, [(index(window[0]), index(window[1])) for window in windows]


def _stacked(inputs: Sequence[torch.Tensor], picked: Sequence[int]) -> torch.Tensor:
    """The network inputs of the frames ``picked``, one row each; one row when all are the same
    frame (the network shares it between the timesteps, as for a single pair)."""
    if len(set(picked)) == 1:
        return inputs[picked[0]]
    return torch.cat([inputs[i] for i in picked])


def _decoded(planes: Sequence[np.ndarray], like: av.VideoFrame) -> av.VideoFrame:
    """Integer planes in a new frame of ``like``'s format, size, matrix and range."""
    frame = colour.blank(like)
    for index, values in enumerate(planes):
        colour.plane(frame, index)[...] = values
    return frame


#: the answer for one requested time: a computed frame, (1, 3, H, W) on the device, or the index
#: (0 or 1) of the pair's input frame that is the answer
Made = torch.Tensor | int


class _Rife(Interpolator):
    """Padding, the per-frame input cache and the batch interfaces shared by the RIFE variants.

    Several pairs run together, up to :data:`MAX_BATCH` frames per forward (on a GPU one pair's
    timesteps are too few to fill it), through :meth:`interpolate_batch` (frames as arrays),
    :meth:`interpolate_pictures_batch` (the pipeline's pictures) or :meth:`interpolate_tensors`
    (frames already on the device, e.g. from :func:`slomo.tensors.to_rgb`).  They give what
    :meth:`interpolate` gives pair by pair, within float rounding (convolutions over another
    batch may sum in another order).
    """

    #: spatial sizes are padded to a multiple of ``max(align, align / scale)``, as officially
    align = 128

    def __init__(self, net: IFNetV4 | IFNetV425 | IFNetHD, options: ModelOptions) -> None:
        self.device = torch.device(options.device)
        self.dtype = options.dtype
        if self.dtype == torch.bfloat16 and self.device.type == "cpu" and not _native_bf16():
            # without AVX512-BF16/AMX, oneDNN refuses bf16 and torch falls back to its reference
            # convolutions: measured 7x slower than fp32 on an AVX2-only EPYC
            log.warning("this CPU has no native bfloat16 support: precision 'bf16' runs much slower "
                        "than 'fp32' here")
        self.scale = float(options.scale)
        self.multiple = max(self.align, int(self.align / self.scale))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        #: decoded pictures cross to the device as their integer planes and come back as planes,
        #: converted there by torch (:meth:`interpolate_pictures`): on CUDA only, as on the CPU cv2's
        #: conversion on the host measured 3x faster than torch's.  Tests set it to run that path here.
        self.pictures_on_device = self.device.type == "cuda"
        self.pairs_per_call = self._pairs_per_call(options)
        net.eval().requires_grad_(False).to(self.device)
        net.set_precision(self.dtype)
        self.net = net
        #: (key, probe of its pixels or None, network input) of the last two frames
        self._cache: list[tuple[object, np.ndarray | None, torch.Tensor]] = []

    def _pairs_per_call(self, options: ModelOptions) -> int:
        """On CUDA, as many pairs as fill one forward of :data:`MAX_BATCH` frames: at 2x one pair
        is a single frame, far too little for a GPU at 1080p, and 8 pairs are one full forward;
        at higher factors a pair fills more of a forward by itself, and capping a call at
        :data:`MAX_BATCH` made frames keeps what it holds on the device to one forward's output
        (and no more than the pipeline's memory estimate allows a call: ``TIMESTEP_BATCH``).
        One on the CPU, where batching measured slower: four pairs of real 640x272 frames
        (``bikes.mp4``, v4.25 fp32, 2 threads) took 1.08x the time of four calls at 2x and 1.25x
        at 4x (``benchmarks/rife_pairs_per_call.py``, 2026-11-22)."""
        if self.device.type != "cuda":
            return 1
        frames_per_pair = options.factor if options.ratio is None else math.ceil(options.ratio)
        return max(1, MAX_BATCH // max(1, frames_per_pair - 1))

    def reset(self) -> None:
        self._cache = []

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        return self.interpolate_batch([window], [times])[0]

    def interpolate_batch(self, windows: Sequence[Sequence[Frame]],
                          times: Sequence[Sequence[float]]) -> list[list[Frame]]:
        """For each window (frames of one size), its frames at its ``times``, as
        :meth:`interpolate` gives them; the computed ones downloaded together."""
        frames, pairs = _distinct(windows)
        with torch.inference_mode():
            made = self._made(lambda: self._frame_inputs(frames), pairs, times, frames[0].shape[:2])
            computed = [m for row in made for m in row if isinstance(m, torch.Tensor)]
            downloaded = iter(tensors.tensor_to_frames(torch.cat(computed)) if computed else [])
        return [[np.array(window[m], dtype=np.float32) if isinstance(m, int) else next(downloaded)
                 for m in row] for window, row in zip(windows, made, strict=True)]

    def prepare(self, picture: Picture) -> None:
        """The base's RGB conversion on the host, but for a decoded picture bound for the device
        (:attr:`pictures_on_device`): its planes are uploaded as they are, on the model's thread."""
        if not (self.pictures_on_device and picture.video is not None):
            super().prepare(picture)

    def interpolate_pictures(self, window: Sequence[Picture], times: Sequence[float]) -> list[Picture]:
        return self.interpolate_pictures_batch([window], [times])[0]

    def interpolate_pictures_batch(self, windows: Sequence[Sequence[Picture]],
                                   times: Sequence[Sequence[float]]) -> list[list[Picture]]:
        """With :attr:`pictures_on_device`, decoded pictures of one :func:`~slomo.colour.layout`
        go through the device: integer planes up, each distinct frame once (consecutive windows
        share one) and converted there (:func:`slomo.tensors.to_rgb`) but for a frame shared with
        the previous call, which keeps its network input and is neither uploaded nor converted
        again; every window's frames are made together (:meth:`_made`) and come back as planes of
        the same format, matrix and range (:func:`slomo.tensors.from_rgb`) in decoded frames the
        encoder takes as they are, and a time that is an input frame is that picture itself.
        Anything else takes the RGB path (:meth:`interpolate_batch`).  Run on the CPU device by the
        tests; never yet on a GPU."""
        decoded = [[p.video for p in window if p.video is not None] for window in windows]
        every_decoded = all(len(row) == len(window) for row, window in zip(decoded, windows, strict=True))
        one_layout = len({colour.layout(v) for row in decoded for v in row}) == 1
        if not (self.pictures_on_device and every_decoded and one_layout):
            rgb = self.interpolate_batch([[p.rgb() for p in window] for window in windows], times)
            return [[Picture(rgb=frame) for frame in row] for row in rgb]
        frames, pairs = _distinct(decoded)
        conversion = (frames[0].format.name, *windows[0][0].colour())  # pix_fmt, colorspace, color_range

        def upload(picked: list[int]) -> torch.Tensor:
            planes = [[colour.plane(frames[k], i) for i in range(3)] for k in picked]
            return tensors.to_rgb(planes, *conversion, device=self.device)

        with torch.inference_mode():
            made = self._made(lambda: self._inputs(frames, [None] * len(frames), upload), pairs, times,
                              (frames[0].height, frames[0].width))
            computed = [m for row in made for m in row if isinstance(m, torch.Tensor)]
            planes = iter(tensors.from_rgb(torch.cat(computed), *conversion) if computed else [])
        return [[window[m] if isinstance(m, int) else Picture(video=_decoded(next(planes), frames[0]))
                 for m in row] for window, row in zip(windows, made, strict=True)]

    def interpolate_tensors(self, images: torch.Tensor, pairs: Sequence[tuple[int, int]],
                            times: Sequence[Sequence[float]],
                            keys: Sequence[object] | None = None) -> list[torch.Tensor]:
        """Frames between pairs of ``images``, all on the model's device: for pair ``k``, the
        frames at ``times[k]`` between ``images[pairs[k][0]]`` and ``images[pairs[k][1]]``, as a
        ``(len(times[k]), 3, H, W)`` float32 tensor.  ``images`` is ``(N, 3, H, W)`` RGB in [0, 1]
        (:func:`slomo.tensors.to_rgb` makes it from decoded planes).  ``keys``, one per image,
        name each image across calls (the decoded picture it came from, never changed): the
        network input of an image whose key was among the last two is reused, so the frame two
        consecutive calls share is prepared once (v4.25: its features computed once)."""
        names = list(keys) if keys is not None else [None] * len(images)
        with torch.inference_mode():
            made = self._made(lambda: self._inputs(names, [None] * len(names), lambda picked: images[picked]),
                              pairs, times, images.shape[2:])
            return [torch.cat([images[pair[m]:pair[m] + 1].float() if isinstance(m, int) else m for m in row])
                    for pair, row in zip(pairs, made, strict=True)]

    @abstractmethod
    def _made(self, inputs: Callable[[], list[torch.Tensor]], pairs: Sequence[tuple[int, int]],
              times: Sequence[Sequence[float]], size: Sequence[int]) -> list[list[Made]]:
        """For each pair of inputs and each of its times, the answer (see :data:`Made`), cropped
        to ``size``; ``inputs()`` gives the frames' network inputs, called only if one is needed."""

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """What the network takes for one padded frame (some add per-frame features)."""
        return x

    def _input(self, image: torch.Tensor) -> torch.Tensor:
        """The network's input for one frame (1, 3, H, W): padded, then :meth:`_prepare`."""
        h, w = image.shape[2:]
        ph = -(-h // self.multiple) * self.multiple
        pw = -(-w // self.multiple) * self.multiple
        return self._prepare(F.pad(image.float(), (0, pw - w, 0, ph - h)).contiguous())

    def _cached(self, key: object, probe: np.ndarray | None) -> torch.Tensor | None:
        """The remembered input of ``key``: the same object and, where a probe of its pixels was
        remembered, the same probe."""
        for cached, cached_probe, tensor in self._cache:
            if key is None or cached is not key:
                continue
            if cached_probe is None or (probe is not None and np.array_equal(cached_probe, probe)):
                return tensor
        return None

    def _frame_inputs(self, frames: Sequence[Frame]) -> list[torch.Tensor]:
        """:meth:`_inputs` of frames given as arrays: each is its own key, checked by a sample of
        its pixels too (a buffer refilled in place is never mistaken for the old frame); a
        frame that cannot be sampled cheaply (not contiguous) is not cached."""
        probes = [f.reshape(-1)[::1009].copy() if f.flags.c_contiguous else None for f in frames]
        keys = [f if p is not None else None for f, p in zip(frames, probes, strict=True)]
        return self._inputs(keys, probes, lambda picked: tensors.frames_to_tensor([frames[k] for k in picked],
                                                                                  self.device))

    def _inputs(self, keys: Sequence[object], probes: Sequence[np.ndarray | None],
                images: Callable[[list[int]], torch.Tensor]) -> list[torch.Tensor]:
        """The network's input for each of distinct frames of one size (see :meth:`_input`).
        Those of the last two keys seen are remembered (``None``: not to be remembered), so the
        frame consecutive calls share is converted once; ``images(missing)`` gives the others
        as one (len(missing), 3, H, W) tensor."""
        found = [self._cached(k, p) for k, p in zip(keys, probes, strict=True)]
        missing = [k for k, x in enumerate(found) if x is None]
        if missing:
            for k, image in zip(missing, images(missing).split(1), strict=True):
                found[k] = self._input(image)
        inputs = [x for x in found if x is not None]
        older = [entry for entry in self._cache if all(entry[0] is not k for k in keys)]
        kept = [(k, p, x) for k, p, x in zip(keys, probes, inputs, strict=True) if k is not None]
        self._cache = (older + kept)[-2:]
        return inputs


class Rife(_Rife):
    """RIFE v4.x: any timestep; the timesteps of one pair, or of several, run as one batch."""

    def _made(self, inputs: Callable[[], list[torch.Tensor]], pairs: Sequence[tuple[int, int]],
              times: Sequence[Sequence[float]], size: Sequence[int]) -> list[list[Made]]:
        todo = [(k, j) for k, ts in enumerate(times) for j, t in enumerate(ts) if t != 0]
        made: list[list[Made]] = [[0] * len(ts) for ts in times]
        if todo:
            loaded = inputs()
            for start in range(0, len(todo), MAX_BATCH):
                chunk = todo[start:start + MAX_BATCH]
                x0 = _stacked(loaded, [pairs[k][0] for k, _ in chunk])
                x1 = _stacked(loaded, [pairs[k][1] for k, _ in chunk])
                y = self.net(x0, x1, [float(times[k][j]) for k, j in chunk], self.scale, tuple(size))
                for (k, j), frame in zip(chunk, y.split(1), strict=True):
                    made[k][j] = frame
        return made


class Rife425(Rife):
    """RIFE v4.25: as v4.0, padded to 64, and each frame's features computed once (cached)."""

    align = 64
    net: IFNetV425

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


class _Node:
    """A bisection midpoint, recorded first and computed later one depth at a time."""

    __slots__ = ("a", "b", "depth", "value")

    def __init__(self, a: _Node | None, b: _Node | None, depth: int = 0,
                 value: torch.Tensor | None = None) -> None:
        self.a, self.b, self.depth, self.value = a, b, depth, value


def _computed(node: _Node | None) -> torch.Tensor:
    """A node's tensor: the ends get theirs before the first depth runs and each depth's
    midpoints theirs before the next, so every node read has one."""
    assert node is not None and node.value is not None, "bisection node read before it was computed"
    return node.value


class RifeHD(_Rife):
    """RIFE HDv3: t = 0.5 per pass; other timesteps by :func:`bisect_times`."""

    align = 32

    def _made(self, inputs: Callable[[], list[torch.Tensor]], pairs: Sequence[tuple[int, int]],
              times: Sequence[Sequence[float]], size: Sequence[int]) -> list[list[Made]]:
        # plan every pair's bisection with symbolic frames, then run each depth as one batch
        nodes: list[_Node] = []

        def midpoint(a: _Node, b: _Node) -> _Node:
            nodes.append(_Node(a, b, max(a.depth, b.depth) + 1))
            return nodes[-1]

        ends = [(_Node(None, None), _Node(None, None)) for _ in pairs]
        picked = [bisect_times(midpoint, start, end, list(ts))
                  for (start, end), ts in zip(ends, times, strict=True)]
        if nodes:
            loaded = inputs()
            for (start, end), (i0, i1) in zip(ends, pairs, strict=True):
                start.value, end.value = loaded[i0], loaded[i1]
        deepest = max((n.depth for n in nodes), default=0)
        h, w = size
        for depth in range(1, deepest + 1):
            level = [n for n in nodes if n.depth == depth]
            # a midpoint that feeds a deeper one keeps its padding, as officially
            crop = (h, w) if depth == deepest else None
            for i in range(0, len(level), MAX_BATCH):
                part = level[i:i + MAX_BATCH]
                y = self.net(torch.cat([_computed(n.a) for n in part]),
                             torch.cat([_computed(n.b) for n in part]), self.scale, crop)
                for n, value in zip(part, y.split(1), strict=True):
                    n.value = value
        return [[0 if node is start else 1 if node is end else _computed(node)[:, :, :h, :w] for node in row]
                for (start, end), row in zip(ends, picked, strict=True)]


_Net = TypeVar("_Net", bound=nn.Module)


def _load(net: _Net, options: ModelOptions, ignore: tuple[str, ...]) -> _Net:
    weights.load_into(net, weights.load_checkpoint(options.checkpoint_file()), ignore=ignore)
    return net


def _make_rife(options: ModelOptions) -> Rife425:
    return Rife425(_load(IFNetV425(), options, V425_IGNORED), options)


def _make_rife_v4(options: ModelOptions) -> Rife:
    return Rife(_load(IFNetV4(), options, V4_IGNORED), options)


def _make_rife_hd(options: ModelOptions) -> RifeHD:
    return RifeHD(_load(IFNetHD(), options, HD_IGNORED), options)
