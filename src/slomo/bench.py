"""Speed and memory benchmarks: frames per second and peak memory per model and resolution.

Two measurements per model and size, each in a fresh subprocess so that its peak memory is its
own (torch's allocations are invisible to ``tracemalloc``, and a process's peak resident set
never goes down, so cases cannot share one):

- ``model``: ``interpolate(window, [0.5])`` alone on real frames (the sample footage resized to
  the size), one synthesized frame per call.  One warm-up call, then the median of several calls.
- ``pipeline``: a whole ``slomo.convert(..., factor=2)`` (decode, model, encode with the default
  libx264 settings) of a short clip made from the sample footage at that size.  One warm-up
  conversion of a 3-frame clip, then the median of several conversions.  Its frames/s counts
  input frames, each of which (but the last) brings one synthesized frame, so it is comparable
  with the model's.

Peak memory is the case process's peak resident set (``VmHWM`` on Linux, ``ru_maxrss``
elsewhere), everything included: Python, torch, the decoded frames, the model's buffers.  The
resident set right after the imports is reported beside it (``base_mb``), so the case's own
share is the difference.  On CUDA the peak of torch's allocator is reported too.

The number of timed runs adapts to the speed: as many as fit a time budget, within bounds, so a
slow model at 1080p gets a few runs and a fast one more.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import MediaError, UsageError

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
DEFAULT_SIZES = ("360p", "720p", "1080p", "4k")
SAMPLE = "bigbuckbunny.mp4"


@dataclass(frozen=True)
class Settings:
    """How long each case runs."""

    model_runs: tuple[int, int] = (3, 7)  # min, max timed interpolate() calls
    model_budget: float = 6.0  # seconds of timed calls aimed at, within those bounds
    pipeline_runs: tuple[int, int] = (2, 3)
    pipeline_budget: float = 20.0
    pipeline_frames: int = 6  # frames of the pipeline clip
    timeout: float = 900.0  # per case


QUICK = Settings(model_runs=(2, 3), model_budget=2.0, pipeline_runs=(1, 2), pipeline_budget=5.0,
                 pipeline_frames=4)


@dataclass(frozen=True)
class Case:
    model: str
    size: str
    mode: str  # "model" or "pipeline"
    scale: float = 1.0


@dataclass
class Plan:
    cases: list[Case]
    device: str
    settings: Settings
    skipped: list[dict] = field(default_factory=list)  # decided before running
    sample: Path | None = None
    load_before: float | None = None  # 1-minute load average when the run started
    codec: str | None = None  # the pipeline's encoder (None: libx264, as a plain convert)
    hwdec: str | None = None  # the pipeline's hardware decoding (None: software)


# --------------------------------------------------------------------------------------------
# planning


def plan(models: list[str] | None = None, sizes: list[str] | None = None,
         modes: list[str] | None = None, device: str = "auto", quick: bool = False,
         codec: str | None = None, hwdec: str | None = None) -> Plan:
    """The cases to run: every model x size x mode, 4K only for the models that can; the
    pipeline cases encode with ``codec`` and decode with ``hwdec`` as :func:`slomo.convert` does."""
    from . import interpolator

    if models:
        names = []
        for name in models:
            try:
                names.append(interpolator.get_spec(name.strip(), kind="interpolate").name)
            except UsageError as exc:
                raise UsageError(f"models: {exc}") from None
    else:
        names = [spec.name for spec in interpolator.available("interpolate")]
    size_list = [s.strip().lower() for s in sizes] if sizes else list(DEFAULT_SIZES)
    for s in size_list:
        if s not in SIZES:
            raise UsageError(f"sizes: unknown size {s!r} (known: {', '.join(SIZES)})")
    mode_list = [m.strip() for m in (modes or ["model", "pipeline"]) if m.strip()]
    for m in mode_list:
        if m not in ("model", "pipeline"):
            raise UsageError(f"modes: unknown mode {m!r} (known: model, pipeline)")
    device = interpolator.resolve_device(device)
    cases, skipped = [], []
    for name in names:
        spec = interpolator.get_spec(name)
        for size in size_list:
            four_k = size == "4k"
            scale = spec.scale_at_4k if four_k else 1.0
            if scale is None:
                if sizes:  # asked for explicitly: say why it is absent
                    skipped.append({"model": name, "size": size,
                                    "skipped": "not benchmarked at 4K (too slow or too much memory)"})
                continue
            cases += [Case(name, size, mode, scale) for mode in mode_list]
    return Plan(cases, device, QUICK if quick else Settings(), skipped, codec=codec, hwdec=hwdec)


def sample_path() -> Path:
    """The real footage, fetched once: in the checkout's ``.cache/media`` or the user cache."""
    from . import samples

    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        folder = checkout / ".cache" / "media"
    else:
        import platformdirs

        folder = Path(platformdirs.user_cache_dir("slomo")) / "media"
    try:
        return samples.fetch(folder / SAMPLE)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise MediaError(f"{folder / SAMPLE}: cannot fetch the sample footage ({exc})") from None


