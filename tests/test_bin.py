"""BIN parity with the authors' demo, and checkpoint import.

``tests/data/bin_reference.pt`` holds 8 blurry 64x96 RGB frames (crops of Big Buck Bunny, each
the mean of 5 consecutive frames) and the 8-bit images that the official ``demo.py``
(laomao0/BIN, ``--time_step 0.5``, ``options/train/train_adobe_stage4.yml``, run once on CPU
with its ``cuda`` calls patched) wrote for them with the seeded weights of :func:`seeded_state`
saved as ``model_weights/adobe_bin.pth``, all as uint8 RGB.  Generated once; the official code is
not part of this repository.

The demo reads blurry frames named ``N = 8j`` and writes, for step j, the files ``N+4``
(``Ft_p[8]``), ``N+8`` (``Ft_p[13]``) and ``N+12`` (``Ft_p[12]``, not at the last step), never
overwriting one.  A blurry file is named by the sharp frame at its centre (the dataset script
averages a window around it, and trains ``Ft_p[8]``, ``[12]``, ``[13]`` on the sharp frames ``I6``,
``I8``, ``I7`` at 2.5, 3.5 and 3 blurry frames after ``B1``), so file ``8j+4`` is the frame halfway
between blurry frames j and j+1 and file ``8j+8`` is the deblurred frame j+1.  The reference's two
lists were stored under the demo's variable names, which say the opposite:

- ``ref["deblurred"][j]``, the demo's ``first_gt_deblur`` files ``8j+4``: the midpoints j + 1/2,
  j = 0..6;
- ``ref["midpoints"][j]``, the demo's ``middle_frame`` files ``8j+8``: the deblurred frames j + 1,
  j = 0..6.  The demo never writes frame 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slomo import interpolator, weights
from slomo.interpolator import ModelOptions, create, get_spec

REFERENCE = Path(__file__).parent / "data" / "bin_reference.pt"

#: modules the official network registers twice (or more) under another name: shared weights
ALIASES = {
    "model.model1_2.": "model.model1_1.",
    "model.model1_3.": "model.model1_1.",
    "model.model1_4.": "model.model1_1.",
    "model.model2_2.": "model.model2_1.",
    "model.model2_3.": "model.model2_1.",
    "model.model3_2.": "model.model3_1.",
}


def _canonical(key: str) -> str:
    for alias, target in ALIASES.items():
        if key.startswith(alias):
            return target + key[len(alias):]
    return key


def seeded_state(gain: float = 0.5) -> dict[str, torch.Tensor]:
    """Deterministic BIN weights in the official on-disk layout (a plain ``state_dict``).

    Every distinct tensor draws from a generator seeded with its index among the sorted keys;
    conv weights have std ``gain / sqrt(fan_in)``, biases std 0.01.  Aliased modules share one
    tensor, as in a ``state_dict`` saved from the official network.
    """
    from slomo.models.bin import BINNet

    shapes = {k: v.shape for k, v in BINNet().state_dict().items()}
    canonical = sorted({_canonical(k) for k in shapes})
    tensors = {}
    for seed, key in enumerate(canonical):
        gen = torch.Generator().manual_seed(seed)
        shape = shapes[key]
        if key.endswith("weight"):
            fan_in = int(np.prod(shape[1:]))
            tensors[key] = torch.randn(shape, generator=gen) * (gain / fan_in ** 0.5)
        else:
            tensors[key] = torch.randn(shape, generator=gen) * 0.01
    return {k: tensors[_canonical(k)] for k in shapes}


def _drive(model, frames: list[np.ndarray]) -> tuple[list, list]:
    """The pipeline's calling convention: windows k-2..k+3 clamped, times [0, 0.5] / [0]."""
    spec = get_spec("bin")
    half = spec.window // 2
    n = len(frames)
    model.reset()
    keys, mids = [], []
    for k in range(n):
        window = [frames[min(max(i, 0), n - 1)] for i in range(k - (half - 1), k + half + 1)]
        times = [0.0, 0.5] if k < n - 1 else [0.0]
        out = model.interpolate(window, times)
        keys.append(out[0])
        if k < n - 1:
            mids.append(out[1])
    return keys, mids


def test_spec():
    spec = get_spec("deblur")
    assert spec.name == "bin"
    assert (spec.window, spec.timesteps, spec.factors) == (6, "fixed", (2,))
    assert spec.restores_keyframes and spec.stateful
    assert weights.entry("bin").model == "bin"


@pytest.mark.slow  # 14 outputs of the full network on CPU
def test_parity_with_official_demo(tmp_path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ref = torch.load(REFERENCE, weights_only=True)
    path = tmp_path / "adobe_bin.pth"
    torch.save(seeded_state(), path)
    model = create("bin", ModelOptions(weights=path))
    frames = [f.numpy().astype(np.float32) / 255.0 for f in ref["blurry"]]
    keys, mids = _drive(model, frames)

    demo_midpoints = ref["deblurred"]  # files 8j+4: frame j + 1/2
    demo_frames = ref["midpoints"]  # files 8j+8: deblurred frame j + 1
    compared = []
    for label, outputs, expected in (("midpoint", mids, demo_midpoints),
                                     ("deblurred", keys[1:], demo_frames)):
        for j, want in enumerate(expected):
            diff = float(np.abs(outputs[j] * 255.0 - want.numpy().astype(np.float32)).max())
            assert diff <= 1.0, f"{label} {j}: max difference {diff:.3f} (8-bit steps)"
            compared.append(label)
    assert len(compared) == 2 * len(frames) - 2
    # frame 0, which the demo never writes, is deblurred too: step -1 on the replicated window
    assert keys[0].shape == frames[0].shape and np.isfinite(keys[0]).all()
    assert np.abs(keys[0] - frames[0]).max() > 0.05


def test_import_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOMO_HOME", str(tmp_path / "home"))
    good = tmp_path / "adobe_bin.pth"
    torch.save(seeded_state(), good)
    target = weights.import_file("bin", good, interpolator.verify_checkpoint)
    assert target == tmp_path / "home" / "bin" / "adobe_bin.pth" and target.is_file()
    assert weights.installed("bin") == target

    state = seeded_state()
    state["model.model1_1.extra.weight"] = state.pop("model.model4_1.UPNet.2.weight")
    bad = tmp_path / "wrong.pth"
    torch.save(state, bad)
    with pytest.raises(weights.WeightsError):
        weights.import_file("bin", bad, interpolator.verify_checkpoint)
