"""torch's OpenMP threads spinning or waiting passively, beside one other busy process.

    python benchmarks/thread_wait.py [--rounds 2]

RIFE (``rife``, fp32, 2 torch threads) on real 640x272 frames (``bikes.mp4``), seconds per
interpolated frame, in fresh processes with ``OMP_WAIT_POLICY=ACTIVE`` (OpenMP's spinning, which
torch gets unless told otherwise) and ``PASSIVE`` (what ``import slomo`` sets), alternated, while
one other process keeps a core busy, as the decoder and encoder threads of a run do.  Also the
same with 1 torch thread, and all three with no busy process added (the machine's other load stays).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

MODEL_ALONE = """
import sys, time
import av, numpy as np, torch
from slomo import interpolator, samples
from pathlib import Path
torch.set_num_threads(int(sys.argv[1]))
clip = samples.fetch(Path(sys.argv[2]))
frames = [f.to_ndarray(format="rgb24").astype(np.float32) / 255
          for _, f in zip(range(8), av.open(str(clip)).decode(video=0))]
model = interpolator.create("rife")
model.interpolate(frames[:2], [0.5])
started = time.perf_counter()
for k in range(1, 7):
    model.interpolate(frames[k:k + 2], [0.5])
print((time.perf_counter() - started) / 6)
"""
CLIP = os.path.join(os.path.dirname(__file__), "..", ".cache", "media", "bikes.mp4")


def seconds_per_frame(policy: str, threads: int) -> float:
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    out = subprocess.run([sys.executable, "-c", MODEL_ALONE, str(threads), CLIP], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cases = [("ACTIVE", 2), ("PASSIVE", 2), ("PASSIVE", 1)]
    for busy in (True, False):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(0.5)
            results: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
            for _ in range(args.rounds):
                for case in cases:
                    results[case].append(seconds_per_frame(*case))
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
        print(f"{'one more busy process' if busy else 'no busy process added'} "
              f"(load average {os.getloadavg()[0]:.1f}), s per frame, best of {args.rounds}:")
        for (policy, threads), values in results.items():
            print(f"   OMP_WAIT_POLICY={policy:7s} {threads} torch thread(s): {min(values):.3f}")


if __name__ == "__main__":
    main()
