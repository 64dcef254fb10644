"""Which ``scale`` serves small frames: RIFE on the sample clips shrunk to QCIF (176x144).

    python benchmarks/rife_small_frames.py [--size 176x144] [--models rife,rife-4.0] [--scales 1,2]

Each sample clip (Big Buck Bunny 1280x720, bikes 640x272) is decoded and resized to ``--size``
(OpenCV area averaging), every other frame is dropped and rebuilt by each model at each scale
through the real pipeline (``slomo.evaluate.evaluate_clip``: scene cuts are honoured), and the
mean PSNR against the dropped frames is printed.  ``scale`` 2 runs the flow pyramid at twice
the resolution (the official ``scale_list`` over ``scale``).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from slomo import evaluate, interpolator, samples

MEDIA = Path(__file__).resolve().parents[1] / ".cache/media"
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4")


def small_clip(name: str, width: int, height: int) -> evaluate.Clip:
    """A sample clip shrunk to width x height, as an in-memory evaluation clip at factor 2."""
    frames = []
    with av.open(str(samples.fetch(MEDIA / name))) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))

    def stream():
        for i, rgb in enumerate(frames):
            yield Fraction(i, 25), interpolator.to_frame(rgb) if i % 2 == 0 else rgb

    return evaluate.Clip(f"{Path(name).stem} {width}x{height}", 2, stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="176x144")
    parser.add_argument("--models", default="rife,rife-4.0")
    parser.add_argument("--scales", default="1,2")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    clips = [small_clip(name, width, height) for name in CLIPS]
    print(f"mean PSNR (dB) of the rebuilt frames at {width}x{height}:")
    print("   model      scale  " + "  ".join(f"{c.name:>22s}" for c in clips) + "    both")
    for model in args.models.split(","):
        for scale in map(float, args.scales.split(",")):
            net = interpolator.create(model, interpolator.ModelOptions(scale=scale))
            results = [evaluate.evaluate_clip(net, clip) for clip in clips]
            scores = [float(np.mean([f.psnr for f in r.frames])) for r in results]
            both = float(np.mean([f.psnr for r in results for f in r.frames]))
            print(f"   {model:10s} {scale:4.1f}  " + "  ".join(f"{s:22.3f}" for s in scores)
                  + f"  {both:6.3f}")


if __name__ == "__main__":
    main()
