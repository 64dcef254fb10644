"""The Python API: :func:`convert` one video, :func:`convert_many` a batch.

>>> import slomo
>>> slomo.convert("in.mp4", factor=4, model="flow")          # doctest: +SKIP
ConvertResult(input='in.mp4', output='in.4x.mp4', ...)

The CLI is a thin layer over these functions; everything a run can do is reachable from here.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from . import chunks, interpolator, io, pipeline
from .errors import UsageError


@dataclass
class ConvertResult:
    """What one conversion did."""

    input: str
    output: str
    model: str
    frames_in: int
    frames_out: int
    seconds: float
    input_fps: float
    output_fps: float
    cuts: list[float] = field(default_factory=list)  # times of the first frame after each cut
    duplicates: int = 0  # repeated input frames dropped by dedup
    node: str | None = None  # IP address of the Ray node that converted it (None: this machine)
    chunks: list[dict] = field(default_factory=list)  # per chunk of a chunked run: times, node, reused

    @property
    def speed(self) -> float:
        """Input frames processed per second of wall time."""
        return self.frames_in / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "speed": round(self.speed, 3)}


def parse_rate(text: str | float | Fraction) -> Fraction:
    """``60``, ``59.94`` or ``60000/1001`` as an exact frame rate (59.94 means 60000/1001)."""
    try:
        rate = Fraction(str(text)) if not isinstance(text, Fraction) else text
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"not a frame rate: {text!r}") from None
    ntsc = Fraction(round(rate * 1001 / 1000) * 1000, 1001)
    if rate.denominator != 1 and abs(rate - ntsc) < Fraction(1, 100):
        rate = ntsc
    if rate <= 0:
        raise UsageError(f"frame rate must be positive: {text!r}")
    return rate


def resolve_device(device: str) -> str:
    """``auto`` becomes the best available torch device; explicit ones are checked."""
    if device == "cpu":
        return device
    if device not in ("auto", "mps") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise UsageError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N, mps)")
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("device 'mps' requested but MPS is not available")
    return device


def model_options(spec: interpolator.ModelSpec, device: str = "auto",
                  weights: str | os.PathLike | None = None, **fields) -> interpolator.ModelOptions:
    """Model options as a run builds them: the device resolved for models with weights (the
    classical ones run on the CPU and need no torch), ``weights`` as a path."""
    return interpolator.ModelOptions(device=resolve_device(device) if spec.weights else "cpu",
                                     weights=Path(weights) if weights else None, **fields)


def default_output(src: str, factor: int | None, fps: Fraction | None, slowmo: bool,
                   folder: Path | None = None) -> Path:
    """``<stem>.<factor>x.<ext>`` beside the input (``<stem>.slowmo<factor>x.<ext>`` for slow motion)."""
    if io.is_pattern(src):
        base = Path(src).parent
        stem, ext, parent = base.name or "frames", ".mp4", base.parent
    else:
        path = Path(src)
        ext = path.suffix if path.suffix.lower() in io.VIDEO_EXTENSIONS else ".mp4"
        stem, parent = path.stem, path.parent
    if fps is not None and not factor:
        tag = f"{float(fps):g}fps"
    else:
        tag = f"{factor}x"
    name = f"{stem}.{'slowmo' if slowmo else ''}{tag}{ext}"
    return (folder or parent) / name


def _check_output(src: str, dst: Path, overwrite: bool) -> None:
    if not io.is_pattern(str(dst)):
        if os.path.exists(src) and dst.exists() and dst.resolve() == Path(src).resolve():
            raise io.MediaError("output would replace the input")
        if dst.exists() and not overwrite:
            raise io.MediaError(f"output {dst} exists (use -y to replace it)")
        if dst.suffix.lower() not in io.VIDEO_EXTENSIONS:
            raise UsageError(f"output {dst}: unknown video extension {dst.suffix or '(none)'!r}")


def _timing(info: io.VideoInfo, factor: int | None, fps: Fraction | None, slowmo: bool,
            dedup: bool = False, max_fps: Fraction | None = None):
    """Timeline, output rate, time base and time stretch of a run.

    A plain factor keeps the source's own timestamps (exact for variable frame rates); a target
    rate, a rate cap or de-duplicated input need frames at exact times of a constant rate.
    """
    rate = fps if fps is not None else info.rate * factor
    capped = max_fps is not None and rate > max_fps and not slowmo
    if fps is None and not dedup and not capped:
        stretch = Fraction(factor) if slowmo else Fraction(1)
        return pipeline.FactorTimeline(factor), rate, info.time_base / factor, stretch
    rate = min(rate, max_fps) if capped else rate
    stretch = rate / info.rate if slowmo else Fraction(1)
    return pipeline.RateTimeline(rate), rate, 1 / rate, stretch


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    factor: int | None = 2,
    fps: float | str | Fraction | None = None,
    slowmo: bool = False,
    model: str = "rife",
    weights: str | os.PathLike | None = None,
    scale: float = 1.0,
    device: str = "auto",
    precision: str = "fp32",
    codec: str | None = None,
    crf: int = 18,
    preset: str = "medium",
    pix_fmt: str | None = None,
    audio: bool = True,
    scene_detect: bool = True,
    scene_threshold: float = 0.3,
    overwrite: bool = False,
    input_fps: float | str = 30,
    dedup: bool = False,
    max_fps: float | str | Fraction | None = None,
    deinterlace: bool = False,
    chunk_seconds: float | None = None,
    jobs: int = 1,
    resume: bool = False,
    ray: str | None = None,
    piece: chunks.Piece | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ConvertResult:
    """Convert one video (or image sequence) into one with more frames.

    ``factor`` N gives N times the frames (output frame k*N+j is at t = j/N between input frames k
    and k+1); ``fps`` targets a frame rate instead; ``slowmo`` keeps the input rate so the result
    plays N times slower (audio time-stretched, pitch kept).  ``dst`` defaults to
    ``<stem>.<N>x.<ext>`` beside the input; an existing folder puts that name inside it; a printf
    pattern (``out/%06d.png``) writes PNG frames.  The output appears only once complete.
    ``dedup`` drops repeated frames (animation on twos) and re-times the rest evenly;
    ``max_fps`` caps the output rate; ``deinterlace`` runs yadif on interlaced input.
    ``chunk_seconds`` splits the input at keyframes into chunks of about that length, converted one
    after another, ``jobs`` at once, or on the Ray cluster at ``ray`` (``host:port`` or ``local``),
    and joined into exactly the one-piece output; ``resume`` reuses the chunks an interrupted run
    of the same request finished (see :mod:`slomo.chunks`).  ``piece`` is internal: one chunk.
    ``on_progress(done, total)`` is called as input frames are consumed (total 0 if unknown).

    Raises :class:`UsageError` for a wrong request, :class:`io.MediaError` for a bad input or
    output, :class:`slomo.weights.WeightsError` for missing weights.
    """
    request = {name: value for name, value in locals().items()  # what a chunk's worker redoes
               if name not in ("src", "dst", "chunk_seconds", "jobs", "resume", "ray", "piece",
                               "on_progress")}
    src = str(src)
    rate = parse_rate(fps) if fps is not None else None
    spec = _checked_spec(model, factor, rate)
    reader = io.open_input(src, parse_rate(input_fps))
    try:
        info = reader.info
        tag = factor if rate is None else None
        if dst is None:
            dst_path = default_output(src, tag, rate, slowmo)
        else:
            dst_path = Path(dst)
            if dst_path.is_dir() or str(dst).endswith(os.sep):
                dst_path = default_output(src, tag, rate, slowmo, dst_path)
        _check_output(src, dst_path, overwrite)
        fixed = spec.timesteps == "fixed" and not spec.restores_keyframes
        if fixed and (dedup or max_fps):
            raise UsageError(f"model {spec.name} makes fixed timesteps only; "
                             "use --model rife with --dedup or --max-fps")
        if fixed and _fixed_factor_mismatch(spec, rate, info):
            raise UsageError(f"model {spec.name} only makes {', '.join(map(str, spec.factors))}x; "
                             "use --model rife for other rates")
        if piece is None and chunk_seconds is not None:
            return chunks.convert(src, dst_path, request, spec, chunk_seconds, jobs, resume, ray, on_progress)
        if ray is not None:  # one whole file on the cluster
            from . import cluster

            _, outcome = next(cluster.convert_many([src], str(dst_path), request, ray))
            return cluster.returned(outcome)
        options = model_options(spec, device, weights, scale=scale, precision=precision,
                                factor=factor or 2)
        timing = _timing(info, factor, rate, slowmo, dedup,
                         parse_rate(max_fps) if max_fps is not None else None)
        stages = _stages(spec, options, timing[0], factor if rate is None else None)
        scenes = pipeline.SceneDetector(scene_threshold) if scene_detect else None
        encode = io.EncodeOptions(codec, crf, preset, pix_fmt, audio)
        if piece is not None:
            return chunks.run_piece(reader, stages, timing, scenes, encode, dst_path, piece)
        return _run(reader, stages, dst_path, timing, scenes, dedup, deinterlace, encode, on_progress)
    finally:
        reader.close()


def _checked_spec(model: str, factor: int | None, rate: Fraction | None) -> interpolator.ModelSpec:
    try:
        spec = interpolator.get_spec(model)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if rate is not None:
        return spec
    if factor is None or int(factor) != factor or factor < (1 if spec.restores_keyframes else 2):
        raise UsageError(f"factor must be an integer >= 2 (got {factor})")
    if spec.restores_keyframes and factor > 2 and factor % 2:
        raise UsageError(f"{spec.name} makes 2x itself and RIFE the rest: the factor must be 1 or even")
    if spec.timesteps == "fixed" and not spec.restores_keyframes and factor not in spec.factors:
        raise UsageError(f"model {spec.name} only makes {', '.join(map(str, spec.factors))}x; "
                         f"use --model rife for factor {factor}")
    return spec


def _stages(spec: interpolator.ModelSpec, options: interpolator.ModelOptions,
            timeline: pipeline.Timeline, factor: int | None) -> list[pipeline.Stage]:
    """The model passes of a run: one, or for a deblurring model its own 1x/2x, then RIFE."""
    net = interpolator.create(spec.name, options)
    if not spec.restores_keyframes:
        return [(net, timeline)]
    if factor is not None and factor <= 2:
        return [(net, pipeline.FactorTimeline(factor))]
    follow = pipeline.FactorTimeline(factor // 2) if factor is not None else timeline
    rife = interpolator.create("rife", replace(options, weights=None))
    return [(net, pipeline.FactorTimeline(2)), (rife, follow)]


def _fixed_factor_mismatch(spec, rate, info) -> bool:
    """Whether a fixed-factor model is asked for a rate that is not one of its factors."""
    if spec.timesteps != "fixed" or rate is None:
        return False
    ratio = rate / info.rate
    return ratio.denominator != 1 or ratio not in spec.factors


def last_frame_duration(info: io.VideoInfo, first: Fraction, last: Fraction, t: Fraction) -> Fraction:
    """How long the frame at ``t`` is shown when it is the source's last (decoded from ``first`` to
    ``last``): until the source's end, its own duration where the container says."""
    step = 1 / info.rate
    end = last + step
    declared_end = first + (info.duration or 0)
    if not info.is_sequence and 0 < declared_end - last <= 2 * step:
        end = declared_end
    return end - t


