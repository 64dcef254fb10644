"""slomo's own frame path against FFmpeg doing the same job, and how well a run hides it behind a model.

    .venv/bin/python benchmarks/frame_path.py                 # blend vs FFmpeg, then flow hiding
    .venv/bin/python benchmarks/frame_path.py --only blend --pairs 3

- **blend vs FFmpeg**: a 1080p clip (Big Buck Bunny's 720p sample scaled to 1920x1080 with
  bicubic, 132 frames, libx264 crf 16, 25 fps; made once into ``.cache/media/bbb1080.mp4``)
  doubled to 50 fps and encoded with libx264 crf 18 preset medium, yuv420p.  The reference is
  FFmpeg's own ``minterpolate=fps=50:mi_mode=blend`` filter and libx264 encoder, driven from PyAV
  in a child process (decoder and encoder threads as the ``ffmpeg`` command sets them: automatic
  count, frame and slice threading); an ``ffmpeg`` binary is used instead where one is installed.
  slomo is ``python -m slomo CLIP --factor 2 -m blend --crf 18 --preset medium``.  Runs alternate
  (reference, slomo) ``--pairs`` times; each child's wall time and peak resident memory
  (``ru_maxrss`` from ``os.wait4``) are reported, and the time ratio per pair and its median.
- **hiding**: for each of ``--hide`` models, on a sample clip (``--clip``: ``bikes.mp4``, real
  640x272 H.264 footage, 250 frames, or ``bikes-5s.mp4``, its first 137 frames cut without
  re-encoding, the demo's clip), the model alone (``interpolate`` at t = 0.5 on consecutive frames
  already decoded to float RGB, in a child process, the first call's set-up counted as in a run)
  against a whole run (``slomo.convert(CLIP, OUT, factor=2, model=MODEL, crf=18, preset=PRESET)``
  in a child process, imports done before), whose frames/s is its input frames over the seconds it
  reports (decode to encode, the model loaded before).  Alternating, ``--pairs`` times.  Each pair
  also gives the CPU milliseconds an input frame costs the model alone (its loop) and the whole run
  (the ``convert`` call), and the ratio a run could reach at most when CPU time is what it lacks:
  cores x the model's wall time a pair / the run's CPU time an input frame.

- **threads** (``--only threads``): whole ``flow`` runs on ``bikes.mp4`` (preset medium) with
  x264's own thread count (what slomo leaves it) against one thread (``--encoder-opts
  threads=1``), alternating ``--pairs`` times.

- **parts** (``--only parts``): in this process, on the 1080p clip, the CPU seconds of decoding
  plus ``minterpolate`` (FFmpeg's side without its encoder) against slomo's decoding plus
  pipeline (scene detection, blend) with a sink that keeps nothing, and the CPU milliseconds a
  1080p frame costs in each step of slomo's frame path.

The machine is shared: only ratios of runs measured side by side mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".cache" / "media"
CLIP_1080 = MEDIA / "bbb1080.mp4"

_MAKE_CLIP = """
import sys, av
from fractions import Fraction
src, dst = sys.argv[1:3]
with av.open(src) as inp, av.open(dst + ".partial.mp4", "w") as out:
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
    stream.options = {"crf": "16", "preset": "medium"}
    for index, frame in enumerate(inp.decode(video=0)):
        big = frame.reformat(width=1920, height=1080, format="yuv420p", interpolation="BICUBIC")
        big.pts, big.time_base, big.pict_type = index, Fraction(1, 25), 0
        for packet in stream.encode(big):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
"""

#: ``ffmpeg -i SRC -vf minterpolate=fps=50:mi_mode=blend -c:v libx264 -crf 18 -preset medium``
#: through PyAV: the same libavfilter filter and libx264 encoder, threads as ffmpeg sets them.
_REFERENCE = """
import sys, av
from fractions import Fraction
src, dst = sys.argv[1:3]
with av.open(src) as inp, av.open(dst, "w") as out:
    video = inp.streams.video[0]
    video.thread_type = "AUTO"
    graph = av.filter.Graph()
    chain = [graph.add_buffer(template=video), graph.add("minterpolate", "fps=50:mi_mode=blend"),
             graph.add("buffersink")]
    chain[0].link_to(chain[1]); chain[1].link_to(chain[2]); graph.configure()
    stream = out.add_stream("libx264", rate=50)
    stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
    stream.time_base = stream.codec_context.time_base = Fraction(1, 50)
    stream.thread_type = "AUTO"
    stream.options = {"crf": "18", "preset": "medium"}

    def encode(frame):
        for packet in stream.encode(frame):
            out.mux(packet)

    def drain():
        while True:
            try:
                frame = graph.vpull()
            except (av.BlockingIOError, av.EOFError):
                return
            frame.pict_type = 0
            encode(frame)

    for frame in inp.decode(video):
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    encode(None)
"""

_MODEL_ALONE = """
import json, resource, sys, time
from slomo import interpolator, io
model = interpolator.create(sys.argv[2], interpolator.ModelOptions(device="cpu"))
reader = io.open_input(sys.argv[1])
frames = [frame for _, frame in reader.frames()]
reader.close()
usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()  # first call counted
for a, b in zip(frames, frames[1:]):
    model.interpolate([a, b], [0.5])
seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
print(json.dumps({"pairs": len(frames) - 1, "seconds": seconds, "cpu": cpu}))
"""


#: a whole run as ``slomo CLIP -o OUT --factor 2 -m MODEL --crf 18 --preset PRESET`` makes it, through
#: the API so that the CPU time of the run itself is known: the imports and a first creation of the
#: model (torch, weights read once) come before it
_WHOLE_RUN = """
import json, resource, sys
import slomo
from slomo import api, interpolator
clip, out, model, preset = sys.argv[1:5]
interpolator.create(model)
usage = resource.getrusage(resource.RUSAGE_SELF)
result = slomo.convert(clip, out, factor=2, model=model, crf=18, preset=preset, overwrite=True)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
print(json.dumps({"frames_in": result.frames_in, "seconds": result.seconds, "cpu": cpu}))
"""


def _child(command: list[str]) -> tuple[float, float, str, float]:
    """Run ``command``; (wall seconds, peak resident MiB, stdout, CPU seconds)."""
    env = {**os.environ, "SLOMO_HOME": os.environ.get("SLOMO_HOME", str(ROOT / ".cache" / "slomo"))}
    with tempfile.TemporaryFile() as captured:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=captured, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        errors = child.stderr.read().decode() if child.stderr else ""
        captured.seek(0)
        out = captured.read().decode()
    if child.returncode:
        raise RuntimeError(f"{command[:4]}... failed ({child.returncode}): {errors[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime


def make_clip() -> Path:
    """The 1080p test clip, made once."""
    if not CLIP_1080.exists():
        subprocess.run([sys.executable, "-c", _MAKE_CLIP, str(MEDIA / "bigbuckbunny.mp4"), str(CLIP_1080)],
                       check=True)
        os.replace(f"{CLIP_1080}.partial.mp4", CLIP_1080)
    return CLIP_1080


def reference_command(clip: Path, out: Path) -> list[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        return [ffmpeg, "-v", "error", "-y", "-i", str(clip), "-vf", "minterpolate=fps=50:mi_mode=blend",
                "-c:v", "libx264", "-crf", "18", "-preset", "medium", "-pix_fmt", "yuv420p", str(out)]
    return [sys.executable, "-c", _REFERENCE, str(clip), str(out)]


def slomo_command(clip: Path, out: Path, model: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "slomo", str(clip), "--factor", "2", "-m", model, "--crf", "18",
            "--preset", "medium", "-o", str(out), "-y", "-q", *extra]


def blend_vs_ffmpeg(pairs: int) -> None:
    clip = make_clip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_out, our_out = Path(tmp) / "ref.mp4", Path(tmp) / "slomo.mp4"
        reference = reference_command(clip, ref_out)
        shown = "PyAV: minterpolate, libx264" if reference[0] == sys.executable else " ".join(reference)
        print(f"reference: {shown}", flush=True)
        print(f"slomo: {' '.join(slomo_command(clip, our_out, 'blend'))}", flush=True)
        for index in range(pairs):
            ref = _child(reference_command(clip, ref_out))
            ours = _child(slomo_command(clip, our_out, "blend"))
            rows.append((ref[0], ref[1], ours[0], ours[1]))
            print(f"pair {index + 1}: ffmpeg {ref[0]:.1f} s ({ref[3]:.1f} s CPU) {ref[1]:.0f} MiB | slomo "
                  f"{ours[0]:.1f} s ({ours[3]:.1f} s CPU) {ours[1]:.0f} MiB | time {ours[0] / ref[0]:.2f}x, "
                  f"CPU {ours[3] / ref[3]:.2f}x, memory {ours[1] / ref[1]:.2f}x", flush=True)
    print(f"median: time {statistics.median(o / r for r, _, o, _ in rows):.2f}x, peak memory "
          f"{statistics.median(om / rm for _, rm, _, om in rows):.2f}x "
          f"(ffmpeg {statistics.median(r[1] for r in rows):.0f} MiB, "
          f"slomo {statistics.median(r[3] for r in rows):.0f} MiB)")


def hiding(model: str, pairs: int, clip_name: str, preset: str) -> None:
    from slomo import samples

    clip = samples.fetch(MEDIA / clip_name)
    cores = os.cpu_count() or 1
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        for index in range(pairs):
            _, _, alone_text, _ = _child([sys.executable, "-c", _MODEL_ALONE, str(clip), model])
            alone = json.loads(alone_text)
            _, _, run_text, _ = _child([sys.executable, "-c", _WHOLE_RUN, str(clip), str(out), model, preset])
            run = json.loads(run_text)
            alone_fps = alone["pairs"] / alone["seconds"]
            run_fps = run["frames_in"] / run["seconds"]
            ratios.append(run_fps / alone_fps)
            # the best a run can do when CPU is short: all its work spread over every core
            model_ms, run_ms = alone["cpu"] / alone["pairs"] * 1000, run["cpu"] / run["frames_in"] * 1000
            bound = cores * alone["seconds"] / alone["pairs"] * 1000 / run_ms
            print(f"{model} {index + 1}: model alone {alone_fps:.2f} frames/s, whole run {run_fps:.2f} "
                  f"input frames/s: {ratios[-1]:.2f}x | CPU ms an input frame: model alone "
                  f"{model_ms:.1f}, whole run {run_ms:.1f}; {cores} cores allow at most "
                  f"{min(bound, 1.0):.2f}x", flush=True)
    print(f"{model} median: whole run {statistics.median(ratios):.2f}x the model-alone rate "
          f"({clip.name}, x264 preset {preset})")


def encoder_threads(pairs: int) -> None:
    """Whole flow runs on bikes.mp4 (preset medium) with x264's own thread count against one thread
    (``--encoder-opts threads=1``), alternating: whether the encoder's threads get in a CPU model's
    way."""
    from slomo import samples

    clip = samples.fetch(MEDIA / "bikes.mp4")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        for index in range(pairs):
            rates = []
            for extra in ((), ("--encoder-opts", "threads=1")):
                _, _, text, _ = _child(slomo_command(clip, out, "flow", "--json", *extra))
                run = json.loads(text)["converted"][0]
                rates.append(run["frames_in"] / run["seconds"])
            ratios.append(rates[1] / rates[0])
            print(f"pair {index + 1}: x264's own threads {rates[0]:.2f} input frames/s, one thread "
                  f"{rates[1]:.2f}: {ratios[-1]:.2f}x", flush=True)
    print(f"median: one encoder thread {statistics.median(ratios):.2f}x the speed of x264's own count")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parts() -> None:
    import av
    import av.filter

    from slomo import colour, interpolator, io, pipeline

    clip = make_clip()
    started = _cpu()
    with av.open(str(clip)) as inp:
        video = inp.streams.video[0]
        video.thread_type = "AUTO"
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=video), graph.add("minterpolate", "fps=50:mi_mode=blend"),
                 graph.add("buffersink")]
        chain[0].link_to(chain[1])
        chain[1].link_to(chain[2])
        graph.configure()
        for frame in inp.decode(video):
            graph.push(frame)
            with contextlib.suppress(av.BlockingIOError, av.EOFError):
                while True:
                    graph.vpull()
    print(f"FFmpeg decode + minterpolate: {_cpu() - started:.2f} s CPU")
    started = _cpu()
    reader = io.open_input(str(clip))
    blend = interpolator.create("blend")
    pipeline.run(reader.pictures(), [(blend, pipeline.FactorTimeline(2))], lambda t, p: None,
                 lambda t: Fraction(1, 25), pipeline.SceneDetector())
    print(f"slomo decode + scene detection + blend: {_cpu() - started:.2f} s CPU")
    pictures = [p for _, (_, p) in zip(range(10), io.open_input(str(clip)).pictures(), strict=False)]
    rgb = [p.rgb() for p in pictures]  # before timing: each step below is timed alone
    steps = {
        "scene signature (planes thumbnail)": lambda i: pipeline.SceneDetector.summary(pictures[i]),
        "blend of the planes": lambda i: blend.interpolate_pictures(pictures[i:i + 2], [0.5]),
        "colour.to_rgb (for a model that takes RGB)": lambda i: colour.to_rgb(pictures[i].video, 1, 1),
        "colour.from_rgb (a model's frame, encoded)": lambda i: colour.from_rgb(rgb[i], "yuv420p", 1, 1),
    }
    for name, step in steps.items():
        started = _cpu()
        for index in range(9):
            step(index)
        print(f"{name}: {(_cpu() - started) / 9 * 1000:.1f} ms CPU a 1080p frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("blend", "hide", "parts", "threads"), help="one part only")
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs of runs")
    parser.add_argument("--hide", default="flow", help="models whose hiding is measured, comma-separated")
    parser.add_argument("--clip", default="bikes.mp4", help="the sample clip of the hiding runs "
                        "(bikes.mp4: 250 frames; bikes-5s.mp4: its first 137)")
    parser.add_argument("--preset", default="medium", help="the x264 preset of the hiding runs")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}",
          flush=True)
    if args.only in (None, "blend"):
        blend_vs_ffmpeg(args.pairs)
    if args.only == "parts":
        parts()
    if args.only == "threads":
        encoder_threads(args.pairs)
    if args.only in (None, "hide"):
        for model in args.hide.split(","):
            hiding(model, args.pairs, args.clip, args.preset)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
