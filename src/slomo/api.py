"""The Python API: :func:`convert` one video, :func:`convert_many` a batch.

>>> import slomo
>>> slomo.convert("in.mp4", factor=4, model="flow")          # doctest: +SKIP
ConvertResult(input='in.mp4', output='in.4x.mp4', ...)

The CLI is a thin layer over these functions; everything a run can do is reachable from here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from . import chunks, interpolator, io, outputs, pipeline, stages
from .errors import MediaError, SlomoError, UsageError
from .frames import Picture


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
    encoder: str = ""  # the video encoder that ran (a hardware one that could not gives way to software)
    decoder: str = ""  # the video decoder that ran: "h264 (software)", "h264 (cuda)"

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




def _timing(info: io.VideoInfo, factor: int | None, fps: Fraction | None, slowmo: bool,
            dedup: bool = False, max_fps: Fraction | None = None):
    """Timeline, output rate, time base and time stretch of a run.

    A plain factor keeps the source's own timestamps (exact for variable frame rates); a target
    rate, a rate cap or de-duplicated input need frames at exact times of a constant rate.
    """
    cap = max_fps if max_fps is not None and not slowmo else None
    if fps is None:
        assert factor is not None  # convert() gives a run without a target rate its factor
        rate = info.rate * factor
        if not dedup and (cap is None or rate <= cap):
            stretch = Fraction(factor) if slowmo else Fraction(1)
            return pipeline.FactorTimeline(factor), rate, info.time_base / factor, stretch
    else:
        rate = fps
    if cap is not None and rate > cap:
        rate = cap
    stretch = rate / info.rate if slowmo else Fraction(1)
    return pipeline.RateTimeline(rate), rate, 1 / rate, stretch


#: the CRF range of the encoders that take one
CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libsvtav1": (0, 63),
              "libaom-av1": (0, 63), "h264_nvenc": (0, 51), "hevc_nvenc": (0, 51), "av1_nvenc": (0, 63)}


@dataclass(frozen=True)
class Request:
    """A run's model-side request, checked against the specs before any input is opened."""

    spec: interpolator.ModelSpec
    options: interpolator.ModelOptions
    upscaler: interpolator.ModelSpec | None = None
    upscale_options: interpolator.ModelOptions | None = None


def request(*, factor: int | None = None, fps: float | str | Fraction | None = None,
            model: str = interpolator.DEFAULT_MODEL, weights: str | os.PathLike | None = None,
            scale: float = 1.0, device: str = "auto", precision: str = "fp32",
            scene_threshold: float = 0.3, dedup: bool = False, max_fps: float | str | Fraction | None = None,
            upscale: int | None = None, upscale_model: str | None = None, chunk_seconds: float | None = None,
            jobs: int = 1, resume: bool = False) -> Request:
    """Check a run's values and its models' specs; :class:`UsageError` naming the value otherwise."""
    chunks.check_request(chunk_seconds, jobs, resume, dedup)
    if factor is not None and fps is not None:
        raise UsageError(f"a factor ({factor}) and a frame rate ({fps}) together: give one")
    if not 0.25 <= scale <= 1.0:
        raise UsageError(f"scale must be within 0.25..1, not {scale:g}")
    if not 0.0 <= scene_threshold <= 2.0:
        raise UsageError(f"scene threshold must be within 0..2, not {scene_threshold:g}")
    rate = parse_rate(fps) if fps is not None else None
    if max_fps is not None:
        parse_rate(max_fps)
    spec = interpolator.get_spec(model, kind="interpolate")
    options = interpolator.ModelOptions(device=device, weights=Path(weights) if weights else None,
                                        scale=scale, precision=precision,
                                        factor=2 if factor is None else factor,
                                        retimed=dedup or max_fps is not None)
    if rate is None and not (upscale is not None and stages.only_upscales(spec, options)):
        spec.check(options)
    else:  # the rate's ratio to the input's is known once the input is open; or the model is not run
        spec.check_setup(options)
    if upscale is None:
        if upscale_model:
            raise UsageError(f"upscale model {upscale_model!r} given without an upscale factor")
        return Request(spec, options)
    up = stages.upscaler_for(upscale, upscale_model)
    up_options = interpolator.ModelOptions(device=device, precision=precision, factor=upscale)
    up.check(up_options)
    return Request(spec, options, up, up_options)