# --------------------------------------------------------------------------------------------
# frames and clips from the sample


def _resize(frame, width: int, height: int):
    import cv2

    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width < frame.shape[1]
    return cv2.resize(frame, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def sample_frames(sample: Path, count: int, width: int, height: int, start: int = 24) -> list:
    """``count`` consecutive real frames (float32 RGB) at ``width`` x ``height``."""
    import numpy as np

    from . import io

    reader = io.open_input(str(sample))
    frames = []
    try:
        for index, (_, frame) in enumerate(reader.frames()):
            if index >= start:
                frames.append(np.clip(_resize(frame, width, height), 0.0, 1.0))
            if len(frames) == count:
                break
    finally:
        reader.close()
    if len(frames) < count:
        raise MediaError(f"{sample}: fewer than {start + count} frames")
    return frames


def make_clip(sample: Path, dst: Path, frames: int, width: int, height: int,
              start: int = 24, keyframe_interval: int | None = None) -> Path:
    """A short H.264 clip of the sample at the size (the frames of :func:`sample_frames`), with
    a keyframe every ``keyframe_interval`` frames if given (x264's default otherwise)."""
    import av

    from . import io
    from .frames import from_frame

    reader = io.open_input(str(sample))
    rate = reader.info.rate
    reader.close()
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        if keyframe_interval:
            stream.options = {**stream.options, "g": str(keyframe_interval)}
        for index, frame in enumerate(sample_frames(sample, frames, width, height, start)):
            vf = av.VideoFrame.from_ndarray(from_frame(frame), format="rgb24")
            vf.pts = index
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dst


# --------------------------------------------------------------------------------------------
# one case, in its own process


def _memory_mb(field_name: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident set of this process, in MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _runs(warm_seconds: float, bounds: tuple[int, int], budget: float) -> int:
    low, high = bounds
    return max(low, min(high, int(budget / max(warm_seconds, 1e-6))))


def _build(case: Case, device: str):
    from . import interpolator

    spec = interpolator.get_spec(case.model)
    options = interpolator.ModelOptions(device=_device_for(spec, device), scale=case.scale)
    return spec, interpolator.create(spec, options)


def _device_for(spec, device: str) -> str:
    """The benchmark's device where the model runs on it, else the model's own (the CPU for the
    classical models)."""
    return device if device.split(":")[0] in spec.devices else "auto"


def run_case(case: Case, device: str, settings: Settings, sample: Path, clips: dict,
             codec: str | None = None, hwdec: str | None = None) -> dict:
    """Measure one case in this process (called in a fresh subprocess by :func:`run`); a pipeline
    case records the encoder and decoder that ran (a hardware one may have given way)."""
    import torch  # noqa: F401  (imported before the baseline, as every model run has it)

    from . import api, interpolator
    from .weights import WeightsError

    base = _memory_mb("VmRSS")
    width, height = SIZES[case.size]
    record = {"model": case.model, "size": case.size, "width": width, "height": height,
              "scale": case.scale, "mode": case.mode, "device": device}
    try:
        if case.mode == "model":
            spec, net = _build(case, device)
            frames = sample_frames(sample, spec.window + 3, width, height)
            windows = [frames[i:i + spec.window] for i in range(4)]
            started = time.perf_counter()
            net.interpolate(windows[0], [0.5])
            warm = time.perf_counter() - started
            times = []
            for i in range(_runs(warm, settings.model_runs, settings.model_budget)):
                started = time.perf_counter()
                out = net.interpolate(windows[(i + 1) % len(windows)], [0.5])
                _sync(device)
                times.append(time.perf_counter() - started)
                assert out[0].shape == (height, width, 3)
            seconds = statistics.median(times)
            record.update(fps=1.0 / seconds, seconds_per_frame=seconds, runs=len(times),
                          warmup_s=warm)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                def convert(src):
                    result = api.convert(src, str(Path(tmp) / "out.mp4"), factor=2, model=case.model,
                                         device=_device_for(interpolator.get_spec(case.model), device),
                                         scale=case.scale, codec=codec, hwdec=hwdec,
                                         overwrite=True, audio=False)
                    record.update(encoder=result.encoder, decoder=result.decoder)
                    return result.frames_in / result.seconds, result.seconds

                _, warm = convert(clips["warm"])
                per_frame = warm / 3
                estimate = per_frame * settings.pipeline_frames
                speeds = [convert(clips["clip"])[0] for _ in range(
                    _runs(estimate, settings.pipeline_runs, settings.pipeline_budget))]
            fps = statistics.median(speeds)
            record.update(fps=fps, seconds_per_frame=1.0 / fps, runs=len(speeds),
                          frames=settings.pipeline_frames, warmup_s=warm)
    except WeightsError as exc:
        return {"model": case.model, "size": case.size, "mode": case.mode,
                "skipped": str(exc).splitlines()[0]}
    record.update(memory_mb=_memory_mb("VmHWM"), base_mb=base)
    if device.startswith("cuda"):
        record["gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------
# running all cases


def run(plan: Plan, on_result: Callable[[str], None] | None = None) -> list[dict]:
    """Run every case of ``plan`` in its own subprocess; records in plan order."""
    plan.sample = plan.sample or sample_path()
    if hasattr(os, "getloadavg"):
        plan.load_before = round(os.getloadavg()[0], 2)
    results: list[dict] = list(plan.skipped)
    skipped_models: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="slomo-bench-") as tmp:
        clips: dict[str, dict] = {}
        for case in plan.cases:
            if case.model in skipped_models:
                continue
            if case.mode == "pipeline" and case.size not in clips:
                width, height = SIZES[case.size]
                clips[case.size] = {
                    "clip": str(make_clip(plan.sample, Path(tmp) / f"{case.size}.mp4",
                                          plan.settings.pipeline_frames, width, height)),
                    "warm": str(make_clip(plan.sample, Path(tmp) / f"{case.size}.warm.mp4",
                                          3, width, height)),
                }
            record = _subprocess(case, plan, clips.get(case.size, {}))
            if "skipped" in record:
                skipped_models[case.model] = record["skipped"]
                record = {"model": case.model, "size": None, "mode": None,
                          "skipped": record["skipped"]}
            results.append(record)
            if on_result:
                on_result(describe(record))
    return results


def _subprocess(case: Case, plan: Plan, clips: dict) -> dict:
    job = {"case": asdict(case), "device": plan.device, "settings": asdict(plan.settings),
           "sample": str(plan.sample), "clips": clips, "codec": plan.codec, "hwdec": plan.hwdec}
    try:
        done = subprocess.run([sys.executable, "-m", "slomo.bench", "--case", json.dumps(job)],
                              capture_output=True, text=True, timeout=plan.settings.timeout)
    except subprocess.TimeoutExpired:
        return {**asdict(case), "error": f"timed out after {plan.settings.timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {**asdict(case), "error": reason}
    return json.loads(lines[-1])


def describe(record: dict) -> str:
    if "skipped" in record:
        return f"{record['model']}: skipped ({record['skipped']})"
    where = f"{record['model']} {record['size']} {record['mode']}"
    if "error" in record:
        return f"{where}: failed ({record['error']})"
    codecs = f", {record['decoder']} -> {record['encoder']}" if "encoder" in record else ""
    return (f"{where}: {record['fps']:.2f} frames/s, peak {record['memory_mb']:.0f} MB "
            f"({record['runs']} runs{codecs})")


# --------------------------------------------------------------------------------------------
# reports


def machine() -> dict:
    """What the numbers were measured on."""
    import av
    import cv2
    import torch

    cpu, ram = platform.processor() or platform.machine(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 2 ** 20
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(ram, 1) if ram else None,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "pyav": av.__version__, "opencv": cv2.__version__, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}",
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if hasattr(os, "getloadavg"):
        info["load"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _rows(results: list[dict]):
    """(model, size, scale) -> {mode: record}, in first-seen order."""
    rows: dict[tuple, dict] = {}
    for r in results:
        if r.get("size") and "skipped" not in r:
            rows.setdefault((r["model"], r["size"], r.get("scale", 1.0)), {})[r["mode"]] = r
    return rows


def codecs_used(results: list[dict]) -> str:
    """What the pipeline cases decoded and encoded with, as they report it: a hardware codec
    asked for may have given way to software."""
    used = sorted({f"{r['decoder']} decode + model + {r['encoder']} encode" for r in results
                   if "encoder" in r})
    return "; ".join(used) or "decode + model + encode"


def _ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def _cell(record: dict | None, key: str, fmt: str) -> str:
    if record is None:
        return "-"
    if "error" in record:
        return "failed"
    return format(record[key], fmt)


def print_table(results: list[dict], plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"slomo bench on {plan.device} (frames/s: synthesized frames per second)")
    for column in ("model", "size", "scale", "model fps", "model MB", "pipeline fps",
                   "pipeline MB"):
        table.add_column(column, justify="left" if column in ("model", "size") else "right")
    for (model, size, scale), modes in _rows(results).items():
        m, p = modes.get("model"), modes.get("pipeline")
        table.add_row(model, size, f"{scale:g}", _cell(m, "fps", ".2f"), _cell(m, "memory_mb", ".0f"),
                      _cell(p, "fps", ".2f"), _cell(p, "memory_mb", ".0f"))
    console = Console()
    console.print(table)
    if any("encoder" in r for r in results):
        console.print(f"pipeline: {codecs_used(results)}", markup=False)
    for r in results:
        if "skipped" in r or "error" in r:
            console.print(describe(r), markup=False)


def write_report(results: list[dict], plan: Plan, path: Path) -> Path:
    """A markdown report: the machine, the method, the table, what was skipped."""
    from . import interpolator

    info = machine()
    s = plan.settings
    lines = [
        "# slomo benchmarks",
        "",
        f"Generated by `slomo bench` on {info['date']}.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores"
        + (f" ({info['torch_threads']} torch threads)" if info.get("torch_threads") else ""),
        f"- RAM: {info['ram_gb']} GB" if info["ram_gb"] else "- RAM: unknown",
        f"- device: {plan.device}" + (f" ({info['gpu']})" if info.get("gpu") else ""),
        f"- torch {info['torch']}, PyAV {info['pyav']}, OpenCV {info['opencv']}, "
        f"Python {info['python']}, {info['os']}",
    ]
    if plan.load_before is not None:
        # the benchmark's own case process keeps the load near 1-2: only more runnable work
        # than cores before the run means someone else was competing for the CPU
        busy = plan.load_before > (info["cores"] or 1)
        lines.append(f"- load average (1 min): {plan.load_before:g} when the run started, "
                     f"{info['load']:g} at its end (the benchmark's own processes included)"
                     + (" -- **the machine was busy with other work: timings are pessimistic**"
                        if busy else ""))
    lines += [
        "",
        "## Method",
        "",
        "- Input: real footage (Big Buck Bunny, 1280x720) resized to each size "
        "(area filter down, bicubic up).",
        f"- **model**: `interpolate(window, [0.5])` alone, one warm-up call then the median of "
        f"{s.model_runs[0]}-{s.model_runs[1]} calls (as many as fit about {s.model_budget:g} s).",
        f"- **pipeline**: `slomo.convert(clip, factor=2)` of a {s.pipeline_frames}-frame H.264 "
        f"clip at that size ({codecs_used(results)}), after a warm-up conversion of a "
        f"3-frame clip; median of {s.pipeline_runs[0]}-{s.pipeline_runs[1]} conversions.  "
        "frames/s counts input frames (each brings one synthesized frame at factor 2, except the last, "
        "which is held: so a short clip's pipeline frames/s can exceed the model's).",
        "- **MB**: peak resident memory of the process that ran the case (`VmHWM`), "
        "interpreter and torch included; each case runs in its own process.",
        "- 4K only for the models that handle it: "
        + ", ".join(f"{spec.name} (scale {spec.scale_at_4k:g})" for spec in interpolator.available()
                    if spec.scale_at_4k is not None) + ".",
        "",
        "## Results",
        "",
        "| model | size | scale | model frames/s | model ms/frame | model peak MB "
        "| pipeline frames/s | pipeline peak MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, size, scale), modes in _rows(results).items():
        m, p = modes.get("model"), modes.get("pipeline")
        ms = "-" if m is None or "error" in m else _ms(m["seconds_per_frame"])
        lines.append(f"| {model} | {size} | {scale:g} | {_cell(m, 'fps', '.2f')} | {ms} | "
                     f"{_cell(m, 'memory_mb', '.0f')} | {_cell(p, 'fps', '.2f')} | "
                     f"{_cell(p, 'memory_mb', '.0f')} |")
    notes = [describe(r) for r in results if "skipped" in r or "error" in r]
    if notes:
        lines += ["", "## Skipped or failed", ""] + [f"- {n}" for n in notes]
    lines += ["", "Regenerate with `make bench` (or `slomo bench --write docs/benchmarks.md`).", ""]
    from .outputs import write_file

    return write_file(path, lambda partial: partial.write_text("\n".join(lines)))


def _child(argv: list[str]) -> int:
    job = json.loads(argv[argv.index("--case") + 1])
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in job["settings"].items()}
    settings = Settings(**values)
    record = run_case(Case(**job["case"]), job["device"], settings, Path(job["sample"]),
                      job["clips"], job.get("codec"), job.get("hwdec"))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv))
