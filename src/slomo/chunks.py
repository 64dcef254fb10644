"""Long files in chunks: split at keyframes, convert the chunks anywhere, join them seamlessly.

A chunk *owns* the input frames from one keyframe to the next chunk's, and the output frames
whose times fall in that span.  It decodes some frames more on each side (:func:`context_frames`)
so that every window, scene-cut test and recurrent warm-up of the frames it owns sees exactly
what a one-piece run would; output frames outside its span are dropped.  Each chunk writes the
frames it owns, already converted to the final encoder's pixel format, into a lossless FFV1
intermediate (:class:`slomo.io.LosslessWriter`) and their exact times into a JSON sidecar.  The
join decodes the intermediates in order and encodes them once with the run's encoder, muxing
audio and subtitles from the source as a one-piece run does, so the encoder sees the same
frames with the same timestamps: for deterministic models the output is the one-piece output.

Chunks live in a hidden work folder beside the output, ``.<name>.slomo-work/<key>/``, where
``key`` hashes the input (path, size, modification time) and every option that changes frames;
a chunk counts as finished only once its sidecar exists, and both files are written under a
temporary name and renamed, so a run killed at any point never leaves a half chunk to reuse.
``resume`` reuses the finished chunks of the same key; the folder is removed after success.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from . import __version__, api, interpolator, io, outputs, pipeline
from .errors import UsageError
from .frames import Picture

#: Runs ``task(*item)`` for every item and yields ``(item, result or the exception it raised,
#: node IP or None)`` as each finishes, in any order; closing it cancels what has not started.
Executor = Callable[[Callable, list], Iterator[tuple[tuple, object, str | None]]]


@dataclass(frozen=True)
class Piece:
    """One chunk: the input frames it owns and the context it decodes around them.

    Times are the source's frame times in seconds; ``None`` means the stream's own end.
    """

    index: int
    seek: Fraction | None  # the keyframe decoding starts at
    first: Fraction | None  # first frame kept (context before ``start``)
    start: Fraction | None  # first owned input frame; None for the first chunk
    end: Fraction | None  # first input frame of the next chunk; None for the last chunk
    last: Fraction | None  # last frame decoded (context after ``end``)
    stream_first: Fraction | None  # the whole input's first and last frame times, for the
    stream_last: Fraction | None  # last frame's duration as a one-piece run computes it
    path: str  # the lossless intermediate; its sidecar is ``path`` with ``.json``

    def owns(self, time: Fraction | float) -> bool:
        """Whether an input or output frame at ``time`` belongs to this chunk (a float compares
        with the bounds as floats, as :class:`pipeline.Stats` records cuts)."""
        kind = float if isinstance(time, float) else Fraction
        return ((self.start is None or time >= kind(self.start))
                and (self.end is None or time < kind(self.end)))

    @property
    def sidecar(self) -> Path:
        return Path(self.path).with_suffix(".json")


def context_frames(spec: interpolator.ModelSpec) -> int:
    """Frames decoded beyond each end of a chunk, so its own frames see what a one-piece run sees.

    A window reaches ``window/2`` frames each way, which also covers the frame before the first
    owned one (a cut there) and the frame after the last (the pair across the end, and the slots
    deferred across a cut there): 1 for pair models, 2 for FLAVR.  A recurrent model (BIN) warms
    up over one more window; a model that rewrites keyframes needs the next keyframe's own window
    after the end, and the reach of the model that follows it (``followed_by``, RIFE's 1 frame):
    13 for BIN.
    """
    frames = spec.window // 2
    if spec.stateful:
        frames += spec.window
    if spec.restores_keyframes:
        frames += spec.window // 2
        if spec.followed_by:
            frames += context_frames(interpolator.get_spec(spec.followed_by))
    return frames


def plan(times: list[Fraction], keyframes: list[Fraction], seconds: float, context: int,
         folder: Path) -> list[Piece]:
    """Chunks of at least ``seconds`` each, starting at keyframes, with ``context`` frames of
    context each side.  Without usable timestamps, one chunk holds everything."""
    if not times or len(set(times)) != len(times) or not keyframes:
        return [Piece(0, None, None, None, None, None, None, None, str(folder / "chunk-0000.mkv"))]
    starts = [times[0]]
    for keyframe in keyframes:
        if keyframe - starts[-1] >= Fraction(seconds):
            starts.append(keyframe)
    index = {t: i for i, t in enumerate(times)}
    pieces = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else None
        first = times[max(0, index[start] - context)]
        stop = index[end] - 1 + context if end is not None else len(times) - 1
        last = times[min(stop, len(times) - 1)]
        seek = max((k for k in keyframes if k <= first), default=None)
        pieces.append(Piece(n, seek, first, start if n else None, end, last, times[0], times[-1],
                            str(folder / f"chunk-{n:04d}.mkv")))
    return pieces


def _piece_frames(reader, piece: Piece) -> Iterator[tuple[Fraction, Picture]]:
    """The decoded frames a chunk works on: from ``first`` to ``last`` inclusive."""
    if piece.seek is not None:
        reader.seek(piece.seek)
    for t, frame in reader.pictures():
        if piece.first is not None and t < piece.first:
            continue
        yield t, frame
        if piece.last is not None and t >= piece.last:
            return


def run_piece(reader, stages: list[pipeline.Stage], timing, scenes, encode: io.EncodeOptions,
              dst: Path, piece: Piece) -> api.ConvertResult:
    """Convert one chunk into its intermediate and sidecar (the worker's side of a chunked run)."""
    started = time.perf_counter()
    _, out_rate, _, stretch = timing
    for _, stage_timeline in stages:  # a constant output rate counts from the input's first frame
        if isinstance(stage_timeline, pipeline.RateTimeline) and piece.stream_first is not None:
            stage_timeline.origin = piece.stream_first
    span: dict[str, Fraction] = {}
    owned_in = 0
    times: list[Fraction] = []

    def frames():
        nonlocal owned_in
        for item in _piece_frames(reader, piece):
            span.setdefault("first", item[0])
            span["last"] = item[0]
            owned_in += piece.owns(item[0])
            yield item

    def last_duration(t: Fraction) -> Fraction:
        first = piece.stream_first if piece.stream_first is not None else span["first"]
        last = piece.stream_last if piece.stream_last is not None else span["last"]
        return api.last_frame_duration(reader.info, first, last, t)

    pix_fmt = io.output_pix_fmt(dst, reader.info, encode)
    writer: io.LosslessWriter | None = None
    made = reader.info

    def sink(t: Fraction, frame: Picture) -> None:
        nonlocal writer, made
        if not piece.owns(t):
            return
        if writer is None:  # sized by the frames the last stage makes (an upscaler changes the size)
            made = replace(reader.info, height=frame.height, width=frame.width)
            writer = io.LosslessWriter(piece.path, made, pix_fmt)
        writer.write(io.encoder_frame(frame, pix_fmt, made))
        times.append(t)

    try:
        stats = pipeline.run(frames(), stages, sink, last_duration, scenes)
        if writer is None:
            raise io.MediaError(f"chunk {piece.index} holds no frames")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    result = api.ConvertResult(
        input=reader.path, output=piece.path, model="+".join(m.spec.name for m, _ in stages),
        frames_in=owned_in, frames_out=len(times), seconds=round(time.perf_counter() - started, 3),
        input_fps=float(reader.info.rate), output_fps=float(out_rate / stretch),
        cuts=[c for c in stats.cuts if piece.owns(c)], decoder=reader.decoder)
    record = {"result": result.to_dict(), "rotation": reader.info.rotation,
              "size": [made.width, made.height], "times": [str(t) for t in times]}
    _write_atomically(piece.sidecar, json.dumps(record))
    return result


def convert_piece(src: str, dst: str, request: dict, piece: Piece) -> dict:
    """A worker's task: convert one chunk and return its sidecar record."""
    api.convert(src, dst, piece=piece, **request)
    return json.loads(piece.sidecar.read_text())


def local_executor(jobs: int = 1) -> Executor:
    """Tasks one after another in this process, or ``jobs`` processes at once.

    Processes are spawned, not forked: a fork of a process running torch or decoder threads
    can deadlock.
    """
    def run(task: Callable, items: list) -> Iterator[tuple[tuple, object, str | None]]:
        if jobs <= 1:
            for item in items:
                yield item, _outcome(task, *item), None
            return
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_outcome, task, *item): item for item in items}
            try:
                for future in concurrent.futures.as_completed(futures):
                    yield futures[future], future.result(), None
            finally:
                for future in futures:
                    future.cancel()

    return run