def _check_crf(codec: str | None, dst: Path, crf: int) -> None:
    if io.is_pattern(str(dst)):
        return
    codec = codec or io.CONTAINER_CODECS.get(dst.suffix.lower(), io.DEFAULT_CODECS)[0]
    low, high = CRF_RANGES.get(codec, (crf, crf))
    if not low <= crf <= high:
        raise UsageError(f"crf {crf} is outside {codec}'s range {low}..{high}")


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    factor: int | None = None,
    fps: float | str | Fraction | None = None,
    slowmo: bool = False,
    model: str = interpolator.DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    scale: float = 1.0,
    device: str = "auto",
    precision: str = "fp32",
    upscale: int | None = None,
    upscale_model: str | None = None,
    codec: str | None = None,
    crf: int = 18,
    preset: str = "medium",
    pix_fmt: str | None = None,
    encoder_opts: dict[str, str] | str | None = None,
    audio: bool = True,
    scene_detect: bool = True,
    scene_threshold: float = 0.3,
    overwrite: bool = False,
    input_fps: float | str = 30,
    dedup: bool = False,
    max_fps: float | str | Fraction | None = None,
    deinterlace: bool = False,
    hwdec: str | None = None,
    chunk_seconds: float | None = None,
    jobs: int = 1,
    resume: bool = False,
    ray: str | None = None,
    piece: chunks.Piece | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    batch: outputs.Batch | None = None,
) -> ConvertResult:
    """Convert one video (or image sequence) into one with more frames.

    ``factor`` N (default 2) gives N times the frames (output frame k*N+j is at t = j/N between
    input frames k and k+1); ``fps`` targets a frame rate instead; ``slowmo`` keeps the input rate
    so the result plays N times slower (audio time-stretched, pitch kept).  ``dst`` defaults to
    ``<stem>.<N>x.<ext>`` beside the input; an existing folder puts that name inside it; a printf
    pattern (``out/%06d.png``) writes PNG frames.  The output appears only once complete.
    ``dedup`` drops repeated frames (animation on twos) and re-times the rest evenly;
    ``max_fps`` caps the output rate; ``deinterlace`` runs yadif on interlaced input.
    ``hwdec`` decodes on a device where it can: ``auto`` (NVDEC where there is an NVIDIA driver),
    ``cuda``, ``cuda:1``, or another FFmpeg device type; else in software, with one warning.  A
    hardware ``codec`` (``h264_nvenc``) that cannot run here gives way to the software encoder of
    its format (libx264, libx265, libsvtav1), with one warning.
    ``upscale`` N resizes every output frame N times with ``upscale_model`` (default: the first
    installed upscaler that makes N), before interpolating (see ``stages.upscales_first``); with
    ``factor`` 1 it is the only stage.
    ``chunk_seconds`` splits the input at keyframes into chunks of about that length, converted one
    after another, ``jobs`` at once, or on the Ray cluster at ``ray`` (``host:port`` or ``local``),
    and joined into exactly the one-piece output; ``resume`` reuses the chunks an interrupted run
    of the same request finished (see :mod:`slomo.chunks`).  ``piece`` is internal: one chunk.
    ``on_progress(done, total)`` is called as input frames are consumed (total 0 if unknown).
    ``batch`` holds the other inputs (and earlier outputs) of the same run: the output may be
    none of them (see :mod:`slomo.outputs` for the rules every output follows).

    Raises :class:`UsageError` for a wrong request (checked before any output is opened),
    :class:`MediaError` for a bad input or output, :class:`WeightsError` for missing weights.
    """
    forwarded = {name: value for name, value in locals().items()  # what a chunk's or Ray's worker redoes
                 if name not in ("src", "dst", "chunk_seconds", "jobs", "resume", "ray", "piece",
                                 "on_progress", "batch")}
    src = str(src)
    asked = request(factor=factor, fps=fps, model=model, weights=weights, scale=scale, device=device,
                    precision=precision, scene_threshold=scene_threshold, dedup=dedup, max_fps=max_fps,
                    upscale=upscale, upscale_model=upscale_model, chunk_seconds=chunk_seconds, jobs=jobs,
                    resume=resume)
    rate = parse_rate(fps) if fps is not None else None
    factor = 2 if factor is None and rate is None else factor
    reader = io.open_input(src, parse_rate(input_fps), hwdec)
    try:
        info = reader.info
        pipeline.check_output_rate(rate or info.rate * factor, src)
        if not (asked.upscaler and stages.only_upscales(asked.spec, asked.options)):  # the interpolator runs
            first = asked.upscaler is not None and stages.upscales_first(asked.spec)
            grown = asked.upscale_options.factor if first and asked.upscale_options else 1
            pipeline.check_memory(asked.spec, info.width * grown, info.height * grown, src,
                                  (rate or info.rate * factor) / info.rate)
        target = outputs.plan(src, dst, factor=factor if rate is None else None, fps=rate, slowmo=slowmo,
                              overwrite=overwrite, batch=batch)
        _check_crf(codec, target.path, crf)
        if piece is None and chunk_seconds is not None:
            return chunks.convert(src, target, forwarded, asked.spec, chunk_seconds, jobs, resume, ray,
                                  on_progress)
        if ray is not None:  # one whole file on the cluster
            from . import cluster

            _, outcome = next(cluster.convert_many([(src, str(target.path))], forwarded, ray))
            return cluster.returned(outcome)
        timing = _timing(info, factor, rate, slowmo, dedup,
                         parse_rate(max_fps) if max_fps is not None else None)
        options = asked.options if rate is None else replace(asked.options, ratio=rate / info.rate)
        upscaling = (stages.upscaling(asked.upscaler, asked.upscale_options)
                     if asked.upscaler is not None and asked.upscale_options is not None else None)
        plans = stages.chain(stages.interpolation(asked.spec, options, timing[0]), upscaling)
        scenes = pipeline.SceneDetector(scene_threshold) if scene_detect else None
        encode = io.EncodeOptions(codec, crf, preset, pix_fmt, audio, encoder_opts)
        if piece is not None:
            return chunks.run_piece(reader, stages.build(plans), timing, scenes, encode, target.path, piece)
        return _run(reader, stages.build(plans), target, timing, scenes, dedup, deinterlace, encode,
                    on_progress)
    finally:
        reader.close()


