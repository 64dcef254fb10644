"""BIN (CVPR 2020): the spec and checkpoint of the joint deblurring and interpolation model,
declared without importing torch; the network is :mod:`slomo.models.bin.network`.
"""

from __future__ import annotations

from ...interpolator import DEFAULT_MODEL, ModelSpec, deferred
from ...weights import Weights

BIN_ADOBE = Weights(
    name="bin",
    model="bin",
    file="adobe_bin.pth",
    size=None,
    sha256=None,
    license="unspecified (laomao0/BIN publishes no license)",
    description="BIN bin_stage4 (CVPR 2020), trained on Adobe240 blur: joint deblurring and 2x interpolation",
    sources=(
        {"manual": "https://drive.google.com/file/d/1FtuZTKeExX2rrlyNGnWpxd8wGWZTftMg/view?usp=sharing"},
        {"manual": "https://drive.google.com/open?id=1KGu8bLcIHODGQKw8fZ4NCVB1VgSVepo9"},
    ),
    metadata={"factor": 2},
)


SPEC = ModelSpec(
    name="bin",
    summary="BIN (CVPR 2020): joint deblurring and 2x interpolation of blurry video",
    factory=deferred(f"{__name__}.network", "_create"),
    window=6,
    timesteps="fixed",
    factors=(2,),
    checkpoints=(BIN_ADOBE,),
    devices=("cpu", "cuda", "mps"),
    precisions=("fp32", "bf16", "fp16"),
    followed_by=DEFAULT_MODEL,
    restores_keyframes=True,
    stateful=True,
    aliases=("deblur",),
)
