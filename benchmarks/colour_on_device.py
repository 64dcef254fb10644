"""YUV <-> RGB per frame: slomo.colour (cv2 on the CPU) against slomo.tensors on each device.

    .venv/bin/python benchmarks/colour_on_device.py                  # the 720p sample, 4 frames a batch
    .venv/bin/python benchmarks/colour_on_device.py --devices cpu,cuda --batch 8 --rounds 9

Times, in ms per frame (median of ``--rounds`` interleaved rounds), decoded yuv420p planes to
float RGB (``in``) and float RGB back to planes (``out``); on CUDA the tensor times include the
integer upload and download and end with a synchronise.  torch runs with ``--threads`` threads.

Measured on the 2-core dev machine (torch 2.13 CPU, 1 torch thread; cv2 with its own threads;
load average 7 from other jobs: ratios only), 2026-11-22, defaults:

    colour (cv2)       in  29.8  out  16.5  ms/frame
    tensors on cpu     in  89.2  out  61.8  ms/frame

The torch path on the CPU is about 3x cv2's: it serves a torch model that runs on the CPU
(seconds a frame for RIFE at 720p here); elsewhere slomo.colour stays the CPU path.

No GPU was available: the cuda rows have not been measured.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import av
import numpy as np
import torch

from slomo import colour, samples, tensors

SAMPLE = Path(__file__).resolve().parents[1] / ".cache" / "media" / "bigbuckbunny.mp4"


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(memoryview(p), np.uint8).reshape(p.height, -1)[:, :p.width] for p in frame.planes]


def _timed(work, device: str) -> float:
    start = time.perf_counter()
    work()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with av.open(str(samples.fetch(SAMPLE))) as container:
        frames = list(itertools.islice(container.decode(video=0), 40, 40 + args.batch))
    space, full = 1, 1  # BT.709, limited: the sample's (unspecified, HD) matrix, named
    planes = [_planes(f) for f in frames]
    rgb = [colour.to_rgb(f, space, full) for f in frames]
    work = {"colour (cv2)": ("cpu", lambda: [colour.to_rgb(f, space, full) for f in frames],
                             lambda: [colour.from_rgb(x, "yuv420p", space, full) for x in rgb])}
    for device in args.devices.split(","):
        on_device = tensors.to_rgb(planes, "yuv420p", space, full, device)
        work[f"tensors on {device}"] = (
            device, lambda d=device: tensors.to_rgb(planes, "yuv420p", space, full, d),
            lambda x=on_device: tensors.from_rgb(x, "yuv420p", space, full))
    times: dict[str, list[list[float]]] = {name: [[], []] for name in work}
    for _ in range(args.rounds):
        for name, (device, into, out_of) in work.items():
            times[name][0].append(_timed(into, device))
            times[name][1].append(_timed(out_of, device))
    for name, (into, out_of) in times.items():
        per_frame = [1000 * statistics.median(t) / args.batch for t in (into, out_of)]
        print(f"{name:18s} in {per_frame[0]:5.1f}  out {per_frame[1]:5.1f}  ms/frame")


if __name__ == "__main__":
    main()
