"""DAIN (CVPR 2019): the spec and checkpoint, declared without importing torch; the network and
its custom layers in torch ops are :mod:`slomo.models.dain.network`.
"""

from __future__ import annotations

from ...interpolator import ModelSpec, deferred
from ...weights import Weights

DAIN_VIMEO = Weights(
    name="dain",
    model="dain",
    file="best.pth",
    size=None,
    sha256=None,
    license="MIT",
    description=("DAIN (CVPR 2019), trained on Vimeo-90K: depth-aware flow projection and adaptive "
                 "warping, any t"),
    sources=({"manual": "http://vllab1.ucmerced.edu/~wenbobao/DAIN/best.pth"},),
)


SPEC = ModelSpec(
    name="dain",
    summary="DAIN (CVPR 2019): depth-aware flow projection and adaptive warping, any t",
    factory=deferred(f"{__name__}.network", "DainInterpolator"),
    window=2,
    timesteps="any",
    checkpoints=(DAIN_VIMEO,),
    devices=("cpu", "cuda", "mps"),
)
