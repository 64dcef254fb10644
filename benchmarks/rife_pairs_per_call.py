"""RIFE: several consecutive pairs in one call against one call a pair, as the pipeline makes them.

    .venv/bin/python benchmarks/rife_pairs_per_call.py                      # CPU, 4 pairs, 2x, bikes.mp4
    .venv/bin/python benchmarks/rife_pairs_per_call.py --factor 4
    .venv/bin/python benchmarks/rife_pairs_per_call.py --device cuda --precision fp16 --pairs 8 \\
        --clip .cache/media/bbb1080.mp4

The first ``--pairs`` + 1 frames of ``--clip`` are decoded as the pipeline decodes them, and the
pairs' in-between frames at ``--factor`` are made by ``interpolate_pictures_batch`` (one call) and
by ``interpolate_pictures`` (one call a pair), alternately, ``--rounds`` times; the input cache is
cleared before each, so both prepare the same frames.  Prints the median seconds of each and
their ratio.  On CUDA the pictures take the device path and each call ends with a synchronise.

Measured on the 2-core dev machine (torch 2.13 CPU, 2 threads, load average 1 to 1.6 from other
jobs: ratios only), 2026-11-22, v4.25 fp32, 640x272:

    --rounds 15:             4 pairs in one call 0.617 s, in 4 calls 0.574 s (one call 1.08x the time)
    --factor 4 --rounds 7:   4 pairs in one call 1.994 s, in 4 calls 1.594 s (one call 1.25x the time)

So on the CPU RIFE takes one pair a call (``pairs_per_call`` 1).  No GPU was available: the
CUDA gain that ``pairs_per_call`` > 1 is for has not been measured.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _speed import timed_calls  # noqa: E402

from slomo import interpolator, io, samples  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / ".cache" / "media" / "bikes.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--model", default="rife")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    reader = io.VideoReader(samples.fetch(args.clip) if args.clip == CLIP else args.clip)
    try:
        pictures = [picture for _, picture in itertools.islice(reader.pictures(), args.pairs + 1)]
    finally:
        reader.close()
    options = interpolator.ModelOptions(device=args.device, precision=args.precision, factor=args.factor)
    model = interpolator.create(args.model, options)
    for picture in pictures:
        model.prepare(picture)
    windows = [pictures[i:i + 2] for i in range(args.pairs)]
    times = [[j / args.factor for j in range(1, args.factor)]] * args.pairs

    def one_call() -> None:
        model.reset()
        model.interpolate_pictures_batch(windows, times)

    def a_call_a_pair() -> None:
        model.reset()
        for window, ts in zip(windows, times, strict=True):
            model.interpolate_pictures(window, ts)

    timed_calls([one_call, a_call_a_pair], args.device)  # warm-up
    seconds = timed_calls([one_call, a_call_a_pair] * args.rounds, args.device)
    together, apart = statistics.median(seconds[0::2]), statistics.median(seconds[1::2])
    size = f"{pictures[0].width}x{pictures[0].height}"
    print(f"{args.model} {args.precision} on {args.device}, {size}, {args.factor}x, median of {args.rounds}:")
    print(f"  {args.pairs} pairs in one call {together:.3f} s, in {args.pairs} calls {apart:.3f} s "
          f"(one call takes {together / apart:.2f}x the time)")


if __name__ == "__main__":
    main()