def _outcome(task: Callable, *args):
    """``task(*args)``, or the exception it raised."""
    try:
        return task(*args)
    except Exception as exc:  # handed to the caller, which decides what fails
        return exc


def convert(src: str, target: outputs.Target, request: dict, spec: interpolator.ModelSpec, seconds: float,
            jobs: int = 1, resume: bool = False, ray: str | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> api.ConvertResult:
    """Convert ``src`` into ``target`` in chunks of about ``seconds`` (the driver's side); the
    join lands the output through ``target`` as a one-piece run does."""
    dst = target.path
    _check(src, dst, request)
    started = time.perf_counter()
    reader = io.VideoReader(src)
    try:
        times, keyframes = reader.keyframe_times()
        total = len(times) or reader.info.frames
    finally:
        reader.close()
    work = _work_folder(src, dst.absolute(), request, seconds, resume)  # absolute: workers start elsewhere
    pieces = plan(times, keyframes, seconds, context_frames(spec), work)
    records = {p.index: {**json.loads(p.sidecar.read_text()), "reused": True}
               for p in pieces if resume and _finished(p)}
    if ray is not None:
        from . import cluster

        execute = cluster.executor(ray, lambda: cluster.gpus_per_task(spec, request["device"]))
    else:
        execute = local_executor(jobs)
    todo = [(os.path.abspath(src), str(dst.absolute()), request, p) for p in pieces if p.index not in records]
    join = _Join(src, target, request, keep=resume)
    try:
        join.feed(pieces, records)
        with contextlib.closing(execute(convert_piece, todo)) as outcomes:  # an error cancels the rest
            for item, record, node in outcomes:
                if isinstance(record, Exception):
                    raise record
                records[item[3].index] = {**record, "node": node, "reused": False}
                join.feed(pieces, records)
                if on_progress:
                    on_progress(sum(r["result"]["frames_in"] for r in records.values()), total)
        output = join.close()
    except BaseException:
        join.abort()
        if not resume:  # nothing will reuse the chunks
            shutil.rmtree(work.parent, ignore_errors=True)
        raise
    shutil.rmtree(work.parent, ignore_errors=True)
    results = [records[p.index]["result"] for p in pieces]
    return api.ConvertResult(
        input=src, output=str(output), model=results[0]["model"],
        frames_in=sum(r["frames_in"] for r in results), frames_out=sum(r["frames_out"] for r in results),
        seconds=round(time.perf_counter() - started, 3), input_fps=results[0]["input_fps"],
        output_fps=results[0]["output_fps"], cuts=[c for r in results for c in r["cuts"]],
        encoder=join.writer.encoder if join.writer else "", decoder=results[0].get("decoder", ""),
        chunks=[{"index": p.index, "start": float(p.start or 0),
                 "end": float(p.end) if p.end is not None else None, "frames_in": r["frames_in"],
                 "seconds": r["seconds"], "node": records[p.index].get("node"),
                 "reused": records[p.index]["reused"]} for p, r in zip(pieces, results, strict=True)])


def check_request(seconds: float | None, jobs: int, resume: bool, dedup: bool) -> None:
    """The chunk options of a request (:func:`slomo.api.request`), before any input is opened."""
    if seconds is not None and not seconds > 0:
        raise UsageError(f"chunk length must be positive seconds (got {seconds})")
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1 (got {jobs})")
    if resume and seconds is None:
        raise UsageError("resuming works on chunks: give a chunk length too")
    if seconds is not None and dedup:
        raise UsageError("de-duplication depends on the whole stream so far and cannot be chunked")


def _check(src: str, dst: Path, request: dict) -> None:
    if io.is_pattern(src) or io.is_pattern(str(dst)):
        raise UsageError(f"{src}: chunks need a video file as input and as output, not image sequences")
    if request["deinterlace"]:
        raise UsageError(f"{src}: deinterlacing depends on the whole stream so far and cannot be chunked")


def _work_key(src: str, request: dict, seconds: float) -> str:
    """A hash of everything a chunk's frames depend on: the input file and the request."""
    stat = os.stat(src)
    identity = {"input": os.path.abspath(src), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "request": {k: str(v) for k, v in request.items() if k != "overwrite"},
                "seconds": str(seconds), "version": __version__}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _work_folder(src: str, dst: Path, request: dict, seconds: float, resume: bool) -> Path:
    """``.<output name>.slomo-work/<key>/`` beside the output: emptied unless resuming, and
    cleared of other keys' chunks (a changed input or request) when resuming."""
    root = dst.parent / f".{dst.name}.slomo-work"
    folder = root / _work_key(src, request, seconds)
    if root.exists():
        for entry in root.iterdir():
            if not resume or entry != folder:
                shutil.rmtree(entry, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _finished(piece: Piece) -> bool:
    return piece.sidecar.exists() and Path(piece.path).exists()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


class _Join:
    """The one encode of a chunked run, fed the chunks in order as soon as each is ready.

    It overlaps the conversion of later chunks, and each intermediate is deleted once encoded
    (unless ``keep``, for resuming), so the disk holds only the chunks finished out of order: a
    lossless intermediate is far larger than the final file.
    """

    def __init__(self, src: str, target: outputs.Target, request: dict, keep: bool):
        self.src, self.target, self.request, self.keep = src, target, request, keep
        self.writer: io.VideoWriter | None = None
        self.next = 0  # index of the next chunk to encode

    def feed(self, pieces: list[Piece], records: dict) -> None:
        """Encode every chunk that is ready and next in order."""
        while self.next < len(pieces) and self.next in records:
            piece, record = pieces[self.next], records[self.next]
            if self.writer is None:
                self.writer = self._open(record["rotation"], record["size"])
            times = [Fraction(t) for t in record["times"]]
            for t, frame in zip(times, io.read_lossless(piece.path), strict=True):
                self.writer.write_converted(t, frame)
            if not self.keep:
                Path(piece.path).unlink()
            self.next += 1

    def _open(self, rotation: int, size: list[int]) -> io.VideoWriter:
        """The writer a one-piece run would create, with the source's audio and subtitles."""
        reader = io.VideoReader(self.src)
        reader.close()
        request = self.request
        info = replace(reader.info, rotation=rotation, width=size[0], height=size[1])
        rate = api.parse_rate(request["fps"]) if request["fps"] is not None else None
        max_fps = api.parse_rate(request["max_fps"]) if request["max_fps"] is not None else None
        factor = 2 if request["factor"] is None and rate is None else request["factor"]
        _, out_rate, time_base, stretch = api._timing(info, factor, rate, request["slowmo"],
                                                      request["dedup"], max_fps)
        encode = io.EncodeOptions(request["codec"], request["crf"], request["preset"], request["pix_fmt"],
                                  request["audio"], request["encoder_opts"])
        return io.VideoWriter(self.target, info, out_rate, time_base, encode, stretch)

    def close(self) -> Path:
        assert self.writer is not None, "closed before any chunk was fed"  # every chunk holds frames
        return self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
