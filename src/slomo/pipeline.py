"""The streaming pipeline: decode -> sliding window -> interpolator -> encode.

Three threads joined by bounded queues: one decodes, the calling thread runs the model, one
encodes.  PyAV, OpenCV and torch release the GIL in their heavy parts, so on two cores the model
rarely waits for I/O.  Memory holds the model's window plus the queues, whatever the video's length.
Frames travel as :class:`~slomo.frames.Picture` objects: decoded planes, converted to RGB only for a
model that needs it, and never for frames that pass through untouched.

Which frames to synthesize comes from a :class:`Timeline`, which works from timestamps rather than
a frame counter so variable-frame-rate input stays in sync.  Scene cuts split the stream into shots:
no frame is blended across a cut, and windows are clipped to their shot.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .errors import MediaError, UsageError
from .frames import Picture, Signature
from .interpolator import Interpolator, ModelSpec

#: Output slots of one input frame: (t in [0, 1) between this frame and the next, output time).
Slots = list[tuple[Fraction, Fraction]]


class Timeline:
    """Decides the output frames between consecutive input frames."""

    def slots(self, start: Fraction, end: Fraction) -> Slots:
        """Slots for the input frame shown from ``start`` until the next one at ``end``."""
        raise NotImplementedError


@dataclass(frozen=True)
class FactorTimeline(Timeline):
    """``factor`` output frames per input frame: frame k*N+j is at t = j/N between k and k+1."""

    factor: int

    def slots(self, start: Fraction, end: Fraction) -> Slots:
        return [(Fraction(j, self.factor), start + (end - start) * j / self.factor)
                for j in range(self.factor)]


class RateTimeline(Timeline):
    """A constant output rate: frames at ``origin + i/rate``, each built at its exact time.

    The origin is the first input frame's time unless given.
    """

    def __init__(self, rate: Fraction, origin: Fraction | None = None):
        self.rate, self.origin = rate, origin

    def slots(self, start: Fraction, end: Fraction) -> Slots:
        if self.origin is None:
            self.origin = start
        first = -((self.origin - start) * self.rate // 1)  # ceil((start - origin) * rate)
        out = []
        i = first
        while (time := self.origin + i / self.rate) < end:
            out.append(((time - start) / (end - start), time))
            i += 1
        return out


class SceneDetector:
    """Flags a cut between two frames whose colours and coarse layout both change at once.

    The score adds two cheap measures on a 64x36 RGB thumbnail (made from the decoded planes,
    not from a full-size RGB frame): the distance of the colour histograms (insensitive to motion
    within a shot) and the mean absolute difference of a 32x18 grey thumbnail (which catches cuts
    between shots of similar colours).  On the real montage ``bikes.mp4`` the five cuts score
    0.43 to 1.01 and no pair within a shot scores above 0.18 (measured 2026-11-22 on the planes'
    thumbnail; the full-size RGB one it replaced gave the same to 0.005).
    """

    def __init__(self, threshold: float = 0.3):
        self.threshold = threshold

    def signature(self, picture: Picture) -> Signature:
        """The picture's :meth:`summary`, made once and kept by the picture: :func:`run` has the
        decoding thread make it, off the model's thread."""
        if picture.signature is None:
            picture.signature = self.summary(picture)
        return picture.signature

    @staticmethod
    def summary(picture: Picture) -> Signature:
        """Colour histograms of a 64x36 thumbnail, and its 32x18 grey image."""
        thumb = picture.thumbnail(64, 36)
        hist = [np.histogram(thumb[..., c], bins=16, range=(0.0, 1.0))[0] for c in range(3)]
        grey = cv2.resize(cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY), (32, 18), interpolation=cv2.INTER_AREA)
        return np.concatenate(hist).astype(np.float32) / (64 * 36), grey

    @staticmethod
    def distance(a: Signature, b: Signature) -> float:
        """Histogram distance (0 same, 1 disjoint) plus mean grey difference (0..1)."""
        return float(np.abs(a[0] - b[0]).sum() / 6.0 + np.abs(a[1] - b[1]).mean())

    def is_cut(self, a, b) -> bool:
        return self.distance(a, b) > self.threshold


