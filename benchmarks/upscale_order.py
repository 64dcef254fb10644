"""Which order of the two stages costs less: interpolate then upscale, or upscale then interpolate.

    python benchmarks/upscale_order.py                       # 320x180 -> 640x360, factor 2, upscale 2
    python benchmarks/upscale_order.py --size 480x270 --frames 6 --model rife --upscaler realesr-animevideov3

The parts (one upscale, one interpolation call at the input size and at the upscaled size) are
timed in one process on the same real frames (Big Buck Bunny, resized), interleaved ``--repeats``
times, the minimum of each kept (the run least disturbed by other processes on a shared machine),
and each order's cost for the whole clip is computed from them.
Interpolating first, the upscaler runs on every output frame (``factor`` times the input frames)
and the interpolator at the input size; upscaling first, the upscaler runs on the input frames only
and the interpolator on frames ``upscale``^2 times larger.  Also reported: how far apart the two
orders' in-between frames score against real ones (PSNR): frames at the upscaled size are the
truth, every ``factor``-th one shrunk (area) is the input.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import cv2
import numpy as np

from slomo import interpolator
from slomo.bench import sample_frames
from slomo.frames import from_frame
from slomo.interpolator import ModelOptions
from slomo.models.realesrgan import network as realesrgan

SAMPLE = Path(__file__).resolve().parents[1] / ".cache" / "media" / "bigbuckbunny.mp4"


def best_seconds(call, repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``call`` (the one least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def between(model, frames: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """The in-between frames of each consecutive pair (t = j/factor, j = 1..factor-1)."""
    times = [j / factor for j in range(1, factor)]
    return [out for a, b in itertools.pairwise(frames) for out in model.interpolate([a, b], times)]


def interpolate_first(model, upscaler, frames, factor):
    return [upscaler.upscale(f) for f in between(model, frames, factor)]


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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    frames = sample_frames(SAMPLE, args.frames, width, height)
    model = interpolator.create(args.model, ModelOptions(factor=args.factor))
    upscaler = realesrgan.create(args.upscaler, args.upscale)
    small, big, big_next = frames[0], upscaler.upscale(frames[0]), upscaler.upscale(frames[1])
    times = [j / args.factor for j in range(1, args.factor)]
    # each part alone, interleaved: the least disturbed run of each
    upscale = interpolate_small = interpolate_big = float("inf")
    for _ in range(args.repeats):
        upscale = min(upscale, best_seconds(lambda: upscaler.upscale(small), 1))
        interpolate_small = min(interpolate_small,
                                best_seconds(lambda: model.interpolate(frames[:2], times), 1))
        interpolate_big = min(interpolate_big,
                              best_seconds(lambda: model.interpolate([big, big_next], times), 1))
    pairs, outputs = len(frames) - 1, len(frames) + (len(frames) - 1) * (args.factor - 1)
    costs = {"interpolate then upscale": pairs * interpolate_small + outputs * upscale,
             "upscale then interpolate": len(frames) * upscale + pairs * interpolate_big}
    print(f"{len(frames)} frames {width}x{height}, {args.model} x{args.factor}, {args.upscaler} "
          f"x{args.upscale}: {outputs} output frames; per call: upscale {upscale:.2f} s, interpolate "
          f"{len(times)} frames at {width}x{height} {interpolate_small:.2f} s, "
          f"upscaled {interpolate_big:.2f} s")
    print("| order | seconds | seconds per output frame |\n| --- | --- | --- |")
    for name, seconds in costs.items():
        print(f"| {name} | {seconds:.2f} | {seconds / outputs:.3f} |")
    quality(model, upscaler, args, width, height)


def quality(model, upscaler, args, width: int, height: int) -> None:
    """PSNR of each order's in-between frames against real frames: frames at the upscaled size are
    the truth; every ``factor``-th one, shrunk (area), is the input."""
    from slomo.evaluate import psnr

    count = (args.frames - 1) * args.factor + 1
    truth = sample_frames(SAMPLE, count, width * args.upscale, height * args.upscale)
    inputs = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in truth[::args.factor]]
    wanted = [f for i, f in enumerate(truth) if i % args.factor]
    orders = (("interpolate then upscale", interpolate_first), ("upscale then interpolate", upscale_first))
    for name, order in orders:
        made = order(model, upscaler, inputs, args.factor)
        score = np.mean([psnr(from_frame(m), from_frame(w)) for m, w in zip(made, wanted, strict=True)])
        print(f"{name}: in-between frames {score:.2f} dB PSNR against the real frames")

if __name__ == "__main__":
    main()
