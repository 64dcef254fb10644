"""The ``flow`` model alone, this checkout against another commit, side by side in one run.

    git archive COMMIT src | tar -x -C /tmp/flow-old
    .venv/bin/python benchmarks/flow_speed.py --old /tmp/flow-old/src [--rounds 5] [--pairs 10]

Every measurement is a fresh child process, old and new alternating (``PYTHONPATH=<old>`` or this
checkout's ``src``), on consecutive real frames decoded with PyAV: ``bikes.mp4`` (640x272) and
``bbb1080.mp4`` (1920x1080; where absent, ``bigbuckbunny.mp4`` resized to 1920x1080 with
``cv2.resize``).  A child calls ``interpolate`` once per pair, as the pipeline does, with t = 0.5,
then over the pairs again with t = 0.25, 0.5, 0.75 in one call; the first call (building the
model's caches) is not counted.  Reported: milliseconds a pair, median over the rounds of each
child's mean (wall, and CPU of all threads), the load average before and after.  The machine may
be shared: compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".cache" / "media"
CALLS = {"t=0.5": [0.5], "3 timesteps": [0.25, 0.5, 0.75]}

_CHILD = """
import json, sys, time, resource
import av, cv2
from slomo import frames, interpolator
clip, width, height, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with av.open(clip) as container:
    decoded = [f.to_ndarray(format="rgb24") for _, f in zip(range(count + 1), container.decode(video=0))]
rgb = [frames.to_frame(cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                       if f.shape[:2] != (height, width) else f) for f in decoded]
model = interpolator.create("flow")
model.interpolate(rgb[-2:], [0.5])
result = {}
for name, times in json.loads(sys.argv[5]).items():
    cpu, started = time.process_time(), time.perf_counter()
    for a, b in zip(rgb, rgb[1:]):
        model.interpolate([a, b], times)
    result[name] = {"wall": (time.perf_counter() - started) / count * 1000,
                    "cpu": (time.process_time() - cpu) / count * 1000}
print(json.dumps(result))
"""


def clips() -> dict[str, tuple[Path, int, int]]:
    full_hd = MEDIA / "bbb1080.mp4"
    return {"640x272": (MEDIA / "bikes.mp4", 640, 272),
            "1920x1080": (full_hd if full_hd.exists() else MEDIA / "bigbuckbunny.mp4", 1920, 1080)}


def measure(src: str, clip: Path, width: int, height: int, pairs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(clip), str(width), str(height), str(pairs),
                          json.dumps(CALLS)], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the src folder of the code to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=10, help="pairs a child interpolates per call kind")
    args = parser.parse_args()
    sources = {"old": str(Path(args.old).resolve()), "new": str(ROOT / "src")}
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}")
    print("| frames | call | old: wall / CPU ms a pair | new: wall / CPU ms a pair | speed-up (wall) |")
    print("|---|---|---:|---:|---:|")
    for size, (clip, width, height) in clips().items():
        runs: dict[str, list[dict]] = {name: [] for name in sources}
        for _ in range(args.rounds):
            for name, src in sources.items():
                runs[name].append(measure(src, clip, width, height, args.pairs))
        for call in CALLS:
            medians = {name: {key: statistics.median(r[call][key] for r in got) for key in ("wall", "cpu")}
                       for name, got in runs.items()}
            old, new = medians["old"], medians["new"]
            print(f"| {size} | {call} | {old['wall']:.1f} / {old['cpu']:.1f} | {new['wall']:.1f} / "
                  f"{new['cpu']:.1f} | {old['wall'] / new['wall']:.2f}x |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