def last_frame_duration(info: io.VideoInfo, first: Fraction, last: Fraction, t: Fraction) -> Fraction:
    """How long the frame at ``t`` is shown when it is the source's last (decoded from ``first`` to
    ``last``): until the source's end, its own duration where the container says."""
    step = 1 / info.rate
    end = last + step
    declared_end = first + (info.duration or 0)
    if not info.is_sequence and 0 < declared_end - last <= 2 * step:
        end = declared_end
    return end - t


def _run(reader, chain: list[pipeline.Stage], target: outputs.Target, timing, scenes, dedup: bool,
         deinterlace: bool, encode: io.EncodeOptions, on_progress) -> ConvertResult:
    started = time.perf_counter()
    info = reader.info
    _, out_rate, time_base, stretch = timing
    span: dict[str, Fraction] = {}  # first and last decoded times, duplicates included
    duplicates: list[Fraction] = []
    writer: io.ImageSequenceWriter | io.VideoWriter | None = None

    def frames():
        for item in reader.pictures(deinterlace):
            span.setdefault("first", item[0])
            span["last"] = item[0]
            yield item

    source = pipeline.drop_duplicates(frames(), dropped=duplicates) if dedup else frames()

    def sink(t: Fraction, frame: Picture) -> None:
        nonlocal writer
        if writer is None:  # created on the first frame, once rotation and timing are known
            # sized by the frames the last stage makes (an upscaler changes the size)
            made = replace(reader.info, height=frame.height, width=frame.width)
            if target.is_sequence:
                writer = io.ImageSequenceWriter(target, made)
            else:
                writer = io.VideoWriter(target, made, out_rate, time_base, encode, stretch)
        writer.write(t, frame)

    def last_duration(t: Fraction) -> Fraction:
        return last_frame_duration(info, span["first"], span["last"], t)

    def progress(stats: pipeline.Stats) -> None:
        if on_progress:
            on_progress(stats.frames_in, info.frames)

    try:
        stats = pipeline.run(source, chain, sink, last_duration, scenes, progress)
        stats.frames_in += len(duplicates)
        if stats.frames_in == 0:
            raise MediaError("no video frames could be decoded")
        if stats.frames_in == 1:
            raise MediaError("only one frame: nothing to interpolate between")
        assert writer is not None  # two frames or more were decoded, so the sink made one
        output = writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return ConvertResult(
        input=reader.path, output=str(output), model="+".join(m.spec.name for m, _ in chain),
        frames_in=stats.frames_in,
        frames_out=stats.frames_out, seconds=round(time.perf_counter() - started, 3),
        input_fps=float(info.rate), output_fps=float(out_rate / stretch), cuts=stats.cuts,
        duplicates=len(duplicates), encoder=writer.encoder, decoder=reader.decoder)


