"""Chunked conversion (slomo.chunks): the joined output is the one-piece output, bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import moving_frames, read_video, write_clip

import slomo
from slomo import chunks, interpolator, weights

ENCODE = {"crf": "0", "preset": "ultrafast", "g": "7", "bf": "2"}  # a keyframe every 7 frames


def two_shots(path: Path, cut: int, frames: int = 60, **options) -> Path:
    """A 25 fps clip with B-frames whose second shot (brighter, other motion) starts
    at frame ``cut``, keyframes every 7 frames, and a tone."""
    first = moving_frames(cut, size=(96, 64))
    second = [f // 3 + 170 for f in moving_frames(frames - cut, size=(96, 64), seed=5, motion=(0, 2))]
    return write_clip(path, first + second, fps=25, options=ENCODE, **options)


def packets(path) -> list[tuple[str, int, bytes]]:
    """Every stream's packets: (kind, pts, payload)."""
    with av.open(str(path)) as container:
        return [(p.stream.type, p.pts, bytes(p)) for p in container.demux() if p.size]


def assert_same_video(one_piece: str, chunked: str) -> None:
    frames_a, times_a, _ = read_video(one_piece)
    frames_b, times_b, _ = read_video(chunked)
    assert times_a == times_b
    assert all((a == b).all() for a, b in zip(frames_a, frames_b, strict=True))
    assert packets(one_piece) == packets(chunked)  # the encoder saw the same frames: same bytes


def test_plan_starts_chunks_at_keyframes_with_context(tmp_path):
    times = [Fraction(i, 25) for i in range(60)]
    keyframes = times[::7]
    pieces = chunks.plan(times, keyframes, 0.5, 3, tmp_path)
    starts = [p.start for p in pieces]
    assert starts == [None, Fraction(14, 25), Fraction(28, 25), Fraction(42, 25), Fraction(56, 25)]
    assert [p.end for p in pieces] == [*starts[1:], None]
    second = pieces[1]
    assert second.first == Fraction(11, 25) and second.last == Fraction(30, 25)  # 3 frames each side
    assert second.seek == Fraction(7, 25)  # the keyframe before the context
    assert pieces[-1].last == times[-1] and pieces[0].first == times[0] and pieces[0].seek == 0
    owned = [sum(p.owns(t) for t in times) for p in pieces]
    assert owned == [14, 14, 14, 14, 4]  # every frame in exactly one chunk


def test_plan_without_timestamps_is_one_chunk(tmp_path):
    pieces = chunks.plan([], [], 1.0, 3, tmp_path)
    assert len(pieces) == 1 and pieces[0].owns(Fraction(100)) and pieces[0].seek is None


# Chunks start at frames 14, 28, 42, 56: cuts just before, at and after a chunk's first frame.
@pytest.mark.parametrize("cut", [27, 28, 29])
@pytest.mark.parametrize("model", ["blend", "flow"])
def test_chunked_equals_one_piece_across_scene_cuts(tmp_path, model, cut):
    clip = two_shots(tmp_path / "clip.mp4", cut)
    one = slomo.convert(clip, tmp_path / "one.mp4", model=model, factor=3)
    split = slomo.convert(clip, tmp_path / "split.mp4", model=model, factor=3, chunk_seconds=0.5)
    assert len(split.chunks) == 5 and one.cuts == split.cuts == [pytest.approx(cut / 25)]
    assert (split.frames_in, split.frames_out) == (one.frames_in, one.frames_out) == (60, 180)
    assert_same_video(one.output, split.output)
    assert not (tmp_path / ".split.mp4.slomo-work").exists()  # the work folder is removed


class WindowModel(interpolator.Interpolator):
    """A stand-in for FLAVR and BIN: every output depends on the whole window, and (stateful, like
    BIN's cached step) on the previous call's window; keyframes are rewritten too."""

    def __init__(self):
        self.previous = None

    def interpolate(self, window, times):
        weights = np.arange(1, len(window) + 1, dtype=np.float32)
        summary = np.tensordot(weights / weights.sum(), np.stack(window), axes=1)
        memory = self.previous if self.previous is not None else summary
        self.previous = summary
        middle = len(window) // 2
        return [0.4 * summary + 0.2 * memory + 0.4 * ((1 - t) * window[middle - 1] + t * window[middle])
                for t in times]

    def reset(self):
        self.previous = None


@pytest.fixture(params=[4, 6], ids=["window4", "window6"])
def window_model(request):
    name = f"test-window{request.param}"
    interpolator.register(interpolator.ModelSpec(
        name=name, summary="test stand-in", factory=lambda options: WindowModel(), window=request.param,
        stateful=True, restores_keyframes=True))
    yield name
    del interpolator._REGISTRY[name]


def test_chunked_windowed_stateful_model_equals_one_piece(tmp_path, window_model):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    one = slomo.convert(clip, tmp_path / "one.mp4", model=window_model, factor=2)
    split = slomo.convert(clip, tmp_path / "split.mp4", model=window_model, factor=2, chunk_seconds=0.25)
    assert len(split.chunks) == 9
    assert_same_video(one.output, split.output)


@pytest.mark.parametrize("options", [{"fps": "60"}, {"slowmo": True, "factor": 2}],
                         ids=["rate", "slowmo"])
def test_chunked_rate_and_slow_motion_with_audio(tmp_path, options):
    clip = two_shots(tmp_path / "clip.mp4", 29)
    one = slomo.convert(clip, tmp_path / "one.mp4", model="flow", **options)
    split = slomo.convert(clip, tmp_path / "split.mp4", model="flow", chunk_seconds=0.3, **options)
    assert_same_video(one.output, split.output)  # packets include the (stretched) audio


