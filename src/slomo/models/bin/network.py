"""BIN: Blurry Video Frame Interpolation (Shen et al., CVPR 2020), our own implementation.

The network is the authors' ``bin_stage4`` (``RDN_residual_interp_5_input_ConvLSTM_L`` in
``models/archs/RDN.py`` of https://github.com/laomao0/BIN, configured by
``options/train/train_adobe_stage4.yml``: ``nframes: 6``), written again here with the same module
names, so the authors' released Adobe240 checkpoint (``adobe_bin.pth``, a plain ``state_dict``)
loads unchanged with strict keys.  It is pure PyTorch; the official code has no custom CUDA ops.

Architecture (all image tensors RGB in ``[0, 1]``, replicate-padded):

- ``RDN(n)``: a residual dense network taking ``n`` images, ``pixel_unshuffle(cat(images), 2)``
  -> 5x5 conv -> 3x3 conv -> 12 residual dense blocks (4 convs, growth 32, 96 features) ->
  global feature fusion -> +skip -> 3x3 conv to 256, ``pixel_shuffle(2)``, 3x3 conv to RGB, plus
  the mean of the ``n`` inputs.  ``model1_1`` (2 inputs, shared as ``model1_2..4``), ``model2_1``
  (3 inputs, shared as ``model2_2..3``), ``model3_1`` (5 inputs, shared as ``model3_2``) and
  ``model4_1`` (5 inputs).  Shared modules appear under every alias in the checkpoint, exactly as
  ``torch.save(net.state_dict())`` wrote them.
- A pyramid over 5 blurry frames ``B1 B3 B5 B7 B9``: stage 1 ``I2' I4' I6' I8'`` from neighbour
  pairs, stage 2 ``I3' I5' I7'``, stage 3 ``I4'' I6''``, stage 4 ``I5''``.  With recurrence
  (stage >= 2) each RDN also takes the previous pass's ConvLSTM hidden state of the matching
  output (``p4' p6' p8' p5'' p7'' p6'''``); without it (first pass) the first input repeats.
- Six ``ConvLSTMCell(3, 3)`` (3x3 conv ``Gates``, forget bias 1) turn a pass's
  ``I4' I6' I8' I5' I7' I6''`` into the next pass's recurrent inputs.

What the official demo (``demo.py`` with ``--time_step 0.5``) does for blurry frames ``0..N-1``:

- step ``i = 0 .. N-2`` reads 6 frames ``i-2 .. i+3``, indices clamped to ``[0, N-1]``,
  replicate-pads them (to the next multiple of 128 per side, centred; 32 on both sides when the
  size already is one), and runs ``netG`` once.  ``netG`` runs the pyramid **twice**: pass 1 on
  frames ``i-2 .. i+2``, then the ConvLSTM cells (state starting at zero), then pass 2 on frames
  ``i-1 .. i+3`` with the hidden states as recurrent inputs.  The ConvLSTM state lives inside one
  ``forward`` call: it starts at zero every step and is carried over exactly one pass
  (``netG.prev_state`` is never used; the demo's ``model.prev_state = None`` touches nothing).
- of the 14 outputs the demo keeps three and names them by time.  A blurry file is named by the
  sharp frame at its centre (``create_dataset_blur_N_frames_average.py``), blurry frames are 8
  names apart, and step ``i`` on the frame named ``N`` writes ``Ft_p[8]`` as ``N+4``, ``Ft_p[13]``
  as ``N+8`` and ``Ft_p[12]`` as ``N+12`` (only while ``i < N-2``).  By those names, and by the
  sharp frames training compares them with (``get_info``: ``I6``, ``I7``, ``I8``, where ``B5`` =
  frame ``i`` is trained on ``I5`` and ``B7`` = frame ``i+1`` on ``I7``), ``Ft_p[8]`` (pass 1
  ``I6''``) is the frame halfway between ``i`` and ``i+1``, ``Ft_p[13]`` (pass 2 ``I5'''``) the
  deblurred frame ``i+1`` and ``Ft_p[12]`` (pass 2 ``I6''``) the frame halfway between ``i+1``
  and ``i+2``.  The demo's variable names (``x0_s``, ``x1_s`` deblurred, ``y_`` interpolated)
  say the opposite of what its files hold; the file names are what a viewer of its output sees.
- it never overwrites an existing file, so the midpoint ``1/2`` comes from step 0's ``Ft_p[8]``,
  the midpoint ``j + 1/2`` (``j >= 1``) from step ``j-1``'s ``Ft_p[12]``, the deblurred frame
  ``j >= 1`` from step ``j-1``'s ``Ft_p[13]``; frame 0 is never written.
- outputs are clamped to ``[0, 1]``, cropped and rounded to 8 bits.

How :class:`BinInterpolator` maps this onto slomo's calling convention (``window=6``: frames
``k-2 .. k+3``, clamped at stream ends and scene cuts; ``interpolate`` for ``k = 0, 1, ...`` in
order with ``times [0, 0.5]``, and ``[0]`` for the last frame):

- ``t = 0``, the deblurred frame ``k``, is step ``k-1``'s ``Ft_p[13]``, and ``t = 0.5`` is step
  ``k-1``'s ``Ft_p[12]``, exactly as the demo writes them.  Step ``k-1`` reads frames
  ``k-3 .. k+2``; its first one feeds no kept output, so the call's own window holds all it needs.
- at the start of a sequence (the first frame of the stream or of a scene, after
  :meth:`~BinInterpolator.reset`, or when a window does not continue the previous call's) the
  midpoint is step ``k``'s ``Ft_p[8]``, as the demo's first midpoint.
- **deviation**: the demo never writes its first frame.  We deblur it too: step ``k-1`` of the
  first frame runs on the window clamped the same way (frames ``k, k, k, k, k+1, k+2``).
- **deviation**: the demo refuses frames larger than 1280x720; we pad any size the same way.
- work the demo repeats is shared, with identical results: a step already run (step ``k`` at the
  start of a sequence is the next call's step ``k-1``) is reused; stage-1 pair outputs and pass
  1's ``I7'`` of a step are the next step's inputs unchanged (same module, same input tensors);
  pass-1 outputs that feed neither a kept output nor the ConvLSTM (``I2' I3' I4'' I5''``), and
  the ConvLSTM update after pass 2, are skipped.  A step costs 9 RDN evaluations instead of the
  official 20, and a sequence of N frames N steps.  Frame 0 of a step's window feeds only pass
  1's ``I2'``, which no kept output depends on, so it is not read at all.

The recurrent state (the ConvLSTM) is per step, as in the official code; ``stateful=True``
declares the cross-call cache above, which :meth:`reset` clears.  A cached step is only reused
for the same frames, and its parts only when the new frames continue it, so a caller that skips
frames without calling ``reset`` still gets the demo's results for a fresh start.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import tensors, weights
from ...frames import Frame
from ...interpolator import Interpolator, ModelOptions

# --------------------------------------------------------------------------------------------
# network, module names as in the official RDN.py


class ConvLSTMCell(nn.Module):
    """The official ``ConvLSTMCell``: gates ``i, j, f, o`` from a 3x3 conv, forget bias 1."""

    def __init__(self, input_size: int = 3, hidden_size: int = 3, forget_bias: float = 1.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.Gates = nn.Conv2d(input_size + hidden_size, 4 * hidden_size, 3, padding=1, bias=True)
        self._forget_bias = forget_bias

    def forward(self, x: torch.Tensor, prev_state=None):
        if prev_state is None:
            zeros = x.new_zeros((x.shape[0], self.hidden_size, *x.shape[2:]))
            prev_state = (zeros, zeros)
        c, h = prev_state
        i, j, f, o = self.Gates(torch.cat((x, h), 1)).chunk(4, 1)
        new_c = c * torch.sigmoid(f + self._forget_bias) + torch.sigmoid(i).mul(torch.tanh(j))
        new_h = torch.tanh(new_c).mul(torch.sigmoid(o))
        return new_h, (new_c, new_h)


class RDB_Conv(nn.Module):
    def __init__(self, in_channels: int, grow: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, grow, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    def __init__(self, g0: int, grow: int, n_layers: int):
        super().__init__()
        self.convs = nn.Sequential(*[RDB_Conv(g0 + c * grow, grow) for c in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * grow, g0, 1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """``RDN_residual_interp_{2,2_1,4_1}_input``: ``n_inputs`` images in, one image out."""

    def __init__(self, n_inputs: int, g0: int = 96, depth: int = 12, n_layers: int = 4,
                 grow: int = 32):
        super().__init__()
        self.n_inputs = n_inputs
        self.SFENet1 = nn.Conv2d(12 * n_inputs, g0, 5, padding=2)
        self.SFENet2 = nn.Conv2d(g0, g0, 3, padding=1)
        self.RDBs = nn.ModuleList([RDB(g0, grow, n_layers) for _ in range(depth)])
        self.GFF = nn.Sequential(nn.Conv2d(depth * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1))
        self.UPNet = nn.Sequential(nn.Conv2d(g0, 256, 3, padding=1), nn.PixelShuffle(2),
                                   nn.Conv2d(64, 3, 3, padding=1))

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        # pixel_unshuffle orders channels as the official pixel_reshuffle (c, dy, dx)
        f_1 = self.SFENet1(F.pixel_unshuffle(torch.cat(images, 1), 2))
        x = self.SFENet2(f_1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + f_1
        mean = images[0]
        for image in images[1:]:  # left to right, as the official (B0 + B1 + ...) / n
            mean = mean + image
        return self.UPNet(x) + mean / len(images)


class Pyramid(nn.Module):
    """``RDN_residual_interp_5_input(lstm=True, GO=96, D=12)``: the shared modules and aliases."""

    def __init__(self):
        super().__init__()
        self.model1_1 = RDN(2)
        self.model1_2 = self.model1_1
        self.model1_3 = self.model1_1
        self.model1_4 = self.model1_1
        self.model2_1 = RDN(3)
        self.model2_2 = self.model2_1
        self.model2_3 = self.model2_1
        self.model3_1 = RDN(5)
        self.model3_2 = self.model3_1
        self.model4_1 = RDN(5)


class BINNet(nn.Module):
    """``bin_stage4_lstm()`` (``RDN_residual_interp_5_input_ConvLSTM_L``): state-dict compatible.

    :meth:`step` computes the outputs the demo keeps from one ``forward`` call, reusing pair
    outputs handed in from the previous step (see the module docstring).
    """

    def __init__(self):
        super().__init__()
        self.clstm_4_prime = ConvLSTMCell(3, 3)
        self.clstm_6_prime = ConvLSTMCell(3, 3)
        self.clstm_8_prime = ConvLSTMCell(3, 3)
        self.clstm_5_prime_prime = ConvLSTMCell(3, 3)
        self.clstm_7_prime_prime = ConvLSTMCell(3, 3)
        self.clstm_6_prime_prime_prime = ConvLSTMCell(3, 3)
        self.model = Pyramid()

    def step(self, b: Sequence[torch.Tensor], pairs: list, pass1_i7: torch.Tensor | None) -> dict:
        """One official ``forward`` on padded frames ``b[0..5]`` (= B1 B3 B5 B7 B9 B11).

        ``pairs[j]`` is ``model1(b[j], b[j+1])`` for ``j = 1..4`` or None (computed here);
        ``pass1_i7`` is pass 1's ``I7'`` of the previous step, which equals this step's pass 1
        ``I5'`` when the window continues.  Returns the kept outputs, named by their time (``b[2]``
        is frame j of the step), and the reusable parts.
        """
        m = self.model
        for j in range(1, 5):
            if pairs[j] is None:
                pairs[j] = m.model1_1(b[j], b[j + 1])
        # pass 1 on B1..B9 = b[0..4], no recurrent inputs (else branch of the official forward)
        i4, i6, i8 = pairs[1], pairs[2], pairs[3]
        i5 = pass1_i7 if pass1_i7 is not None else m.model2_2(i4, i4, i6)
        i7 = m.model2_3(i6, i6, i8)
        i6pp = m.model3_2(i5, b[2], i5, i7, b[3])
        # ConvLSTM, state starting at zero, applied to Ft_p_1[1, 2, 3, 5, 6, 8]
        h4, _ = self.clstm_4_prime(i4)
        h6, _ = self.clstm_6_prime(i6)
        h8, _ = self.clstm_8_prime(i8)
        h5pp, _ = self.clstm_5_prime_prime(i5)
        h7pp, _ = self.clstm_7_prime_prime(i7)
        h6ppp, _ = self.clstm_6_prime_prime_prime(i6pp)
        # pass 2 on B3..B11 = b[1..5], recurrent inputs from the ConvLSTM
        q2, q4, q6, q8 = pairs[1], pairs[2], pairs[3], pairs[4]
        q3 = m.model2_1(h4, q2, q4)
        q5 = m.model2_2(h6, q4, q6)
        q7 = m.model2_3(h8, q6, q8)
        q4pp = m.model3_1(h5pp, b[2], q3, q5, b[3])
        q6pp = m.model3_2(h7pp, b[3], q5, q7, b[4])
        q5pp = m.model4_1(h6ppp, q4, q4pp, q6pp, q6)
        return {
            "midpoint": i6pp,  # Ft_p[8], trained on I6: frame j + 1/2
            "next_frame": q5pp,  # Ft_p[13], trained on I7: deblurred frame j + 1
            "next_midpoint": q6pp,  # Ft_p[12], trained on I8: frame j + 3/2
            "pairs": pairs,
            "pass1_i7": i7,
        }


# --------------------------------------------------------------------------------------------
# the interpolator


def _pad_amounts(size: int) -> tuple[int, int]:
    """The demo's padding of one side length: to the next multiple of 128, centred; 32 each side
    when it already is one."""
    if size % 128:
        total = (size // 128 + 1) * 128 - size
        return total // 2, total - total // 2
    return 32, 32


def _same_frames(a: Sequence[Frame], b: Sequence[Frame]) -> bool:
    return len(a) == len(b) and all(x is y or (x.shape == y.shape and np.array_equal(x, y))
                                    for x, y in zip(a, b, strict=True))


class BinInterpolator(Interpolator):
    """Joint deblurring and 2x interpolation; see the module docstring for the mapping."""

    def __init__(self, options: ModelOptions):
        self.options = options
        self.device = torch.device(options.device)
        self.net = BINNet().eval()
        path = options.checkpoint_file()
        state = weights.load_checkpoint(path)
        weights.load_into(self.net, state, strip="module.")
        self.net.to(self.device)
        self.autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(options.precision)
        self.reset()

    def reset(self) -> None:
        self._step_cache: dict | None = None  # the last step run: its window and outputs
        self._last_window: list[Frame] | None = None  # the window of the last call

    def _to_tensor(self, frame: Frame, pads) -> torch.Tensor:
        left, right, top, bottom = pads
        return F.pad(tensors.frames_to_tensor([frame], self.device), (left, right, top, bottom),
                     mode="replicate")

    def _to_frame(self, t: torch.Tensor, pads, h: int, w: int) -> Frame:
        left, _, top, _ = pads
        return tensors.tensor_to_frames(t[:1, :, top:top + h, left:left + w])[0]

    def _step(self, frames: Sequence[Frame]) -> dict:
        """The demo's step j on ``frames`` j-1 .. j+3 (its window without frame j-2, which feeds no
        kept output): the cached step if it has the same frames, else run, reusing the cached
        step's parts when ``frames`` advance its frames by one."""
        cached = self._step_cache
        if cached is not None and _same_frames(cached["frames"], frames):
            return cached
        h, w = frames[0].shape[:2]
        pads = (*_pad_amounts(w), *_pad_amounts(h))
        if cached is not None and _same_frames(cached["frames"][1:], frames[:4]):
            tensors = cached["tensors"][1:] + [self._to_tensor(frames[4], pads)]
            pairs = [None] + cached["pairs"][2:] + [None]
            pass1_i7 = cached["pass1_i7"]
        else:
            tensors = [None] + [self._to_tensor(f, pads) for f in frames]
            pairs = [None] * 5
            pass1_i7 = None
        with torch.inference_mode(), self._autocast():
            step = self.net.step(tensors, pairs, pass1_i7)
        step.update(frames=list(frames), tensors=tensors, pads=pads)
        self._step_cache = step
        return step

    def _autocast(self):
        if self.autocast is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast)

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        if len(window) != 6:
            raise ValueError(f"BIN needs a window of 6 frames, got {len(window)}")
        h, w = window[0].shape[:2]
        last = self._last_window
        starts = last is None or not _same_frames(last[1:], window[:5])
        self._last_window = list(window)
        before = self._step(window[:5])  # step k-1
        out = []
        for t in times:
            if t == 0:
                src, which = before, "next_frame"
            elif abs(t - 0.5) < 1e-6:
                # the demo's first midpoint of a sequence is step k's; the others step k-1's
                src, which = (self._step(window[1:]), "midpoint") if starts else (before, "next_midpoint")
            else:
                raise ValueError(f"BIN produces t = 0 and t = 0.5 only, not t = {t}")
            out.append(self._to_frame(src[which], src["pads"], h, w))
        return out


def _create(options: ModelOptions) -> BinInterpolator:
    return BinInterpolator(options)