@dataclass
class Failure:
    """One input of a batch that was not converted, and why."""

    input: str
    error: str
    usage: bool = False  # the request does not fit this input (a :class:`UsageError`)


@dataclass
class BatchResult:
    converted: list[ConvertResult] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


#: the options of :func:`convert` that :func:`request` checks
_REQUEST_OPTIONS = ("factor", "fps", "model", "weights", "scale", "device", "precision", "scene_threshold",
                    "dedup", "max_fps", "upscale", "upscale_model", "chunk_seconds", "jobs", "resume")


def convert_many(
    inputs: Sequence[str | os.PathLike],
    dst: str | os.PathLike | None = None,
    *,
    recursive: bool = False,
    on_start: Callable[[str], Callable[[int, int], None] | None] | None = None,
    on_done: Callable[[str, ConvertResult | BaseException], None] | None = None,
    **options,
) -> BatchResult:
    """Convert several inputs (files, folders of videos, image patterns) with the same options.

    The request is checked once (a :class:`UsageError` before any input is read); then each input
    succeeds or fails on its own, a failing one (a usage error that concerns only it included)
    never stopping the others.  ``dst`` is a folder (or a pattern) when there are several inputs.
    ``on_start(input)`` may return that input's ``on_progress``; ``on_done(input, result or
    error)`` is called after each.
    """
    request(**{k: options[k] for k in _REQUEST_OPTIONS if k in options})
    jobs = outputs.batch_jobs(map(str, inputs), None if dst is None else str(dst), recursive)
    written = outputs.Batch(job.src for job in jobs if not job.problem)
    batch = BatchResult()
    if options.get("ray") is not None and options.get("chunk_seconds") is None:
        from . import cluster

        outcomes = cluster.batch_outcomes(jobs, written, options)
    else:
        outcomes = _local_outcomes(jobs, written, on_start, options)
    for src, outcome in outcomes:
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, (SlomoError, ValueError, OSError, RuntimeError)):
                raise outcome
            reason = str(outcome).splitlines()[0] if str(outcome) else outcome.__class__.__name__
            batch.failed.append(Failure(src, reason, isinstance(outcome, UsageError)))
        else:
            batch.converted.append(outcome)
        if on_done:
            on_done(src, outcome)
    return batch


def _local_outcomes(jobs: list[outputs.Job], written: outputs.Batch, on_start, options: dict
                    ) -> Iterator[tuple[str, ConvertResult | Exception]]:
    """``(input, result or the error that failed it)`` for each job, converted here in turn."""
    for job in jobs:
        try:
            if job.problem:
                raise MediaError(job.problem)
            yield job.src, convert(job.src, job.output, on_progress=on_start(job.src) if on_start else None,
                                   batch=written, **options)
        except (SlomoError, ValueError, OSError, RuntimeError) as exc:
            yield job.src, exc
