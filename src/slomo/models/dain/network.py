"""DAIN: Depth-Aware Video Frame Interpolation (Bao et al., CVPR 2019), in pure PyTorch.

The network is the authors' ``DAIN_slowmotion`` (``networks/DAIN_slowmotion.py`` of
https://github.com/baowenbo/DAIN, MIT; identical to ``DAIN`` at t = 0.5), written again here with
the same module names, so the released ``best.pth`` (a plain ``state_dict``) loads unchanged with
strict keys.  The official code runs only on an NVIDIA GPU: its flow projection, adaptive warping
and PWC-Net correlation are CUDA extensions (``my_package/*/*_cuda_kernel.cu``,
``PWCNet/correlation_package_pytorch1_0``).  Here each is written with torch ops (slicing,
``scatter_add``, ``index_select``, ``grid_sample``), so CPU, CUDA and MPS all run it; each is
tested against a loop-by-loop transcription of its kernel.

The inference forward (``training=False``, two padded frames ``I0``, ``I1`` in ``[0, 1]``, time
``t``):

- ``depthNet`` (MegaDepth hourglass) gives log depth for both frames; ``ctxNet`` (``S2DF_3dense``)
  gives 195 context channels, to which the log depth is appended.
- ``initScaleNets_filter`` (a 5-level U-Net with additive skips) and its two heads give a 4x4
  kernel (16 channels) per pixel for each frame.
- ``flownets`` (PWC-DC-Net) gives ``F_01`` and ``F_10`` at quarter resolution; each is scaled by
  ``20 * t`` (``20 * (1 - t)``) and upsampled 4x bilinearly.
- depth-aware flow projection turns them into ``F_t0``, ``F_t1``: every source pixel splats its
  negated flow onto the 4 pixels around where it lands, weighted by inverse depth (closer objects
  win), then the average; holes are filled from the nearest projected pixels left, right, up and
  down.
- adaptive warping (``FilterInterpolation``) samples the frames and the contexts along the
  projected flows with the per-pixel 4x4 kernels, bilinearly blended over the four 2x2 quadrants.
- the blend ``(1 - t) * warped0 + t * warped1`` plus ``rectifyNet`` (residual blocks over the
  warped frames, flows, kernels and contexts) is the output, clamped to ``[0, 1]``.

Frames are replicate-padded as the official demo pads them (:func:`slomo.models.bin._pad_amounts`:
to the next multiple of 128 per side, 32 when already one).  All times of one call share the
depth, context, kernel and flow networks; only the projection, warping and ``rectifyNet`` run per
``t``.  The model runs in float32 whatever ``precision`` asks: the projection and warping take
integer pixel positions from the flow, which half precision would move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import tensors, weights
from ...interpolator import Frame, Interpolator, ModelOptions
from ..bin.network import _pad_amounts

# --------------------------------------------------------------------------------------------
# the custom CUDA layers, as torch ops


def correlation(first: torch.Tensor, second: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """PWC-Net's ``Correlation(pad_size=md, kernel_size=1, max_displacement=md, stride1=1,
    stride2=1)``: channel ``(dy + md) * (2 md + 1) + (dx + md)`` holds the mean over channels of
    ``first[y, x] * second[y + dy, x + dx]``, zero outside ``second``."""
    h, w = first.shape[2:]
    md = max_displacement
    padded = F.pad(second, (md, md, md, md))
    out = [(first * padded[:, :, md + dy:md + dy + h, md + dx:md + dx + w]).mean(1)
           for dy in range(-md, md + 1) for dx in range(-md, md + 1)]
    return torch.stack(out, 1)


def _pixel_grid(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of every pixel, shaped (1, H, W), in the flow's dtype and device."""
    h, w = flow.shape[2:]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(1, h, w)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(1, h, w)
    return xs, ys


