"""FLAVR (CVPR 2021): the model's spec and checkpoints, declared without importing torch.

The network lives in :mod:`slomo.models.flavr.network`, imported when a run creates the model, so
that listing models (``slomo models``) stays light.
"""

from __future__ import annotations

from ...interpolator import Interpolator, ModelOptions, ModelSpec
from ...weights import Weights

#: the run factors the published checkpoints make
FACTORS = (2, 4, 8)


FLAVR_2X = Weights(
    name="flavr-2x",
    model="flavr",
    file="FLAVR_2x.pth",
    size=None,
    sha256=None,
    license="Apache-2.0",
    description="FLAVR unet_18 (CVPR 2021), 2x: the in-between frame from 4 input frames in one pass",
    sources=(
        {"manual": "https://drive.google.com/file/d/1IZe-39ZuXy3OheGJC-fT3shZocGYuNdH/view?usp=sharing"},
    ),
    metadata={"factor": 2},
)

FLAVR_4X = Weights(
    name="flavr-4x",
    model="flavr",
    file="FLAVR_4x.pth",
    size=None,
    sha256=None,
    license="Apache-2.0",
    description="FLAVR unet_18 (CVPR 2021), 4x: all 3 in-between frames from 4 input frames in one pass",
    sources=(
        {"manual": "https://drive.google.com/file/d/1GARJK0Ti1gLH_O0spxAEqzbMwUKqE37S/view?usp=sharing"},
    ),
    metadata={"factor": 4},
)

FLAVR_8X = Weights(
    name="flavr-8x",
    model="flavr",
    file="FLAVR_8x.pth",
    size=None,
    sha256=None,
    license="Apache-2.0",
    description="FLAVR unet_18 (CVPR 2021), 8x: all 7 in-between frames from 4 input frames in one pass",
    sources=(
        {"manual": "https://drive.google.com/file/d/1xoZqWJdIOjSaE2DtH4ifXKlRwFySm5Gq/view?usp=sharing"},
    ),
    metadata={"factor": 8},
)


def _create(options: ModelOptions) -> Interpolator:
    from .network import create  # torch, only once a run needs the network

    return create(options)


SPEC = ModelSpec(
    name="flavr",
    summary="FLAVR (CVPR 2021): 3D U-Net over 4 frames, all 2x/4x/8x frames in one pass",
    factory=_create,
    window=4,
    timesteps="fixed",
    factors=FACTORS,
    checkpoints=(FLAVR_2X, FLAVR_4X, FLAVR_8X),
    devices=("cpu", "cuda"),
    precisions=("fp32", "bf16", "fp16"),
)
