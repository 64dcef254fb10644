"""Disk taken by a chunked run's lossless intermediates, against the final file.

    .venv/bin/python benchmarks/chunk_intermediates.py             # bigbuckbunny 720p, 2x, blend
    .venv/bin/python benchmarks/chunk_intermediates.py --model flow --factor 4

Runs with ``resume=True`` (which keeps every intermediate until the end) and sums their sizes
just before the join closes.  Measured on the 2-core dev machine: 264 frames, intermediates
108.1 MB (0.41 MB per 720p output frame), final 1.9 MB: 56 times.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from slomo import api, bench, chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="blend")
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--chunk-seconds", type=float, default=2.0)
    args = parser.parse_args()
    sizes: list[int] = []
    close = chunks._Join.close

    def measured_close(join):
        sizes.append(sum(path.stat().st_size for path in join.dst.parent.glob(".*.slomo-work/*/*.mkv")))
        return close(join)

    chunks._Join.close = measured_close
    with tempfile.TemporaryDirectory(prefix="slomo-disk-") as tmp:
        result = api.convert(bench.sample_path(), Path(tmp) / "out.mp4", model=args.model, factor=args.factor,
                             chunk_seconds=args.chunk_seconds, resume=True)
        final = os.path.getsize(result.output)
    print(f"{result.frames_out} frames: intermediates {sizes[0] / 1e6:.1f} MB "
          f"({sizes[0] / result.frames_out / 1e6:.2f} MB per frame), final {final / 1e6:.1f} MB: "
          f"{sizes[0] / final:.0f} times")


if __name__ == "__main__":
    main()