def _run(reader, stages: list[pipeline.Stage], dst: Path, timing, scenes, dedup: bool, deinterlace: bool,
         encode: io.EncodeOptions, on_progress) -> ConvertResult:
    started = time.perf_counter()
    info = reader.info
    _, out_rate, time_base, stretch = timing
    span: dict[str, Fraction] = {}  # first and last decoded times, duplicates included
    duplicates: list[Fraction] = []
    writer = None
    dst.parent.mkdir(parents=True, exist_ok=True)

    def frames():
        for item in reader.frames(deinterlace):
            span.setdefault("first", item[0])
            span["last"] = item[0]
            yield item

    source = pipeline.drop_duplicates(frames(), dropped=duplicates) if dedup else frames()

    def sink(t: Fraction, frame) -> None:
        nonlocal writer
        if writer is None:  # created on the first frame, once rotation and timing are known
            if io.is_pattern(str(dst)):
                writer = io.ImageSequenceWriter(str(dst), reader.info)
            else:
                writer = io.VideoWriter(dst, reader.info, out_rate, time_base, encode, stretch)
        writer.write(t, frame)

    def last_duration(t: Fraction) -> Fraction:
        return last_frame_duration(info, span["first"], span["last"], t)

    def progress(stats: pipeline.Stats) -> None:
        if on_progress:
            on_progress(stats.frames_in, info.frames)

    try:
        stats = pipeline.run(source, stages, sink, last_duration, scenes, progress)
        stats.frames_in += len(duplicates)
        if stats.frames_in == 0:
            raise io.MediaError("no video frames could be decoded")
        if stats.frames_in == 1:
            raise io.MediaError("only one frame: nothing to interpolate between")
        output = writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return ConvertResult(
        input=reader.path, output=str(output), model="+".join(m.spec.name for m, _ in stages), frames_in=stats.frames_in,
        frames_out=stats.frames_out, seconds=round(time.perf_counter() - started, 3),
        input_fps=float(info.rate), output_fps=float(out_rate / stretch), cuts=stats.cuts,
        duplicates=len(duplicates))


_OUTPUT_NAME = re.compile(r"^(?P<stem>.+)\.(slowmo)?(\d+x|[\d.]+fps)$")


def find_videos(folder: Path, recursive: bool = False) -> list[Path]:
    """Video files in ``folder`` (or below it), skipping slomo's own outputs of those inputs."""
    pattern = "**/*" if recursive else "*"
    videos = sorted(p for p in folder.glob(pattern)
                    if p.is_file() and p.suffix.lower() in io.VIDEO_EXTENSIONS
                    and not p.name.startswith("."))
    names = {p.name for p in videos}

    def is_output(path: Path) -> bool:
        match = _OUTPUT_NAME.match(path.stem)
        return bool(match) and any(n.startswith(match["stem"] + ".") and n != path.name
                                   and not _OUTPUT_NAME.match(Path(n).stem) for n in names)

    return [p for p in videos if not is_output(p)]
