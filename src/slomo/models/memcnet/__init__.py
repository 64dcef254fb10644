"""MEMC-Net (TPAMI 2019): the spec and checkpoint, declared without importing torch; the network
is :mod:`slomo.models.memcnet.network`.
"""

from __future__ import annotations

from ...interpolator import ModelSpec, deferred
from ...weights import Weights

MEMC_NET_VIMEO = Weights(
    name="memc-net",
    model="memc-net",
    file="MEMC-Net_best.pth",
    size=None,
    sha256=None,
    license="MIT",
    description=("MEMC-Net (TPAMI 2019), trained on Vimeo-90K: flow projection, adaptive warping and "
                 "occlusion, t = 0.5"),
    sources=({"manual": "http://vllab1.ucmerced.edu/~wenbobao/MEMC-Net/MEMC-Net_best.pth"},),
)


SPEC = ModelSpec(
    name="memc-net",
    summary="MEMC-Net (TPAMI 2019): flow projection and adaptive warping with occlusion, t = 0.5",
    factory=deferred(f"{__name__}.network", "MemcNetInterpolator"),
    window=2,
    timesteps="midpoint",
    checkpoints=(MEMC_NET_VIMEO,),
    devices=("cpu", "cuda", "mps"),
)
