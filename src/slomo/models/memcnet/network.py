"""MEMC-Net: Motion Estimation and Motion Compensation Driven Neural Network for Video Interpolation
(Bao et al., TPAMI 2019), in pure PyTorch.

The network is the authors' ``MEMC_Net`` (``networks/MEMC_Net.py`` of
https://github.com/baowenbo/MEMC-Net, MIT), written again here with the same module names, so
the released ``MEMC-Net_best.pth`` loads unchanged with strict keys.  It shares DAIN's custom
layers (:mod:`slomo.models.dain`): the official code has them as CUDA kernels
(``my_package/src/my_lib_kernel.cu``, for torch 0.2).

The inference forward (``training=False``, two padded frames ``I0``, ``I1``), t = 0.5 only:

- ``flownets`` (FlowNetS without batch norm) gives ``F_01`` and ``F_10`` at a quarter of the
  resolution; each is scaled by ``20 / 2`` and upsampled 4x bilinearly, corner-aligned (torch
  0.2's ``nn.Upsample``).
- flow projection (the depth-aware one with unit weights, holes filled from the left, right and
  top only: the official fill kernel's downward search is disabled by a typo) gives ``F_t0`` and
  ``F_t1``.
- two U-Nets with batch norm and additive skips (``initScaleNets_filter``,
  ``initScaleNets_occlusion``), each with two heads, give a 4x4 kernel per pixel and an
  occlusion weight (``0.5 +`` the head) per frame.
- adaptive warping of both frames; the output is ``occ0 * warped0 + occ1 * warped1`` plus
  ``rectifyNet`` (8 plain convs) over it, the flows, kernels and occlusions, clamped to ``[0, 1]``.

Frames are padded as the official demo pads them (the same as DAIN's).  The torch 0.2 checkpoint
has no batch-norm ``num_batches_tracked`` counters (added in torch 0.4, unused in evaluation);
they are filled in with 0 before the strict load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import weights
from ...interpolator import Frame, Interpolator, ModelOptions
from ..dain.network import (
    cropped_frame,
    depth_flow_projection,
    filter_interpolation,
    padded_pair,
    single_path,
)

# --------------------------------------------------------------------------------------------
# FlowNetS (networks/FlowNetS/FlowNetS.py, batchNorm=False), module names as the official


def _conv(cin: int, cout: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2),
                         nn.LeakyReLU(0.1))


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.1))


class FlowNetS(nn.Module):
    """``flownets()``: flow from the first to the second image at a quarter of the resolution,
    in units of 1/20 pixel."""

    predict_flow6: nn.Module  # registered by name in __init__'s loop; declared for forward's direct call

    def __init__(self):
        super().__init__()
        self.conv1 = _conv(6, 64, 7, 2)
        self.conv2 = _conv(64, 128, 5, 2)
        self.conv3 = _conv(128, 256, 5, 2)
        self.conv3_1 = _conv(256, 256)
        self.conv4 = _conv(256, 512, stride=2)
        self.conv4_1 = _conv(512, 512)
        self.conv5 = _conv(512, 512, stride=2)
        self.conv5_1 = _conv(512, 512)
        self.conv6 = _conv(512, 1024, stride=2)
        self.conv6_1 = _conv(1024, 1024)
        self.deconv5 = _deconv(1024, 512)
        self.deconv4 = _deconv(1026, 256)
        self.deconv3 = _deconv(770, 128)
        self.deconv2 = _deconv(386, 64)
        for level, cin in ((6, 1024), (5, 1026), (4, 770), (3, 386), (2, 194)):
            setattr(self, f"predict_flow{level}", nn.Conv2d(cin, 2, 3, 1, 1, bias=False))
        for level in (6, 5, 4, 3):
            setattr(self, f"upsampled_flow{level}_to_{level - 1}",
                    nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_conv2 = self.conv2(self.conv1(x))
        out_conv3 = self.conv3_1(self.conv3(out_conv2))
        out_conv4 = self.conv4_1(self.conv4(out_conv3))
        out_conv5 = self.conv5_1(self.conv5(out_conv4))
        x = self.conv6_1(self.conv6(out_conv5))
        flow = self.predict_flow6(x)
        for level, skip in ((5, out_conv5), (4, out_conv4), (3, out_conv3), (2, out_conv2)):
            up_flow = getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flow)
            x = torch.cat((skip, getattr(self, f"deconv{level}")(x), up_flow), 1)
            flow = getattr(self, f"predict_flow{level}")(x)
        return flow


# --------------------------------------------------------------------------------------------
# the U-Nets (MEMC_Net.get_MonoNet5, get_RectifyNet2)


def _conv_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU()]


def mono_net(cin: int, cout: int) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """``get_MonoNet5``: the flat layer list of the U-Net body and its two output heads."""
    body = _conv_relu(cin, 32) + _conv_relu(32, 32)
    for a, b in ((32, 32), (32, 64), (64, 128), (128, 256), (256, 512)):
        if a != b:
            body += _conv_relu(a, b)
        body += _conv_relu(b, b) + [nn.BatchNorm2d(b), nn.MaxPool2d(2)]
    body += _conv_relu(512, 512) + _conv_relu(512, 512)
    for a, b in ((512, 512), (512, 256), (256, 128), (128, 64), (64, 32)):
        if a != b:
            body += _conv_relu(a, b)
        # torch 0.2's bilinear nn.Upsample aligns corners
        body += _conv_relu(b, b) + [nn.BatchNorm2d(b),
                                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)]
    body += _conv_relu(32, 16)

    def head() -> nn.ModuleList:
        return nn.ModuleList([nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, cout, 3, 1, 1)])

    return nn.ModuleList(body), head(), head()


def rectify_net(cin: int, cout: int) -> nn.ModuleList:
    """``get_RectifyNet2``: seven 3x3 conv + ReLU layers of 64 channels and a 3x3 conv out."""
    layers = _conv_relu(cin, 64)
    for _ in range(6):
        layers += _conv_relu(64, 64)
    return nn.ModuleList(layers + [nn.Conv2d(64, cout, 3, 1, 1)])


class MEMCNet(nn.Module):
    """``MEMC_Net(channel=3, filter_size=4, training=False)``, state-dict compatible."""

    filter_size = 4
    div_flow = 20.0

    def __init__(self):
        super().__init__()
        fs2 = self.filter_size ** 2
        self.initScaleNets_filter, self.initScaleNets_filter1, self.initScaleNets_filter2 = \
            mono_net(3 * 2, fs2)
        self.initScaleNets_occlusion, self.initScaleNets_occlusion1, self.initScaleNets_occlusion2 = \
            mono_net(3 * 2, 1)
        self.rectifyNet = rectify_net(3 + 4 + 32 + 2, 3)
        self.flownets = FlowNetS()

    def _projected_flow(self, pair: torch.Tensor) -> torch.Tensor:
        """``FlowProject(forward_flownets(...))``: the flow from the middle back to the first image."""
        flow = self.div_flow * self.flownets(pair) / 2.0
        flow = F.interpolate(flow, scale_factor=4, mode="bilinear", align_corners=True)
        return depth_flow_projection(flow, torch.ones_like(flow[:, :1]), search_down=False)

    def forward(self, i0: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
        """The rectified midpoint of padded ``i0`` and ``i1`` (B, 3, H, W)."""
        pair = torch.cat((i0, i1), 1)
        flow_t0 = self._projected_flow(pair)
        flow_t1 = self._projected_flow(torch.cat((i1, i0), 1))
        body = single_path(self.initScaleNets_filter, pair)
        filter0 = single_path(self.initScaleNets_filter1, body)
        filter1 = single_path(self.initScaleNets_filter2, body)
        body = single_path(self.initScaleNets_occlusion, pair)
        occlusion0 = 0.5 + single_path(self.initScaleNets_occlusion1, body)
        occlusion1 = 0.5 + single_path(self.initScaleNets_occlusion2, body)
        blend = (occlusion0 * filter_interpolation(i0, flow_t0, filter0)
                 + occlusion1 * filter_interpolation(i1, flow_t1, filter1))
        rectify_input = torch.cat((blend, flow_t0, flow_t1, filter0, filter1, occlusion0, occlusion1), 1)
        return blend + single_path(self.rectifyNet, rectify_input)


def with_batch_norm_counters(net: nn.Module, state: dict, prefix: str = "module.") -> dict:
    """``state`` (its ``prefix`` removed) with a zero ``num_batches_tracked`` for every batch norm
    of ``net`` that lacks one, as torch < 0.4 saved none."""
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    for name, module in net.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            state.setdefault(f"{name}.num_batches_tracked", torch.tensor(0))
    return state


class MemcNetInterpolator(Interpolator):
    """The midpoint of the two frames of a window; see the module docstring."""

    def __init__(self, options: ModelOptions):
        self.device = torch.device(options.device)
        self.net = MEMCNet().eval()
        path = options.checkpoint_file()
        state = weights.load_checkpoint(path)
        weights.load_into(self.net, with_batch_norm_counters(self.net, state), strip="")
        self.net.to(self.device)

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        if len(window) != 2:
            raise ValueError(f"MEMC-Net needs a window of 2 frames, got {len(window)}")
        if any(abs(t - 0.5) > 1e-6 for t in times):
            raise ValueError(f"MEMC-Net produces t = 0.5 only, not {list(times)}")
        pair, box = padded_pair(window, self.device)
        with torch.inference_mode():
            out = self.net(pair[0], pair[1])
        return [cropped_frame(out, box)] * len(times)
