"""The timing rules: which output frames exist, at which times, for factor, --fps and slow motion."""

from dataclasses import replace
from fractions import Fraction as F

import numpy as np
import pytest

import slomo
from slomo import interpolator, pipeline
from slomo.api import parse_rate
from slomo.frames import Picture


def test_factor_slots_follow_the_contract():
    slots = pipeline.FactorTimeline(4).slots(F(1, 25), F(2, 25))
    assert [t for t, _ in slots] == [0, F(1, 4), F(1, 2), F(3, 4)]
    assert [time for _, time in slots] == [F(4, 100), F(5, 100), F(6, 100), F(7, 100)]


def test_rate_slots_are_exact_for_non_integer_ratios():
    timeline = pipeline.RateTimeline(F(60), origin=F(0))
    slots = timeline.slots(F(1, 24), F(2, 24))  # 24 -> 60 fps: 2.5 output frames per input
    assert [time for _, time in slots] == [F(3, 60), F(4, 60)]
    assert [t for t, _ in slots] == [F(1, 5), F(3, 5)]


@pytest.mark.parametrize("text,expected", [("60", F(60)), ("59.94", F(60000, 1001)),
                                           ("60000/1001", F(60000, 1001)), ("23.976", F(24000, 1001)),
                                           ("12.5", F(25, 2))])
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


class _Recorder(interpolator.Interpolator):
    """A model that records its calls and returns frames tagged with the time asked."""

    def __init__(self, window=2):
        self.spec = interpolator.ModelSpec("recorder", "", lambda o: self, window=window)
        self.calls = []

    def interpolate(self, window, times):
        self.calls.append(([float(w[0, 0, 0]) for w in window], list(times)))
        return [np.full_like(window[0], 100 + t) for t in times]


def _frames(n):
    return [(F(i, 10), Picture(rgb=np.full((2, 2, 3), float(i), np.float32))) for i in range(n)]


def _run(model, n, factor, scenes=None):
    return list(pipeline.schedule(_frames(n), model, pipeline.FactorTimeline(factor),
                                  lambda t: F(1, 10), scenes))


@pytest.mark.parametrize("factor", [2, 3, 8])
def test_schedule_counts_and_order(factor):
    out = _run(_Recorder(), 5, factor)
    assert len(out) == 5 * factor
    times = [t for t, _ in out]
    assert (times == sorted(times) and times[0] == 0
            and times == [F(i, 10 * factor) for i in range(5 * factor)])
    # first and last input frames are in the output untouched; the last is held to the end
    assert out[0][1].rgb()[0, 0, 0] == 0 and all(f.rgb()[0, 0, 0] == 4 for _, f in out[-factor:])


def test_window_of_four_is_replicated_at_the_ends():
    model = _Recorder(window=4)
    _run(model, 4, 2)
    windows = [w for w, _ in model.calls]
    assert windows == [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 3]]


class _CutAfter:
    """Scene detector stand-in: a cut before the frames listed."""

    def __init__(self, cut_before):
        self.cut_before = cut_before

    def signature(self, frame):
        return frame.rgb()[0, 0, 0]

    def is_cut(self, a, b):
        return b in self.cut_before


def test_no_frame_is_blended_across_a_cut_and_windows_are_clipped():
    model = _Recorder(window=4)
    out = list(pipeline.schedule(_frames(6), model, pipeline.FactorTimeline(4), lambda t: F(1, 10),
                                 _CutAfter({3.0})))
    values = [float(f.rgb()[0, 0, 0]) for _, f in out]
    # slots between 2 and 3 (the cut) are earlier than the cut: the old shot's last frame
    assert values[8:13] == [2, 2, 2, 2, 3]
    assert all(max(w) <= 2 for w, _ in model.calls if w[1] < 3)  # shot one never sees shot two
    assert all(min(w) >= 3 for w, _ in model.calls if w[1] >= 3)
    assert len(out) == 24


class _Position(_Recorder):
    """Makes frames whose value is their position in input frames: ``k + t`` between k and k+1."""

    def interpolate(self, window, times):
        super().interpolate(window, times)
        return [np.full_like(window[0], window[0][0, 0, 0] + t) for t in times]


