"""DAIN (or MEMC-Net) speed and memory with random weights, driven as the pipeline drives it.

    .venv/bin/python benchmarks/dain_speed.py                       # 360p and 720p, 1 frame each
    .venv/bin/python benchmarks/dain_speed.py --sizes 640x360 --frames 2 --times 3
    .venv/bin/python benchmarks/dain_speed.py --model memc-net

Each size runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own.  One call
is one window of two frames; ``--times N`` asks it for N in-between frames (t = j/(N+1)), which
share the depth, context, kernel and flow networks and differ only in projection, warping and
the rectification network (MEMC-Net: t = 0.5 only).  Speed does not depend on the weights'
values.
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


def _child(model_name: str, width: int, height: int, calls: int, n_times: int, device: str,
           threads: int | None) -> dict:
    import numpy as np
    import torch

    from slomo.interpolator import ModelOptions, create
    from slomo.models.dain.network import DAINNet
    from slomo.models.memcnet.network import MEMCNet

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pth"
        net = DAINNet() if model_name == "dain" else MEMCNet()
        for name, tensor in net.state_dict().items():  # random, small enough to stay finite
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point():
                std = 0.5 / tensor[0].numel() ** 0.5 if tensor.dim() > 1 else 0.01
                torch.nn.init.normal_(tensor, std=std)
        torch.save(net.state_dict(), path)
        del net
        model = create(model_name, ModelOptions(weights=path, device=device))
    rng = np.random.default_rng(0)
    frames = [rng.random((height, width, 3), dtype=np.float32) for _ in range(calls + 1)]
    times = [j / (n_times + 1) for j in range(1, n_times + 1)]
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = timed_calls([lambda k=k: model.interpolate(frames[k:k + 2], times) for k in range(calls)],
                          device)
    return {
        "model": model_name,
        "size": f"{width}x{height}",
        "device": device,
        "threads": torch.get_num_threads(),
        "times_per_call": n_times,
        "s_per_call": [round(s, 1) for s in seconds],
        "output_fps": round(n_times * len(seconds) / sum(seconds), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_run_mib": round(rss_start / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dain", choices=("dain", "memc-net"))
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--frames", type=int, default=1, help="calls (windows) to time per size")
    parser.add_argument("--times", type=int, default=1, help="in-between frames per call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        width, height = map(int, args.child.split("x"))
        print(json.dumps(_child(args.model, width, height, args.frames, args.times, args.device,
                                args.threads)))
        return
    for size in args.sizes.split(","):
        cmd = [sys.executable, __file__, "--model", args.model, "--child", size, "--frames", str(args.frames),
               "--times", str(args.times), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
