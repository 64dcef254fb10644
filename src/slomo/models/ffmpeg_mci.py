"""``ffmpeg-mci``: FFmpeg's ``minterpolate`` motion-compensated interpolation, through PyAV.

The filter runs in-process through libavfilter (``av.filter.Graph``), with the settings usually
recommended for it: ``mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1`` (block motion estimation
in both directions with the default EPZS search, 16x16 blocks, search range 32 pixels, adaptive
overlapped block motion compensation, variable-size blocks).  It is the classical baseline that
``ffmpeg -vf minterpolate`` users know.  No ffmpeg binary is involved.

How one pair becomes the frames at the requested ``t``:

- minterpolate keeps four frames; it interpolates between its 2nd and 3rd, and it needs the motion
  of the 2nd frame towards the 3rd (estimated when the 3rd arrives) and of the 3rd back towards
  the 2nd (estimated when a 4th arrives).  So the pair ``(a, b)`` is fed as ``a, b, b``: the
  filter itself duplicates its first frame, and the trailing copy of ``b`` only supplies the
  context that flushes the pair.  An isolated pair therefore gives the same frames as the pair
  inside a longer stream would with ``window=2``.
- Timesteps ``t = j/N`` (every factor-``N`` run) are produced by one graph: the inputs are one
  second apart and the output rate is ``N`` fps, so the motion is estimated once per pair.
- Any other ``t`` gets its own graph, with the inputs placed so that an output tick falls at
  ``t``.  minterpolate works out the blend position as an integer ``alpha`` in 1/1024 steps
  (``ALPHA_MAX``), so every ``t`` is effectively rounded to the nearest multiple of 1/1024 (an
  error of at most 1/2048 of the frame interval).

Approximations, all inherent to the filter: it works on 8-bit YUV, so frames are converted
RGB -> ``yuv444p`` (BT.601, limited range; no chroma subsampling) and back, which costs about
52 dB PSNR on its own and clips high-bit-depth sources to 8 bits; ``scd=none`` switches the
filter's own scene-change detection off, because slomo's pipeline detects cuts itself (with its
detector on, a cut would otherwise give a repeated frame twice over); ``scale`` is ignored (the
filter has no such option).  The filter is single-threaded C code.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import av
import av.filter

from ..frames import Frame, from_frame, to_frame
from ..interpolator import Interpolator, ModelOptions, ModelSpec

#: minterpolate's options (besides ``fps``)
FILTER_OPTIONS = "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none"
#: minterpolate's blend positions are multiples of 1/ALPHA_MAX
ALPHA_MAX = 1024
#: largest N tried for a shared t = j/N grid (one motion estimation for all timesteps)
MAX_GRID = 64


def _to_yuv(frame: Frame) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(from_frame(frame), format="rgb24").reformat(
        format="yuv444p")


def _to_float(frame: av.VideoFrame) -> Frame:
    return to_frame(frame.to_ndarray(format="rgb24"))


def _grid(times: Sequence[float]) -> int | None:
    """The smallest N <= MAX_GRID with every t a multiple of 1/N, if any."""
    for n in range(2, MAX_GRID + 1):
        if all(abs(t * n - round(t * n)) < 1e-6 for t in times):
            return n
    return None


def _run(a: av.VideoFrame, b: av.VideoFrame, pts: Sequence[int], time_base: Fraction,
         fps: Fraction) -> dict[int, av.VideoFrame]:
    """Feed ``a, b, b`` (yuv444p) at ``pts`` (in ``time_base``) to minterpolate at ``fps``; outputs by pts."""
    graph = av.filter.Graph()
    src = graph.add_buffer(width=a.width, height=a.height, format=a.format, time_base=time_base)
    mi = graph.add("minterpolate", f"fps={fps.numerator}/{fps.denominator}:{FILTER_OPTIONS}")
    sink = graph.add("buffersink")
    src.link_to(mi)
    mi.link_to(sink)
    graph.configure()
    out: dict[int, av.VideoFrame] = {}
    for frame, p in zip((a, b, b), pts, strict=True):
        frame.pts = p
        frame.time_base = time_base
        src.push(frame)
        while True:
            try:
                made = sink.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            assert isinstance(made, av.VideoFrame) and made.pts is not None  # a video graph's output
            out[made.pts] = made
    return out


class FfmpegMCI(Interpolator):
    def __init__(self, options: ModelOptions):
        pass

    def interpolate(self, window: Sequence[Frame], times: Sequence[float]) -> list[Frame]:
        a, b = window
        ya, yb = _to_yuv(a), _to_yuv(b)
        n = _grid(times)
        if n is not None:
            # inputs 1 s apart, output ticks every 1/n s starting at a: tick j is t = j/n
            made = _run(ya, yb, (0, 1, 2), Fraction(1), Fraction(n))
            return [a if round(t * n) == 0 else _to_float(made[round(t * n)]) for t in times]
        out = []
        for t in times:
            q = round(t * ALPHA_MAX)
            if q <= 0:
                out.append(a)
                continue
            if q >= ALPHA_MAX:
                out.append(b)
                continue
            # a at (1 - t) s, b one second later; output ticks on whole seconds: the tick at 1 s
            # is t after a.  Its ticks start at a's time rounded, at most one tick before it.
            start = ALPHA_MAX - q
            made = _run(ya, yb, (start, start + ALPHA_MAX, start + 2 * ALPHA_MAX),
                        Fraction(1, ALPHA_MAX), Fraction(1))
            out.append(_to_float(made[1]))
        return out


SPEC = ModelSpec(
    name="ffmpeg-mci",
    summary="FFmpeg minterpolate (mci, aobmc, bidir, vsbmc) via libavfilter (no weights)",
    factory=FfmpegMCI,
    aliases=("minterpolate",),
)
