"""glibc's malloc as it comes against slomo's thresholds (``slomo.runtime.keep_freed_frames``).

    .venv/bin/python benchmarks/malloc_reuse.py [--rounds 2]

Each step runs in a fresh process, alternating the two settings: as glibc comes (``import slomo``
told that the user tuned malloc, through a tunable that changes nothing: ``GLIBC_TUNABLES=
glibc.malloc.perturb=0``) and as ``import slomo`` sets it.  Steps, on real 640x272 frames of
``bikes.mp4``: ``colour.to_rgb`` of a decoded frame, ``flow`` and ``rife`` alone at t = 0.5 on
consecutive frames (first call excluded).  Reported: wall and CPU milliseconds a call, and minor
page faults a call (``ru_minflt``), the memory faulted in again.  The machine is shared: compare
the two columns of one round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / ".cache" / "media" / "bikes.mp4"

_STEP = """
import json, resource, sys, time
from slomo import colour, interpolator, io
step, clip = sys.argv[1:3]
reader = io.open_input(clip)
pictures = [p for _, (_, p) in zip(range(14), reader.pictures())]
if step == "to_rgb":
    calls = [lambda p=p: colour.to_rgb(p.video, *p.colour()) for p in pictures] * 10
else:
    model = interpolator.create(step)
    frames = [p.rgb() for p in pictures]
    model.interpolate(frames[:2], [0.5])
    calls = [lambda a=a, b=b: model.interpolate([a, b], [0.5]) for a, b in zip(frames[1:], frames[2:])]
before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for call in calls:
    call()
wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"wall": wall / len(calls) * 1000, "cpu": cpu / len(calls) * 1000,
                  "faults": (after.ru_minflt - before.ru_minflt) / len(calls)}))
"""

SETTINGS = {"glibc default": {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}, "slomo": {}}


def measure(step: str, setting: str) -> dict:
    from slomo import runtime

    env = {key: value for key, value in os.environ.items() if key not in runtime.MALLOC_VARIABLES}
    env.update(SETTINGS[setting])
    out = subprocess.run([sys.executable, "-c", _STEP, step, str(CLIP)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", default="to_rgb,flow,rife")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}")
    print("| step | round | glibc default: wall / CPU ms, faults | slomo: wall / CPU ms, faults "
          "| wall ratio |")
    print("|---|---|---|---|---:|")
    for step in args.steps.split(","):
        for index in range(args.rounds):
            got = {setting: measure(step, setting) for setting in SETTINGS}
            cells = [f"{r['wall']:.2f} / {r['cpu']:.2f}, {r['faults']:.0f}" for r in got.values()]
            ratio = got["glibc default"]["wall"] / got["slomo"]["wall"]
            print(f"| {step} | {index + 1} | {cells[0]} | {cells[1]} | {ratio:.2f}x |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
