"""FLAVR speed and peak memory at 540p and 1080p, with random weights.

Speed does not depend on the weight values, so no checkpoint download is needed.  Each
configuration runs in a fresh process so that its peak RSS (``ru_maxrss``) is its own.

    python benchmarks/flavr_speed.py                       # 540p and 1080p, 2x and 8x, CPU
    python benchmarks/flavr_speed.py --sizes 960x540 --factors 2 --windows 3
    python benchmarks/flavr_speed.py --device cuda --tile 2000

Reported: seconds per window (one call producing all factor - 1 in-between frames), the output
rate in frames/s (factor frames per window: the in-betweens plus the original), and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from _speed import timed_calls


def run_one(width: int, height: int, factor: int, windows: int, device: str, tile: int | None,
            threads: int | None) -> dict:
    import numpy as np
    import torch

    from slomo.models.flavr import network as flavr

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = flavr.FlavrNet(factor - 1)
    for p in net.parameters():  # unit-gain random weights, like a trained net's scale
        p.data.normal_(0, (p[0].numel() if p.dim() > 1 else 2500) ** -0.5)
    kwargs = {} if tile is None else {"tile": tile}
    model = flavr.Flavr(net, factor, device=device, **kwargs)
    rng = np.random.default_rng(0)
    frames = [rng.random((height, width, 3), dtype=np.float32) for _ in range(windows + 3)]
    times = [j / factor for j in range(1, factor)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elapsed = timed_calls([lambda i=i: model.interpolate(frames[i:i + 4], times) for i in range(windows)],
                          device)
    per_window = sorted(elapsed)[len(elapsed) // 2]
    result = {
        "size": f"{width}x{height}", "factor": factor, "device": device,
        "threads": torch.get_num_threads(), "tile": model.tile,
        "tiles": len(flavr._spans(height, model.tile, model.overlap))
        * len(flavr._spans(width, model.tile, model.overlap)),
        "windows": windows, "s_per_window": round(per_window, 2),
        "out_fps": round(factor / per_window, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "rss_before_gib": round(rss0 / 2**20, 2),
    }
    if device.startswith("cuda"):
        result["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="960x540,1920x1080")
    parser.add_argument("--factors", default="2,8")
    parser.add_argument("--windows", type=int, default=2, help="timed windows per config (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile", type=int, default=None, help="override flavr.TILE")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    factors = [int(f) for f in args.factors.split(",")]
    if args.one:
        (w, h), = sizes
        print(json.dumps(run_one(w, h, factors[0], args.windows, args.device, args.tile,
                                 args.threads)))
        return
    for w, h in sizes:
        for factor in factors:
            cmd = [sys.executable, __file__, "--one", "--sizes", f"{w}x{h}", "--factors",
                   str(factor), "--windows", str(args.windows), "--device", args.device]
            if args.tile is not None:
                cmd += ["--tile", str(args.tile)]
            if args.threads is not None:
                cmd += ["--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(json.dumps({"size": f"{w}x{h}", "factor": factor,
                                  "error": done.stderr.strip().splitlines()[-1:]}), flush=True)
            else:
                print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