def _gather(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``image[b, :, rows[b, y, x], cols[b, y, x]]`` for every ``(b, y, x)``: (B, C, H, W)."""
    b, c, h, w = image.shape
    flat = image.transpose(0, 1).reshape(c, b * h * w)
    offsets = torch.arange(b, device=image.device).view(b, 1, 1) * (h * w)
    picked = flat.index_select(1, (offsets + rows * w + cols).reshape(-1))
    return picked.view(c, b, *rows.shape[1:]).transpose(0, 1)


def depth_flow_projection(flow: torch.Tensor, weight: torch.Tensor, fill_holes: bool = True,
                          search_down: bool = True) -> torch.Tensor:
    """``DepthFlowProjectionModule`` (``requires_grad=False``, so holes are filled).

    A pixel whose flow ``(fx, fy)`` lands at ``(x2, y2)`` inside the frame adds ``-weight * f``
    and ``weight`` to the output and count of all four pixels ``(floor or floor + 1, clamped)``
    around it, with equal weights; the output is divided by the count where it is positive.
    With ``weight = 1`` this is the plain ``FlowProjection``; MEMC-Net's version of that kernel
    never searches downward for holes (``search_down=False``, see :func:`_fill_holes`).
    """
    b, _, h, w = flow.shape
    xs, ys = _pixel_grid(flow)
    fx, fy = flow[:, 0], flow[:, 1]
    x2, y2 = xs + fx, ys + fy
    inside = (x2 >= 0) & (y2 >= 0) & (x2 <= w - 1) & (y2 <= h - 1)
    weight = torch.where(inside, weight[:, 0], torch.zeros_like(fx))
    left = torch.where(inside, x2, torch.zeros_like(x2)).long()  # (int) truncation, x2 >= 0
    top = torch.where(inside, y2, torch.zeros_like(y2)).long()
    right, bottom = (left + 1).clamp(max=w - 1), (top + 1).clamp(max=h - 1)
    values = torch.stack((-weight * fx, -weight * fy, weight), 1).view(b, 3, h * w)
    sums = torch.zeros_like(values)
    for rows, cols in ((top, left), (top, right), (bottom, left), (bottom, right)):
        index = (rows * w + cols).view(b, 1, h * w).expand(b, 3, h * w)
        sums.scatter_add_(2, index, values)
    sums = sums.view(b, 3, h, w)
    count = sums[:, 2:]
    out = torch.where(count > 0, sums[:, :2] / count, sums[:, :2])
    return _fill_holes(out, count, search_down) if fill_holes else out


def _nearest_marked(marked: torch.Tensor, dim: int, reverse: bool) -> torch.Tensor:
    """Index along ``dim`` of the nearest marked position strictly before (or, ``reverse``, after)
    each position; -1 (or the size) where there is none."""
    size = marked.shape[dim]
    if reverse:
        return size - 1 - _nearest_marked(marked.flip(dim), dim, False).flip(dim)
    shape = [1] * marked.dim()
    shape[dim] = size
    positions = torch.arange(size, device=marked.device).view(shape).expand_as(marked)
    latest = torch.where(marked, positions, torch.full_like(positions, -1)).cummax(dim).values
    none = torch.full_like(latest.narrow(dim, 0, 1), -1)
    return torch.cat((none, latest.narrow(dim, 0, size - 1)), dim)


def _fill_holes(flow: torch.Tensor, count: torch.Tensor, search_down: bool = True) -> torch.Tensor:
    """``DepthFlowFillhole_kernelfunc``: a pixel with ``count <= 0`` takes the mean flow of the
    nearest pixels with a nonzero count to its left, right, top and bottom (those with a positive
    count), and keeps its value when none has one.  Holes only read non-holes, so the kernel's
    parallel writes do not race and reading the unfilled flow is the same.  MEMC-Net's
    ``FlowFillhole_kernelfunc`` writes ``while(down_temp = 0.0f && ...)``, an assignment that
    ends the downward search before it starts: ``search_down=False`` does the same."""
    h, w = flow.shape[2:]
    nonzero = count != 0
    total = torch.zeros_like(count)
    acc = torch.zeros_like(flow)
    n = torch.zeros_like(count)
    directions = ((3, False), (3, True), (2, False), (2, True)) if search_down else \
        ((3, False), (3, True), (2, False))
    for dim, reverse in directions:
        size = w if dim == 3 else h
        index = _nearest_marked(nonzero, dim, reverse)
        found = (index >= 0) & (index < size)
        index = index.clamp(0, size - 1)
        neighbour_count = torch.where(found, count.gather(dim, index), torch.zeros_like(count))
        total = total + neighbour_count
        use = (neighbour_count > 0).to(flow.dtype)
        acc = acc + use * flow.gather(dim, index.expand_as(flow))
        n = n + use
    fill = (count <= 0) & (total > 0)
    return torch.where(fill, acc / n.clamp(min=1), flow)


def filter_interpolation(image: torch.Tensor, flow: torch.Tensor, filters: torch.Tensor,
                         filter_size: int = 4) -> torch.Tensor:
    """``FilterInterpolationModule``: adaptive warping with a per-pixel ``filter_size``^2 kernel.

    Where ``(x2, y2) = (x + fx, y + fy)`` is inside the frame and ``|fx| < W/2``, ``|fy| < H/2``,
    the output is the kernel-weighted sum of the ``filter_size``^2 pixels (clamped to the frame)
    starting ``filter_size/2 - 1`` above and left of ``floor(x2, y2)``, its four quadrants blended
    bilinearly by the fractional position; elsewhere the pixel is copied unwarped.
    """
    h, w = image.shape[2:]
    xs, ys = _pixel_grid(flow)
    fx, fy = flow[:, 0], flow[:, 1]
    x2, y2 = xs + fx, ys + fy
    valid = ((x2 >= 0) & (y2 >= 0) & (x2 <= w - 1) & (y2 <= h - 1)
             & (fx.abs() < w / 2.0) & (fy.abs() < h / 2.0))
    x2 = torch.where(valid, x2, xs)  # keeps the positions of copied pixels harmless
    y2 = torch.where(valid, y2, ys)
    x0, y0 = x2.long(), y2.long()
    alpha = (x2 - x0).unsqueeze(1)
    beta = (y2 - y0).unsqueeze(1)
    half = filter_size // 2
    # the bilinear weight of each quadrant (top/bottom, left/right), applied tap by tap so that
    # only one accumulator of the image's size is alive (the contexts have 196 channels)
    row_weights, col_weights = (1 - beta, beta), (1 - alpha, alpha)
    out = torch.zeros_like(image)
    for j in range(filter_size):
        rows = (y0 + 1 - half + j).clamp(0, h - 1)
        for i in range(filter_size):
            cols = (x0 + 1 - half + i).clamp(0, w - 1)
            k = j * filter_size + i
            weight = filters[:, k:k + 1] * (row_weights[j >= half] * col_weights[i >= half])
            out.addcmul_(_gather(image, rows, cols), weight)
    return torch.where(valid.unsqueeze(1), out, image)


# --------------------------------------------------------------------------------------------
# PWC-DC-Net (PWCNet/PWCNet.py), module names as the official


def _conv(cin: int, cout: int, stride: int = 1, padding: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding, dilation), nn.LeakyReLU(0.1))


def _predict_flow(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, 1, 1)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1)


def backward_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``PWCDCNet.warp`` under torch 1.0: ``grid_sample`` with corner-aligned coordinates, zeroed
    where any bilinear tap falls outside the frame (sampled mask below 0.9999)."""
    h, w = x.shape[2:]
    xs, ys = _pixel_grid(flow)
    gx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), 3)
    out = F.grid_sample(x, grid, align_corners=True)
    mask = F.grid_sample(torch.ones_like(x[:, :1]), grid, align_corners=True)
    return out * (mask >= 0.9999).to(x.dtype)


