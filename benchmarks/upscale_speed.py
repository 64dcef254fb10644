"""Upscaler speed and peak memory on this machine: seconds per frame and peak resident memory.

    python benchmarks/upscale_speed.py                                   # every model and size
    python benchmarks/upscale_speed.py --models realesr-animevideov3 --sizes 1080p --scale 2
    python benchmarks/upscale_speed.py --precisions fp32,bf16 --sizes 360p

Inputs are real frames (Big Buck Bunny, ``.cache/media/bigbuckbunny.mp4``) resized to each input
size (``bench.sample_frames``), upscaled by ``--scale`` (2: 360p->720p, 540p->1080p,
720p->1440p, 1080p->4K).  Each case runs in its own process, so its peak resident memory
(``VmHWM``: interpreter, torch and weights included) is the case's alone: one warm-up call on a
small frame, then ``--frames`` timed calls on full frames; the minimum is reported (the run least
disturbed by other processes).  Rows are printed as a Markdown table.
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
SAMPLE = ROOT / ".cache" / "media" / "bigbuckbunny.mp4"
SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080)}
MODELS = ("realesr-animevideov3", "realesrgan-x4plus-anime", "realesrgan-x4plus", "bicubic")


def peak_rss_mb() -> float:
    """This process's peak resident set size (``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_case(model: str, size: str, scale: int, precision: str, frames: int) -> dict:
    """Time ``frames`` upscales of real frames at ``size`` in this process."""
    import cv2
    import numpy as np

    from slomo.bench import sample_frames
    from slomo.models.realesrgan import network as realesrgan

    width, height = SIZES[size]
    inputs = sample_frames(SAMPLE, frames, width, height)
    if model == "bicubic":
        def upscale(frame: np.ndarray) -> np.ndarray:
            return cv2.resize(frame, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
    else:
        upscale = realesrgan.create(model, scale, precision=precision).upscale
    upscale(inputs[0][:64, :64])
    seconds = []
    for frame in inputs:
        start = time.perf_counter()
        out = upscale(frame)
        seconds.append(time.perf_counter() - start)
    assert out.shape == (height * scale, width * scale, 3)
    return {"model": model, "size": size, "out": f"{width * scale}x{height * scale}", "precision": precision,
            "s_per_frame": min(seconds), "peak_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default="360p,540p,720p")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # one case, in a fresh process: print its result as JSON
        print(json.dumps(run_case(args.models, args.sizes, args.scale, args.precisions, args.frames)))
        return
    print(f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at start")
    print("| model | input -> output | precision | s/frame | peak MB |\n|---|---|---|---:|---:|")
    for model in args.models.split(","):
        for size in args.sizes.split(","):
            for precision in args.precisions.split(","):
                cmd = [sys.executable, __file__, "--case", "--models", model, "--sizes", size,
                       "--scale", str(args.scale), "--precisions", precision, "--frames", str(args.frames)]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"| {model} | {size} -> {row['out']} | {precision} | {row['s_per_frame']:.2f} | "
                      f"{row['peak_mb']:.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