@pytest.mark.parametrize("timeline", [pipeline.FactorTimeline(4), pipeline.RateTimeline(F(37))])
def test_output_switches_shot_at_the_cut_time(timeline):
    cut = F(3, 10)  # the time of the new shot's first frame (input frame 3)
    out = list(pipeline.schedule(_frames(6), _Position(), timeline, lambda t: F(1, 10), _CutAfter({3.0})))
    shot = [("new" if frame.rgb()[0, 0, 0] >= 3 else "old") for _, frame in out]
    assert shot == [("new" if time >= cut else "old") for time, _ in out]


def test_a_pair_is_made_in_bounded_batches_and_streamed():
    model = _Recorder()
    stream = pipeline.schedule(_frames(3), model, pipeline.FactorTimeline(200), lambda t: F(1, 10))
    first = next(stream)
    assert first[0] == 0 and len(model.calls) == 1  # handed on before the rest of the pair is made
    out = [first, *stream]
    assert len(out) == 600 and [t for t, _ in out] == [F(i, 2000) for i in range(600)]
    assert max(len(times) for _, times in model.calls) <= pipeline.TIMESTEP_BATCH
    assert sum(len(times) for _, times in model.calls) == 2 * 199  # each in-between made once


class _Batching(_Position):
    """:class:`_Position` taking up to ``pairs_per_call`` windows a call, recording how many each
    call carried (the base's batch loops over single windows, so ``calls`` lists every request)."""

    def __init__(self, pairs_per_call, **spec):
        super().__init__()
        self.spec = replace(self.spec, **spec)
        self.pairs_per_call = pairs_per_call
        self.batches = []

    def interpolate_pictures_batch(self, windows, times):
        self.batches.append(len(windows))
        return super().interpolate_pictures_batch(windows, times)


def _outputs(model, frames, timeline):
    """(time, value, whether it is an input picture) of every output of a run with cuts before 3 and 7."""
    inputs = [picture for _, picture in frames]
    out = pipeline.schedule(frames, model, timeline, lambda t: F(1, 10), _CutAfter({3.0, 7.0}))
    return [(time, float(p.rgb()[0, 0, 0]), any(p is q for q in inputs)) for time, p in out]


@pytest.mark.parametrize("timeline", [lambda: pipeline.FactorTimeline(2), lambda: pipeline.FactorTimeline(4),
                                      lambda: pipeline.FactorTimeline(20),
                                      lambda: pipeline.RateTimeline(F(37))], ids=["2x", "4x", "20x", "37fps"])
def test_batched_calls_give_the_frames_of_one_pair_at_a_time(timeline):
    """Three windows a call give the very outputs (times, values, input pictures passed on) of one
    window a call, from the same requests in the same order: across cuts, at the last frame, and
    with more than TIMESTEP_BATCH timesteps a pair (20x)."""
    frames = _frames(10)
    single, batched = _Batching(1), _Batching(3)
    assert _outputs(batched, frames, timeline()) == _outputs(single, frames, timeline())
    assert batched.calls == single.calls and single.batches == []
    assert max(batched.batches) == 3 and len(batched.batches) < len(single.calls)


def test_batching_reads_only_the_frames_its_calls_need():
    """The first outputs come out once three pairs are made: four frames read, not the stream."""
    read = []

    def source():
        for item in _frames(50):
            read.append(item[0])
            yield item

    stream = pipeline.schedule(source(), _Batching(3), pipeline.FactorTimeline(2), lambda t: F(1, 10))
    next(stream)
    assert len(read) == 4


@pytest.mark.parametrize("flag", ["stateful", "restores_keyframes"])
def test_a_model_with_state_or_keyframes_is_never_batched(flag):
    """Such a model's calls depend on the previous one or ask t = 0 first: one window a call."""
    frames = _frames(10)
    single, batched = _Batching(1, **{flag: True}), _Batching(3, **{flag: True})
    want = _outputs(single, frames, pipeline.FactorTimeline(2))
    assert _outputs(batched, frames, pipeline.FactorTimeline(2)) == want
    assert batched.batches == [] and batched.calls == single.calls


@pytest.mark.parametrize("request_", [{"factor": 10 ** 9}, {"factor": 1e9}, {"fps": "2000000"}])
def test_absurd_rates_are_refused_before_any_work(clip, tmp_path, monkeypatch, request_):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(interpolator, "create", no_model)
    with pytest.raises(slomo.UsageError, match="output frames per second"):
        slomo.convert(clip, tmp_path / "out.mp4", model="blend", **request_)
    assert not (tmp_path / "out.mp4").exists()