def drop_duplicates(frames: Iterable[tuple[Fraction, Picture]], threshold: float = 0.004,
                    dropped: list[Fraction] | None = None) -> Iterator[tuple[Fraction, Picture]]:
    """Drop frames that repeat their predecessor (animation on twos, screen recordings).

    A frame is a duplicate when the mean absolute difference of its 1/8-size grey thumbnail to
    the last kept one is under ``threshold`` (about one 8-bit level).  The kept frames keep their
    own timestamps, so a rate timeline over them spaces motion evenly; the times of dropped frames
    are appended to ``dropped``.
    """
    kept = None
    for time, frame in frames:
        small = frame.thumbnail(max(1, frame.width // 8), max(1, frame.height // 8))
        thumb = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        if kept is not None and np.abs(thumb - kept).mean() < threshold:
            if dropped is not None:
                dropped.append(time)
            continue
        kept = thumb
        yield time, frame


@dataclass
class _Input:
    time: Fraction
    frame: Picture
    shot: int
    signature: object = None


@dataclass
class Stats:
    """What a run did: counted as it goes, reported at the end."""

    frames_in: int = 0
    frames_out: int = 0
    cuts: list[float] = field(default_factory=list)  # seconds of the first frame after each cut


#: most timesteps one model call is asked for: a pair's in-between frames are made and handed on
#: in batches of this many, so memory stays bounded whatever the factor
TIMESTEP_BATCH = 8
#: output frames per second of input beyond which a request is refused as absurd
MAX_OUTPUT_RATE = 1_000_000


def check_output_rate(rate: Fraction, source: str) -> None:
    """Refuse a factor or target rate that asks for more than :data:`MAX_OUTPUT_RATE` output frames
    per second of input, before any work: such a run cannot finish in any useful time."""
    if rate > MAX_OUTPUT_RATE:
        raise UsageError(f"{source}: {float(rate):g} output frames per second of input is more than "
                         f"{MAX_OUTPUT_RATE:,}; ask for a smaller factor or frame rate")


#: frames each queue between the threads holds
QUEUE_SIZE = 8
#: bytes per pixel of one frame as the pipeline holds it at most: float32 RGB, as a model that takes
#: RGB makes and sees them (an RGB source's too); decoded planes take 1.5 (8-bit 4:2:0) to 6
FRAME_BYTES_PER_PIXEL = 12
#: the decoder's and encoder's own buffers (libx264's lookahead, format conversions), in bytes per
#: pixel: a whole factor-2 flow run's measured slope (``benchmarks/memory_per_pixel.py flow``: 633),
#: whose frames are all RGB, less flow's figure for 2 timesteps (then 182 + 15) and the 21 frames of
#: :func:`memory_needed` (252).  A blend run on decoded planes needs less than the estimate (204).
#: Kept after flow's speed-up, which measured 592 - (167 + 10) - 252 = 163 (2026-11-22): the
#: estimate errs on the safe side.
CODEC_BYTES_PER_PIXEL = 184


def memory_needed(spec: ModelSpec, width: int, height: int, timesteps: int = 1,
                  queue_size: int = QUEUE_SIZE) -> int:
    """Bytes a run grows by beyond the loaded program: the model's working memory for a call of
    ``timesteps`` (at most :data:`TIMESTEP_BATCH`) from ``spec.memory_per_pixel`` (measured), the
    frames the pipeline holds at most (both queues full, one frame in each thread, the model's
    window and the frame after it) and the codecs' buffers."""
    first, further = spec.memory_per_pixel
    model = first + further * (min(timesteps, TIMESTEP_BATCH) - 1)
    frames = 2 * queue_size + 2 + spec.window + 1
    return width * height * (model + frames * FRAME_BYTES_PER_PIXEL + CODEC_BYTES_PER_PIXEL)


def available_memory() -> int | None:
    """Bytes this process can still take: the system's available memory, or what is left under
    the cgroup's limit if that is less; None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as meminfo:
            found += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    except OSError:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_memory(spec: ModelSpec, width: int, height: int, source: str, frames_per_input: float) -> None:
    """Refuse up front a run whose frames cannot fit in memory, saying which size would, rather
    than being killed by the system part-way.  ``frames_per_input`` (the factor, or output rate /
    input rate) bounds the timesteps of one model call."""
    needed = memory_needed(spec, width, height, math.ceil(frames_per_input))
    available = available_memory()
    if available is None or needed <= available:
        return
    shrink = (available / needed) ** 0.5
    fits = f"{int(width * shrink) // 2 * 2}x{int(height * shrink) // 2 * 2}"
    raise MediaError(f"{source}: {width}x{height} frames with model {spec.name} need about "
                     f"{needed / 2 ** 30:.1f} GiB of memory and {available / 2 ** 30:.1f} GiB is "
                     f"available; convert a copy scaled down to {fits} or less")


def schedule(
    frames: Iterable[tuple[Fraction, Picture]],
    model: Interpolator,
    timeline: Timeline,
    last_duration: Callable[[Fraction], Fraction],
    scenes: SceneDetector | None = None,
    stats: Stats | None = None,
) -> Iterator[tuple[Fraction, Picture]]:
    """Yield ``(output time, picture)`` in order for a stream of ``(input time, picture)``.

    For input frame k the model sees the window k-(W-1)//2 .. k+W//2, indices clamped to the ends
    of the stream and to k's shot.  Output slots at t = 0 are the input frame itself (or the
    model's restored frame, for deblurring models).  The model is asked for at most
    :data:`TIMESTEP_BATCH` timesteps at a time and each batch is yielded before the next is made.
    Slots of the pair across a cut, all earlier than the cut, repeat the old shot's last frame: the
    output changes shot at the time of the new shot's first frame.  Slots of the last frame repeat
    it, so the output lasts as long as the input.  ``last_duration(time)`` gives how long the last
    frame is shown.  A model that takes several windows a call (:func:`_batches`) is handed up to
    that many of those requests (a window, at most :data:`TIMESTEP_BATCH` timesteps) at once, and
    the same frames come out in the same order, each call's once it is made.
    """
    pairs = _pairs(frames, model, timeline, last_duration, scenes, stats or Stats())
    if _batches(model):
        yield from _fill_together(model, pairs)
    else:
        for pair in pairs:
            yield from _fill_slots(model, pair)


@dataclass
class _Pair:
    """What one input frame asks of the model: its window, its output slots, the frame itself (what
    a slot the model does not fill shows) and whether the next frame exists in the same shot (if
    not, nothing is made between them)."""

    window: list[Picture]
    slots: Slots
    keyframe: Picture
    pair_ok: bool


def _pairs(frames: Iterable[tuple[Fraction, Picture]], model: Interpolator, timeline: Timeline,
           last_duration: Callable[[Fraction], Fraction], scenes: SceneDetector | None,
           stats: Stats) -> Iterator[_Pair]:
    """Each input frame's :class:`_Pair`, in order, reading the stream only as far as the window
    after it needs and forgetting frames no later window sees, so memory stays bounded.  A
    ``stateful`` model is reset at each cut, before the new shot's first pair is handed on."""
    spec = model.spec
    before = (spec.window - 1) // 2  # a window of 1 (an upscaler) is the frame alone
    after = spec.window - 1 - before
    source = iter(frames)
    buffer: dict[int, _Input] = {}
    ended = False
    next_index = 0
    shot_start = 0

    def pull(upto: int) -> None:
        nonlocal ended, next_index
        while not ended and next_index <= upto:
            item = next(source, None)
            if item is None:
                ended = True
                return
            time, frame = item
            entry = _Input(time, frame, 0)
            if scenes is not None:
                entry.signature = scenes.signature(frame)
            previous = buffer.get(next_index - 1)
            if previous is not None:
                entry.shot = previous.shot
                if scenes is not None and scenes.is_cut(previous.signature, entry.signature):
                    entry.shot += 1
                    stats.cuts.append(float(time))
            buffer[next_index] = entry
            next_index += 1
            stats.frames_in += 1

    k = 0
    while True:
        pull(k + after)
        if k not in buffer:
            break
        current = buffer[k]
        if k > 0 and buffer[k - 1].shot != current.shot:
            shot_start = k
            if spec.stateful:
                model.reset()
        hi = k
        while hi < min(k + after, next_index - 1) and buffer[hi + 1].shot == current.shot:
            hi += 1
        pair_ok = hi > k  # the next frame exists and is in the same shot
        window = [buffer[min(max(k + o, shot_start), hi)].frame for o in range(-before, after + 1)]
        end = buffer[k + 1].time if k + 1 in buffer else current.time + last_duration(current.time)
        yield _Pair(window, timeline.slots(current.time, end), current.frame, pair_ok)
        for stale in [i for i in buffer if i < k - before]:
            del buffer[stale]
        k += 1


def _chunks(slots: Slots) -> list[Slots]:
    """A frame's slots, :data:`TIMESTEP_BATCH` at a time: what one request to the model covers (one
    empty chunk for a frame without slots, where a deblurring model still restores it)."""
    return [slots[start:start + TIMESTEP_BATCH] for start in range(0, max(len(slots), 1), TIMESTEP_BATCH)]


def _asked(chunk: Slots, pair: _Pair) -> list[Fraction]:
    """The timesteps of ``chunk`` the model makes: none at an input frame (t = 0) or across a cut."""
    return [t for t, _ in chunk if t > 0 and pair.pair_ok]


def _placed(chunk: Slots, made: dict[Fraction, Picture],
            keyframe: Picture) -> Iterator[tuple[Fraction, Picture]]:
    """The chunk's outputs: the made frame of each slot, the keyframe where none was made."""
    for t, time in chunk:
        yield time, made.get(t, keyframe)


def _fill_slots(model: Interpolator, pair: _Pair) -> Iterator[tuple[Fraction, Picture]]:
    """The frames of one input frame's slots, one request (:func:`_chunks`) a call.

    A deblurring model is asked for t = 0 first (in the first request), and its restored frame
    stands for the input frame in every slot the model does not fill.
    """
    asked_keyframe = not model.spec.restores_keyframes
    keyframe = pair.keyframe
    for chunk in _chunks(pair.slots):
        ask = _asked(chunk, pair)
        if not asked_keyframe:
            ask.insert(0, Fraction(0))
            asked_keyframe = True
        times = [float(t) for t in ask]
        made = dict(zip(ask, model.interpolate_pictures(pair.window, times), strict=True)) if ask else {}
        keyframe = made.get(Fraction(0), keyframe)
        yield from _placed(chunk, made, keyframe)


def _batches(model: Interpolator) -> bool:
    """Whether the model takes several windows a call: only a stateless one that makes no t = 0
    frame, whose calls are independent of each other and of the order they are made in."""
    spec = model.spec
    return model.pairs_per_call > 1 and not spec.stateful and not spec.restores_keyframes


#: one request to the model: the pair, one chunk of its slots, and the timesteps it asks for
_Request = tuple[_Pair, Slots, list[Fraction]]


def _fill_together(model: Interpolator, pairs: Iterable[_Pair]) -> Iterator[tuple[Fraction, Picture]]:
    """The outputs :func:`_fill_slots` gives pair by pair, with the requests of consecutive pairs
    gathered :attr:`~slomo.interpolator.Interpolator.pairs_per_call` at a time into one call.

    A call carries exactly the requests one-at-a-time calls would (a window, at most
    :data:`TIMESTEP_BATCH` timesteps), so the frames are the same; a frame whose slots need no
    model (an input frame's time, the pair across a cut, the last frame) still takes a place, so a
    group spans at most ``pairs_per_call`` requests and memory stays bounded whatever the timeline.
    Frames without slots take none: they have nothing to make or yield.
    """
    group: list[_Request] = []
    for pair in pairs:
        for chunk in _chunks(pair.slots) if pair.slots else []:
            group.append((pair, chunk, _asked(chunk, pair)))
            if len(group) == model.pairs_per_call:
                yield from _made_together(model, group)
                group = []
    yield from _made_together(model, group)


def _made_together(model: Interpolator, group: Sequence[_Request]) -> Iterator[tuple[Fraction, Picture]]:
    """One :meth:`~slomo.interpolator.Interpolator.interpolate_pictures_batch` call for the requests
    that ask for frames, then every request's outputs in order."""
    asking = [(pair.window, [float(t) for t in ask]) for pair, _, ask in group if ask]
    made = iter(model.interpolate_pictures_batch([window for window, _ in asking], [ts for _, ts in asking])
                if asking else [])
    for pair, chunk, ask in group:
        frames = dict(zip(ask, next(made), strict=True)) if ask else {}
        yield from _placed(chunk, frames, pair.keyframe)


_END = object()


class _Channel:
    """A bounded queue whose ends give up when the run is being stopped."""

    def __init__(self, size: int, stop: threading.Event):
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = stop

    def put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _END:
                return
            yield item


#: One interpolation pass: a model and the timeline it fills.
Stage = tuple[Interpolator, Timeline]


def run(
    frames: Iterable[tuple[Fraction, Picture]],
    stages: Sequence[Stage],
    sink: Callable[[Fraction, Picture], None],
    last_duration: Callable[[Fraction], Fraction],
    scenes: SceneDetector | None = None,
    on_frame: Callable[[Stats], None] | None = None,
    queue_size: int = QUEUE_SIZE,
) -> Stats:
    """Decode, interpolate and encode concurrently; re-raise the first error of any thread.

    Several stages chain in the model thread, each consuming the previous one's output (BIN
    deblurs and doubles the rate, then RIFE makes the rest).  The decoding thread has the first
    stage's model prepare each picture (:meth:`~slomo.interpolator.Interpolator.prepare`) and
    makes its scene signature, so the model's thread does nothing but the model.  Stats
    count the first stage's input and the last stage's output.
    """
    stop = threading.Event()
    errors: list[BaseException] = []
    decoded = _Channel(queue_size, stop)
    produced = _Channel(queue_size, stop)
    stats = Stats()

    def decode() -> None:
        try:
            for item in frames:
                if stop.is_set():
                    return
                if stages:
                    stages[0][0].prepare(item[1])
                if scenes is not None:
                    scenes.signature(item[1])
                decoded.put(item)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()
        finally:
            decoded.put(_END)

    def encode() -> None:
        try:
            for time, frame in produced:
                sink(time, frame)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()

    workers = [threading.Thread(target=decode, name="slomo-decode", daemon=True),
               threading.Thread(target=encode, name="slomo-encode", daemon=True)]
    for worker in workers:
        worker.start()
    try:
        stream: Iterable[tuple[Fraction, Picture]] = decoded
        for index, (model, timeline) in enumerate(stages):
            stream = schedule(stream, model, timeline, last_duration, scenes,
                              stats if index == 0 else Stats())
        for item in stream:
            if stop.is_set():
                break
            produced.put(item)
            stats.frames_out += 1
            if on_frame:
                on_frame(stats)
        produced.put(_END)
        workers[1].join()  # let the encoder drain before stopping anything
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    if errors:
        raise errors[0]
    return stats
