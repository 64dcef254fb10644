"""BIN speed and memory with random weights, driven as the pipeline drives it.

    .venv/bin/python benchmarks/bin_speed.py                 # 540p and 720p, 4 output frames each
    .venv/bin/python benchmarks/bin_speed.py --sizes 960x540 --frames 6 --device cpu

Each size runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own.  One call
(one frame k: the deblurred frame and the midpoint after it, i.e. 2 output frames) runs one
official step; the first call of a sequence costs more (no shared pair outputs yet) and is
reported separately as warm-up.  frames/s counts output frames (2 per call).

Measured on the 2-core dev machine (AMD EPYC, torch 2.13 CPU, fp32), shared with other jobs
(load average 5-8, so about half the CPU), ``--frames 2``:

    960x540  (padded 1024x640): first call 596 s, then 332 s/call = 0.006 output frames/s, peak RSS 3.0 GiB
    1280x720 (padded 1344x768): first call 776 s, then 588 s/call = 0.0034 output frames/s, peak RSS 4.6 GiB
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _speed import timed_calls


def _child(width: int, height: int, calls: int, device: str, threads: int | None) -> dict:
    import numpy as np
    import torch

    from slomo.interpolator import ModelOptions, create
    from slomo.models.bin.network import BINNet

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "adobe_bin.pth"
        net = BINNet()
        for p in net.parameters():  # random, small enough that activations stay finite
            std = 0.5 / p[0].numel() ** 0.5 if p.dim() > 1 else 0.01
            torch.nn.init.normal_(p, std=std)
        torch.save(net.state_dict(), path)
        del net
        model = create("bin", ModelOptions(weights=path, device=device))
    rng = np.random.default_rng(0)
    n = calls + 3
    frames = [rng.random((height, width, 3), dtype=np.float32) for _ in range(n)]
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    windows = [[frames[min(max(i, 0), n - 1)] for i in range(k - 2, k + 4)] for k in range(calls + 1)]
    times = timed_calls([lambda w=w: model.interpolate(w, [0.0, 0.5]) for w in windows], device)
    steady = times[1:]
    return {
        "size": f"{width}x{height}",
        "device": device,
        "threads": torch.get_num_threads(),
        "first_call_s": round(times[0], 2),
        "s_per_call": round(sum(steady) / len(steady), 2),
        "output_fps": round(2 * len(steady) / sum(steady), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_run_mib": round(rss_start / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="960x540,1280x720")
    parser.add_argument("--frames", type=int, default=4, help="output frames to time per size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = max(1, (args.frames + 1) // 2)
    if args.child:
        width, height = map(int, args.child.split("x"))
        print(json.dumps(_child(width, height, calls, args.device, args.threads)))
        return
    for size in args.sizes.split(","):
        cmd = [sys.executable, __file__, "--child", size, "--frames", str(args.frames),
               "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
