"""Peak memory per pixel of each model and of a whole run: the figures behind ``memory_per_pixel``.

    .venv/bin/python benchmarks/memory_per_pixel.py blend flow rife                  # 8 timesteps
    .venv/bin/python benchmarks/memory_per_pixel.py blend flow rife --modes model --timesteps 1

Each case runs in a fresh process and reports its peak resident set (``VmHWM``):

- ``model``: the model built, then ``interpolate`` called twice on one window of random frames
  with ``--timesteps`` timesteps (8, ``TIMESTEP_BATCH``, is the most the pipeline asks at once);
- ``run``: a whole ``slomo.convert(..., factor=2)`` of a 24-frame clip (decode, queues, model,
  libx264 encode).

A figure is the slope between two frame sizes (640x360 and 1280x720), in bytes per pixel: the
interpreter, torch and the weights, which do not grow with the frame, drop out.

Measured 2026-11-22 on the 2-core dev machine (torch 2.13 CPU, fp32), peaks at 640x360 / 1280x720:

    model, 1 timestep    blend  48 B/px (267 / 298 MiB)   flow 182 B/px (301 / 421 MiB)
                         rife  408 B/px (399 / 668 MiB)
    model, 8 timesteps   blend 132 B/px (285 / 372 MiB)   flow 287 B/px (324 / 513 MiB)
                         rife 2130 B/px (910 / 2314 MiB)
    run, factor 2        blend 513 B/px (409 / 747 MiB)   flow 651 B/px (433 / 862 MiB)

Run again 2026-11-22 18:15 (``--modes run``) once frames crossed the pipeline as decoded planes:

    run, factor 2        blend 204 B/px (171 / 305 MiB)   flow 633 B/px (247 / 664 MiB)
    (the code before it, the same hour: blend 565 B/px (212 / 585 MiB), flow 631 B/px (245 / 661 MiB))

Run again 2026-11-22 20:48 once flow's arithmetic moved to OpenCV calls (fewer temporaries, the
last pair's arrays freed before the next pair's), side by side with the code before it:

    model, 1 / 8 timesteps   flow 166 / 238 B/px (117 / 227, 133 / 290 MiB)
    run, factor 2            flow 592 B/px (241 / 631 MiB)
    (the code before it: 183 / 290 B/px (120 / 240, 144 / 335 MiB); run 646 B/px (243 / 668 MiB))

A spec's ``memory_per_pixel`` is (one timestep, each further one): blend (48, 12), flow (167, 10),
rife (408, 246); the other models are not measured and count for their frames only.
The flow run, whose frames are all float RGB, less flow's figure for the 2 timesteps a factor-2
run may ask (197, by its spec of then, (182, 15)) and the 21 RGB frames the pipeline holds at
most (252), gives ``pipeline.CODEC_BYTES_PER_PIXEL`` (184).  blend mixes the decoded planes (1.5
bytes a pixel at 8-bit 4:2:0, not 12), so its run needs less than ``pipeline.memory_needed`` says
(204 against 496).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = ((640, 360), (1280, 720))


def _peak_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _case(model: str, mode: str, width: int, height: int, count: int) -> int:
    import numpy as np

    import slomo
    from slomo import interpolator

    spec = interpolator.get_spec(model)
    if mode == "model":
        net = interpolator.create(spec.name, interpolator.ModelOptions(device="cpu"))
        rng = np.random.default_rng(0)
        window = [rng.random((height, width, 3), dtype=np.float32) for _ in range(spec.window)]
        times = [(j + 1) / (count + 1) for j in range(count)]
        for _ in range(2):
            net.interpolate(window, times)
        return _peak_bytes()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import moving_frames, write_clip

    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", moving_frames(24, size=(width, height)), audio=False)
        slomo.convert(clip, Path(tmp) / "out.mp4", factor=2, model=model, device="cpu")
    return _peak_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--modes", default="model,run", help="model, run or both")
    parser.add_argument("--timesteps", type=int, default=8, help="timesteps per call in model mode")
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)  # model mode width height
    args = parser.parse_args()
    if args.case:
        model, mode, width, height = args.case
        print(_case(model, mode, int(width), int(height), args.timesteps))
        return
    for model in args.models:
        for mode in args.modes.split(","):
            peaks = [int(subprocess.run([sys.executable, __file__, "-", "--case", model, mode, str(w), str(h),
                                         "--timesteps", str(args.timesteps)],
                                        check=True, capture_output=True, text=True).stdout)
                     for w, h in SIZES]
            pixels = [w * h for w, h in SIZES]
            slope = (peaks[1] - peaks[0]) / (pixels[1] - pixels[0])
            print(json.dumps({"model": model, "mode": mode, "timesteps": args.timesteps,
                              "bytes_per_pixel": round(slope),
                              "peak_mib": [round(p / 2 ** 20) for p in peaks],
                              "sizes": [f"{w}x{h}" for w, h in SIZES]}), flush=True)


if __name__ == "__main__":
    main()