class PWCDCNet(nn.Module):
    """``pwc_dc_net()``: flow from the first to the second image (channels 0:3 and 3:6), at a
    quarter of the resolution, in units of 1/20 pixel."""

    # registered by name in __init__'s loops; declared for the calls that name them directly
    predict_flow6: nn.Module
    dc_conv1: nn.Module
    dc_conv2: nn.Module
    dc_conv3: nn.Module
    dc_conv4: nn.Module
    dc_conv5: nn.Module
    dc_conv6: nn.Module

    def __init__(self, md: int = 4):
        super().__init__()
        self.md = md
        channels = [3, 16, 32, 64, 96, 128, 196]
        for level in range(1, 7):
            cin, cout = channels[level - 1], channels[level]
            names = ("6aa", "6a", "6b") if level == 6 else (f"{level}a", f"{level}aa", f"{level}b")
            setattr(self, f"conv{names[0]}", _conv(cin, cout, stride=2))
            setattr(self, f"conv{names[1]}", _conv(cout, cout))
            setattr(self, f"conv{names[2]}", _conv(cout, cout))
        self.leakyRELU = nn.LeakyReLU(0.1)
        nd = (2 * md + 1) ** 2
        dd = np.cumsum([128, 128, 96, 64, 32]).tolist()
        for level, extra in ((6, 0), (5, 128 + 4), (4, 96 + 4), (3, 64 + 4), (2, 32 + 4)):
            od = nd + extra
            for i, cout in enumerate((128, 128, 96, 64, 32)):
                setattr(self, f"conv{level}_{i}", _conv(od + ([0] + dd)[i], cout))
            setattr(self, f"predict_flow{level}", _predict_flow(od + dd[4]))
            setattr(self, f"deconv{level}", _deconv(2, 2))
            if level > 2:
                setattr(self, f"upfeat{level}", _deconv(od + dd[4], 2))
        od = nd + 32 + 4 + dd[4]
        for i, (cin, cout, dilation) in enumerate(((od, 128, 1), (128, 128, 2), (128, 128, 4),
                                                   (128, 96, 8), (96, 64, 16), (64, 32, 1)), 1):
            setattr(self, f"dc_conv{i}", _conv(cin, cout, padding=dilation, dilation=dilation))
        self.dc_conv7 = _predict_flow(32)

    def _pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for level in range(1, 7):
            names = ("6aa", "6a", "6b") if level == 6 else (f"{level}a", f"{level}aa", f"{level}b")
            for name in names:
                image = getattr(self, f"conv{name}")(image)
            features.append(image)
        return features

    def _decode(self, level: int, x: torch.Tensor) -> torch.Tensor:
        for i in range(5):
            x = torch.cat((getattr(self, f"conv{level}_{i}")(x), x), 1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self._pyramid(x[:, :3]), self._pyramid(x[:, 3:])
        corr = self.leakyRELU(correlation(first[5], second[5], self.md))
        x = self._decode(6, corr)
        flow = self.predict_flow6(x)
        for level, scale in ((5, 0.625), (4, 1.25), (3, 2.5), (2, 5.0)):
            up_flow = getattr(self, f"deconv{level + 1}")(flow)
            up_feat = getattr(self, f"upfeat{level + 1}")(x)
            warped = backward_warp(second[level - 1], up_flow * scale)
            corr = self.leakyRELU(correlation(first[level - 1], warped, self.md))
            x = self._decode(level, torch.cat((corr, first[level - 1], up_flow, up_feat), 1))
            flow = getattr(self, f"predict_flow{level}")(x)
        x = self.dc_conv4(self.dc_conv3(self.dc_conv2(self.dc_conv1(x))))
        return flow + self.dc_conv7(self.dc_conv6(self.dc_conv5(x)))


# --------------------------------------------------------------------------------------------
# MegaDepth hourglass (MegaDepth/pytorch_DIW_scratch.py), the same nesting of Sequentials


class _Concat(nn.Sequential):
    """The official ``LambdaReduce(cat)``: every child on the input, concatenated on channels."""

    def forward(self, x):
        return torch.cat([m(x) for m in self], 1)


class _Branches(nn.Sequential):
    """The official ``LambdaMap(identity)``: every child on the input, as a list."""

    def forward(self, x):
        return [m(x) for m in self]


class _Sum(nn.Module):
    """The official ``LambdaReduce(add)``: the sum of the branches."""

    def forward(self, xs):
        return xs[0] + xs[1]


def _bn(n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n, 1e-05, 0.1, False)


def _inception(cin: int, first: int, branches: Sequence[tuple[int, int, int]]) -> _Concat:
    """A 1x1 conv to ``first`` channels, and for each ``(mid, out, k)`` a 1x1 conv to ``mid``
    then a ``k``x``k`` conv to ``out``; each conv followed by batch norm and ReLU."""
    paths = [nn.Sequential(nn.Conv2d(cin, first, 1), _bn(first), nn.ReLU())]
    for mid, out, k in branches:
        paths.append(nn.Sequential(nn.Conv2d(cin, mid, 1), _bn(mid), nn.ReLU(),
                                   nn.Conv2d(mid, out, k, 1, k // 2), _bn(out), nn.ReLU()))
    return _Concat(*paths)


def _incep(name: str) -> _Concat:
    """The hourglass's ten inception configurations."""
    a3_5_7, a3_7_11 = (3, 5, 7), (3, 7, 11)
    cin, first, mid, out, ks = {
        "A": (128, 32, 32, 32, a3_5_7), "B": (128, 32, 64, 32, a3_5_7),
        "D": (128, 64, 32, 64, a3_5_7), "E": (256, 64, 32, 64, a3_5_7),
        "F": (256, 64, 64, 64, a3_7_11), "G": (256, 32, 32, 32, a3_5_7),
        "H": (128, 32, 64, 32, a3_7_11), "I": (128, 16, 32, 16, a3_7_11),
        "J": (128, 16, 64, 16, a3_7_11),
    }[name]
    return _inception(cin, first, [(mid, out, k) for k in ks])


def _residual(skip: nn.Sequential, down: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(_Branches(skip, down), _Sum())


def _up() -> nn.Module:
    return nn.UpsamplingNearest2d(scale_factor=2)


def megadepth_hourglass() -> nn.Sequential:
    """``pytorch_DIW_scratch``: RGB in ``[0, 1]`` -> log depth, one channel."""
    level4 = _residual(nn.Sequential(_incep("E"), _incep("E")),
                       nn.Sequential(nn.AvgPool2d(2, 2), _incep("E"), _incep("E"), _incep("E"), _up()))
    level3 = _residual(nn.Sequential(_incep("E"), _incep("F")),
                       nn.Sequential(nn.AvgPool2d(2, 2), _incep("E"), _incep("E"), level4, _incep("E"),
                                     _incep("F"), _up()))
    level2 = _residual(nn.Sequential(nn.MaxPool2d(2, 2), _incep("A"), _incep("D"), level3, _incep("E"),
                                     _incep("G"), _up()),
                       nn.Sequential(_incep("A"), _incep("H")))
    level1 = _residual(nn.Sequential(nn.MaxPool2d(2, 2), _incep("A"), _incep("A"), level2, _incep("B"),
                                     _incep("I"), _up()),
                       nn.Sequential(_incep("J")))
    return nn.Sequential(nn.Conv2d(3, 128, 7, 1, 3), nn.BatchNorm2d(128), nn.ReLU(), level1,
                         nn.Conv2d(64, 1, 3, 1, 1))


# --------------------------------------------------------------------------------------------
# context network (S2D_models/S2DF.py) and rectification (Resblock/BasicBlock.py)


class BasicBlock(nn.Module):
    """The residual block of ``S2DF`` and ``MultipleBasicBlock``: two bias-free 3x3 convs."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class ContextNet(nn.Module):
    """``S2DF_3dense``: the image and three feature maps of 64 channels, 195 channels in all."""

    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 64, 7, 1, 3, bias=False), nn.ReLU())
        self.block2 = BasicBlock(64, dilation=4)
        self.block3 = BasicBlock(64, dilation=8)

    def forward(self, x):
        b1 = self.block1(x)
        b2 = self.block2(b1)
        return torch.cat((x, b1, b2, self.block3(b2)), 1)


class RectifyNet(nn.Module):
    """``MultipleBasicBlock_4(437, 128)``: a 7x7 conv, three residual blocks, a 3x3 conv to RGB."""

    def __init__(self, cin: int, features: int = 128):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(cin, features, 7, 1, 3), nn.ReLU())
        self.block2 = BasicBlock(features)
        self.block3 = BasicBlock(features)
        self.block4 = BasicBlock(features)
        self.block5 = nn.Sequential(nn.Conv2d(features, 3, 3, 1, 1))

    def forward(self, x):
        return self.block5(self.block4(self.block3(self.block2(self.block1(x)))))


# --------------------------------------------------------------------------------------------
# the kernel-estimation U-Net (DAIN.get_MonoNet5 and forward_singlePath)


def _upsample_bilinear(scale: int) -> nn.Upsample:
    """``nn.Upsample(mode='bilinear')`` as torch 1.0 ran it: ``align_corners=False``."""
    return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)


def mono_net(cin: int, cout: int) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """``get_MonoNet5``: the flat layer list of the U-Net body and its two output heads."""
    body: list[nn.Module] = [nn.Conv2d(cin, 16, 3, 1, 1), nn.ReLU()]
    for a, b in ((16, 32), (32, 64), (64, 128), (128, 256), (256, 512)):
        body += [nn.Conv2d(a, b, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2)]
    body += [nn.Conv2d(512, 512, 3, 1, 1), nn.ReLU()]
    for a, b in ((512, 256), (256, 128), (128, 64), (64, 32), (32, 16)):
        body += [_upsample_bilinear(2), nn.Conv2d(a, b, 3, 1, 1), nn.ReLU()]

    def head() -> nn.ModuleList:
        return nn.ModuleList([nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, cout, 3, 1, 1)])

    return nn.ModuleList(body), head(), head()


def single_path(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """``forward_singlePath``: the input of every pooling layer is added to the output of the
    matching upsampling layer (a stack: the last pooled is the first added)."""
    stack = []
    for layer in layers:
        if isinstance(layer, (nn.AvgPool2d, nn.MaxPool2d)):
            stack.append(x)
        x = layer(x)
        if isinstance(layer, nn.Upsample):
            x = x + stack.pop()
    return x


# --------------------------------------------------------------------------------------------
# the whole network


class DAINNet(nn.Module):
    """``DAIN_slowmotion(channel=3, filter_size=4, training=False)``, state-dict compatible."""

    filter_size = 4
    div_flow = 20.0

    def __init__(self):
        super().__init__()
        fs2 = self.filter_size ** 2
        self.initScaleNets_filter, self.initScaleNets_filter1, self.initScaleNets_filter2 = \
            mono_net(3 * 2, fs2)
        self.ctxNet = ContextNet()
        ctx_ch = 3 * 64 + 3
        self.rectifyNet = RectifyNet(3 + 3 + 3 + 2 * 1 + 2 * 2 + 16 * 2 + 2 * ctx_ch, 128)
        self.flownets = PWCDCNet()
        self.depthNet = megadepth_hourglass()

    def _scaled_flow(self, flow: torch.Tensor, scale: float) -> torch.Tensor:
        """``forward_flownets`` for one time offset: PWC-Net's flow in pixels times ``scale``,
        upsampled to full resolution."""
        return F.interpolate(self.div_flow * flow * scale, scale_factor=4, mode="bilinear",
                             align_corners=False)

    def forward(self, i0: torch.Tensor, i1: torch.Tensor, times: Sequence[float]) -> list[torch.Tensor]:
        """The rectified frames at ``times`` between padded ``i0`` and ``i1`` (B, 3, H, W)."""
        log_depth0, log_depth1 = self.depthNet(i0), self.depthNet(i1)  # one at a time: memory
        ctx0 = torch.cat((self.ctxNet(i0), log_depth0), 1)
        ctx1 = torch.cat((self.ctxNet(i1), log_depth1), 1)
        body = single_path(self.initScaleNets_filter, torch.cat((i0, i1), 1))
        filter0 = single_path(self.initScaleNets_filter1, body)
        filter1 = single_path(self.initScaleNets_filter2, body)
        depth_inv0 = 1e-6 + 1 / torch.exp(log_depth0)
        depth_inv1 = 1e-6 + 1 / torch.exp(log_depth1)
        flow01 = self.flownets(torch.cat((i0, i1), 1))
        flow10 = self.flownets(torch.cat((i1, i0), 1))
        outputs = []
        for t in times:
            flow_t0 = depth_flow_projection(self._scaled_flow(flow01, t), depth_inv0)
            flow_t1 = depth_flow_projection(self._scaled_flow(flow10, 1 - t), depth_inv1)
            warped_ctx0 = filter_interpolation(ctx0, flow_t0, filter0)
            warped_ctx1 = filter_interpolation(ctx1, flow_t1, filter1)
            ref0 = filter_interpolation(i0, flow_t0, filter0)
            ref1 = filter_interpolation(i1, flow_t1, filter1)
            blend = ref0 * (1.0 - t) + ref1 * t
            rectify_input = torch.cat((blend, ref0, ref1, flow_t0, flow_t1, filter0, filter1,
                                       warped_ctx0, warped_ctx1), 1)
            outputs.append(self.rectifyNet(rectify_input) + blend)
        return outputs


# --------------------------------------------------------------------------------------------
# the interpolator


def padded_pair(window: Sequence[Frame], device: torch.device
                ) -> tuple[list[torch.Tensor], tuple[int, int, int, int]]:
    """The window's two frames as replicate-padded tensors (as the official demos pad them), and
    the box ``(top, left, height, width)`` that :func:`cropped_frame` cuts back out."""
    h, w = window[0].shape[:2]
    left, right = _pad_amounts(w)
    top, bottom = _pad_amounts(h)
    padded = F.pad(tensors.frames_to_tensor(window, device), (left, right, top, bottom), mode="replicate")
    return list(padded.split(1)), (top, left, h, w)


def cropped_frame(out: torch.Tensor, box: tuple[int, int, int, int]) -> Frame:
    """A network output, padding cut off, as a :data:`Frame`."""
    top, left, h, w = box
    return tensors.tensor_to_frames(out[:1, :, top:top + h, left:left + w])[0]


class DainInterpolator(Interpolator):
    """Any-t interpolation between the two frames of a window; see the module docstring."""

    def __init__(self, options: ModelOptions):
        self.device = torch.device(options.device)
        self.net = DAINNet().eval()
        path = options.checkpoint_file()
        state = weights.load_checkpoint(path)
        weights.load_into(self.net, state, strip="module.")
        self.net.to(self.device)

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        if len(window) != 2:
            raise ValueError(f"DAIN needs a window of 2 frames, got {len(window)}")
        pair, box = padded_pair(window, self.device)
        with torch.inference_mode():
            outputs = self.net(pair[0], pair[1], list(times))
        return [cropped_frame(out, box) for out in outputs]