@pytest.mark.slow
def test_chunked_rife_on_the_cpu(tmp_path):
    if not all(weights.installed(name) for name in interpolator.get_spec("rife").weights):
        pytest.skip("RIFE weights not installed")
    clip = two_shots(tmp_path / "clip.mp4", 7, frames=12)
    one = slomo.convert(clip, tmp_path / "one.mp4", model="rife", device="cpu")
    split = slomo.convert(clip, tmp_path / "split.mp4", model="rife", device="cpu", chunk_seconds=0.2)
    assert len(split.chunks) == 2
    assert_same_video(one.output, split.output)


@pytest.mark.slow
def test_chunks_in_parallel_processes(tmp_path):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    one = slomo.convert(clip, tmp_path / "one.mp4", model="blend")
    split = slomo.convert(clip, tmp_path / "split.mp4", model="blend", chunk_seconds=0.5, jobs=2)
    assert_same_video(one.output, split.output)


@pytest.mark.parametrize("options", [{"dedup": True}, {"deinterlace": True}, {"chunk_seconds": 0}])
def test_what_cannot_be_chunked_is_refused(clip, tmp_path, options):
    with pytest.raises(slomo.UsageError):
        slomo.convert(clip, tmp_path / "out.mp4", model="blend", **{"chunk_seconds": 1, **options})


@pytest.mark.parametrize("options", [{"jobs": 0}, {"resume": True}, {"chunk_seconds": -1.0}])
def test_chunk_options_are_checked_with_the_request(options):
    """Refused by :func:`slomo.api.request`, before any input is read (this one does not exist)."""
    with pytest.raises(slomo.UsageError):
        slomo.api.convert_many(["missing.mp4"], model="blend", **options)


def test_a_chunked_output_follows_the_output_rules(tmp_path):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"kept")
    with pytest.raises(slomo.MediaError, match="exists"):
        slomo.convert(clip, out, model="blend", chunk_seconds=0.25)
    with pytest.raises(slomo.MediaError, match="input"):
        slomo.convert(clip, clip, model="blend", chunk_seconds=0.25, overwrite=True)
    assert out.read_bytes() == b"kept"
    slomo.convert(clip, out, model="blend", chunk_seconds=0.25, overwrite=True)
    assert read_video(out)[0] and sorted(os.listdir(tmp_path)) == ["clip.mp4", "out.mp4"]  # no leftovers


def test_resume_reuses_finished_chunks_of_the_same_request_only(tmp_path, monkeypatch):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    one = slomo.convert(clip, tmp_path / "one.mp4", model="blend")
    target = tmp_path / "split.mp4"

    def crash(*args):
        raise RuntimeError("crashed before the end")

    with monkeypatch.context() as patch:
        patch.setattr(chunks._Join, "close", crash)
        with pytest.raises(RuntimeError):
            slomo.convert(clip, target, model="blend", chunk_seconds=0.5, resume=True)
    assert not target.exists()
    resumed = slomo.convert(clip, target, model="blend", chunk_seconds=0.5, resume=True, overwrite=True)
    assert [c["reused"] for c in resumed.chunks] == [True] * 5
    assert_same_video(one.output, resumed.output)

    with monkeypatch.context() as patch:
        patch.setattr(chunks._Join, "close", crash)
        with pytest.raises(RuntimeError):
            slomo.convert(clip, target, model="blend", chunk_seconds=0.5, overwrite=True, resume=True)
    changed = slomo.convert(clip, target, model="blend", chunk_seconds=0.5, resume=True, overwrite=True,
                            scene_threshold=0.5)  # another request: its chunks are not these
    assert not any(c["reused"] for c in changed.chunks)


def test_work_key_follows_the_input_and_the_request(tmp_path):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    request = {"model": "flow", "factor": 2}
    key = chunks._work_key(str(clip), request, 1.0)
    assert key == chunks._work_key(str(clip), dict(request), 1.0)
    assert key != chunks._work_key(str(clip), {**request, "factor": 3}, 1.0)
    assert key != chunks._work_key(str(clip), request, 2.0)
    os.utime(clip, ns=(0, 0))
    assert key != chunks._work_key(str(clip), request, 1.0)


@pytest.mark.slow
def test_resume_after_sigkill_finishes_identically(tmp_path):
    frames = moving_frames(70, size=(320, 192), motion=(2, 1))
    clip = write_clip(tmp_path / "clip.mp4", frames, fps=25, options=ENCODE)
    target = tmp_path / "out.mp4"
    command = [sys.executable, "-m", "slomo.cli", str(clip), "-m", "flow", "-f", "3", "-o", str(target),
               "--chunk-seconds", "0.2", "--resume", "--json"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    work = tmp_path / ".out.mp4.slomo-work"
    while run.poll() is None and len(list(work.glob("*/chunk-*.json"))) < 2:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    finished = len(list(work.glob("*/chunk-*.json")))
    assert not target.exists() and 2 <= finished < 10

    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["converted"][0]
    assert sum(c["reused"] for c in record["chunks"]) == finished and len(record["chunks"]) == 10
    one = slomo.convert(clip, tmp_path / "one.mp4", model="flow", factor=3)
    assert_same_video(one.output, str(target))
    assert not work.exists()


def test_a_failed_run_leaves_nothing_unless_resuming(tmp_path):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    with pytest.raises(slomo.SlomoError):
        slomo.convert(clip, tmp_path / "out.mp4", model="blend", chunk_seconds=0.5, ray="127.0.0.1:1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
