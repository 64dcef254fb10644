"""Which order of the two stages costs less: interpolate then upscale, or upscale then interpolate.

    python benchmarks/upscale_order.py                       # 320x180 -> 640x360, factor 2, upscale 2
    python benchmarks/upscale_order.py --size 480x270 --frames 6 --model rife --upscaler realesr-animevideov3

Both orders run in one process, on the same real frames (Big Buck Bunny, resized), alternating
``--repeats`` times; the minimum of each is reported (the run least disturbed by other processes).
Interpolating first, the upscaler runs on every output frame (``factor`` times the input frames)
and the interpolator at the input size; upscaling first, the upscaler runs on the input frames only
and the interpolator on frames ``upscale``^2 times larger.  Also reported: how far apart the two
orders' frames are (mean 8-bit levels), over the in-between frames.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from slomo import interpolator
from slomo.bench import sample_frames
from slomo.interpolator import ModelOptions
from slomo.models import realesrgan

SAMPLE = Path(__file__).resolve().parents[1] / ".cache" / "media" / "bigbuckbunny.mp4"


def between(model, frames: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """The in-between frames of each consecutive pair (t = j/factor, j = 1..factor-1)."""
    times = [j / factor for j in range(1, factor)]
    return [out for a, b in zip(frames, frames[1:]) for out in model.interpolate([a, b], times)]


def interpolate_first(model, upscaler, frames, factor):
    made = between(model, frames, factor)
    return [upscaler.upscale(f) for f in frames + made][len(frames):]


def upscale_first(model, upscaler, frames, factor):
    return between(model, [upscaler.upscale(f) for f in frames], factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--upscale", type=int, default=2)
    parser.add_argument("--model", default="rife")
    parser.add_argument("--upscaler", default=realesrgan.DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    frames = sample_frames(SAMPLE, args.frames, width, height)
    model = interpolator.create(args.model, ModelOptions(factor=args.factor))
    upscaler = realesrgan.create(args.upscaler, args.upscale)
    orders = {"interpolate then upscale": interpolate_first, "upscale then interpolate": upscale_first}
    best = dict.fromkeys(orders, float("inf"))
    made = {}
    for _ in range(args.repeats):
        for name, order in orders.items():
            start = time.perf_counter()
            made[name] = order(model, upscaler, frames, args.factor)
            best[name] = min(best[name], time.perf_counter() - start)
    outputs = args.frames + (args.frames - 1) * (args.factor - 1)
    print(f"{args.frames} frames {width}x{height}, {args.model} x{args.factor}, {args.upscaler} x{args.upscale}:"
          f" {outputs} output frames")
    print("| order | seconds | seconds per output frame |\n| --- | --- | --- |")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {seconds / outputs:.3f} |")
    first, second = (np.stack(made[name]) for name in orders)
    levels = np.abs(np.rint(first * 255) - np.rint(second * 255)).mean()
    print(f"in-between frames of the two orders differ by {levels:.2f} levels on average")


if __name__ == "__main__":
    main()
