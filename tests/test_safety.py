"""Nothing lost, nothing left behind: outputs never replace inputs, land whole, and fail cleanly."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from conftest import moving_frames, read_video, write_clip
from test_cli import slomo as run_cli

import slomo
from slomo import outputs


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def digests(folder):
    return {p.name: digest(p) for p in sorted(folder.iterdir()) if p.is_file()}


def write_frames(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(moving_frames(count, size=(48, 32), seed=seed)):
        cv2.imwrite(str(folder / f"{index:06d}.png"), frame)
    return folder


def hidden(folder):
    return sorted(p.name for p in folder.rglob(".*"))


class Boom(Exception):
    pass


def fail_after(frames):
    """An on_progress callback that makes the run fail part-way."""
    def on_progress(done, total):
        if done >= frames:
            raise Boom()
    return on_progress


# 1. image sequences follow the same rules as files

def test_image_sequence_output_never_replaces_the_input_frames(tmp_path):
    frames = write_frames(tmp_path / "frames", 6)
    before = digests(frames)
    code, _, err = run_cli(frames / "%06d.png", "-m", "blend", "-o", frames / "%06d.png", "-y")
    assert code == 1 and "would replace the input" in err
    assert digests(frames) == before and hidden(tmp_path) == []


def test_existing_frames_are_replaced_only_with_y(clip, tmp_path):
    users = write_frames(tmp_path / "out", 3, seed=5)
    before = digests(users)
    code, _, err = run_cli(clip, "-m", "blend", "-o", users / "%06d.png")
    assert code == 1 and "3 frames exist" in err and digests(users) == before
    assert run_cli(clip, "-m", "blend", "-o", users / "%06d.png", "-y", "-q")[0] == 0
    assert len(digests(users)) == 24 and digests(users)["000000.png"] != before["000000.png"]


def test_a_failed_sequence_run_keeps_the_frames_it_would_have_replaced(clip, tmp_path):
    users = write_frames(tmp_path / "out", 30, seed=5)
    before = digests(users)
    with pytest.raises(Boom):
        slomo.convert(clip, users / "%06d.png", model="blend", overwrite=True, on_progress=fail_after(6))
    assert digests(users) == before and hidden(tmp_path) == []


# 2. temporary names are unique per run and created exclusively

def test_two_runs_writing_one_output_do_not_mix(clip, tmp_path):
    other = write_clip(tmp_path / "other.mp4", moving_frames(8, seed=3))
    dst = tmp_path / "out.mp4"
    second = []

    def start_another_run(done, total):
        if done == 6 and not second:  # the first run's temporary file exists by now
            second.append(slomo.convert(other, dst, model="blend", overwrite=True))

    first = slomo.convert(clip, dst, model="blend", overwrite=True, on_progress=start_another_run)
    assert second and second[0].frames_out == 16
    frames, _, _ = read_video(dst)  # the last run to finish wins, whole
    assert first.frames_out == len(frames) == 24
    assert hidden(tmp_path) == []


def test_temporary_names_are_hidden_unique_and_new(tmp_path):
    target = outputs.plan(str(tmp_path / "in.mp4"), tmp_path / "out.mp4", factor=2, fps=None,
                          slowmo=False, overwrite=False)
    one, two = target.land(), target.land()
    assert one.path != two.path and one.path.parent == two.path.parent == tmp_path
    assert one.path.name.startswith(".out.") and str(os.getpid()) in one.path.name
    assert one.path.suffix == ".mp4" and one.path.exists() and two.path.exists()
    one.discard(), two.discard()
    assert list(tmp_path.iterdir()) == []


# 3. nothing that resolves to an input is opened for writing

def test_an_input_named_like_the_old_temporary_file_is_left_alone(tmp_path):
    src = write_clip(tmp_path / ".out.partial.mp4", moving_frames(12), audio=False)
    before = digest(src)
    result = slomo.convert(src, tmp_path / "out.mp4", model="blend")
    assert digest(src) == before and result.frames_in == 12
    assert len(read_video(tmp_path / "out.mp4")[0]) == 24


@pytest.mark.parametrize("link", [os.symlink, os.link])
def test_an_output_that_is_the_input_under_another_name_is_refused(clip, tmp_path, link):
    alias = tmp_path / "alias.mp4"
    link(clip, alias)
    before = digest(clip)
    code, _, err = run_cli(clip, "-m", "blend", "-o", alias, "-y")
    assert code == 1 and "would replace the input" in err
    assert digest(clip) == before and os.path.samefile(alias, clip)


# 4. a batch never writes onto one of its own inputs, nor twice onto one output

def test_a_batch_output_that_is_another_input_is_refused(tmp_path):
    first = write_clip(tmp_path / "a.mp4", moving_frames(6))
    second = write_clip(tmp_path / "a.2x.mp4", moving_frames(6, seed=2))
    before = digest(second)
    code, _, err = run_cli(first, second, "-m", "blend", "-y", "-q")
    assert code == 1 and f"output {second} would replace the input {second}" in err
    assert digest(second) == before and (tmp_path / "a.2x.2x.mp4").is_file()


@pytest.mark.parametrize("output", ["out", "out/%06d.png"])
def test_a_batch_never_replaces_its_own_earlier_output(tmp_path, output):
    (tmp_path / "d1").mkdir(), (tmp_path / "d2").mkdir()
    one = write_clip(tmp_path / "d1" / "a.mp4", moving_frames(6))
    two = write_clip(tmp_path / "d2" / "a.mp4", moving_frames(6, seed=2))
    code, _, err = run_cli(one, two, "-m", "blend", "-o", tmp_path / output, "-y", "-q")
    assert code == 1 and f"was written earlier in this run (from {one})" in err
    assert err.count("slomo: error:") == 1  # the first converted, the second refused


# 5. -r -o OUT mirrors the input tree

def test_recursive_batch_mirrors_the_input_tree(tmp_path):
    tree = tmp_path / "videos"
    for sub, seed in (("day1", 1), ("day2", 2)):
        (tree / sub).mkdir(parents=True)
        write_clip(tree / sub / "clip.mp4", moving_frames(6, seed=seed))
    code, _, err = run_cli(tree, "-r", "-m", "blend", "-o", tmp_path / "out", "-y", "-q")
    assert code == 0, err
    made = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.mp4"))
    assert made == ["day1/clip.2x.mp4", "day2/clip.2x.mp4"]
    assert digest(tmp_path / "out/day1/clip.2x.mp4") != digest(tmp_path / "out/day2/clip.2x.mp4")


# 14. a pipe is read once, and signals always work

def feed(fifo, data):
    """Write ``data`` into a FIFO from a thread (the reader may close early)."""
    def write():
        try:
            with open(fifo, "wb") as pipe:
                pipe.write(data)
        except BrokenPipeError:
            pass
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _as_from_a_terminal() -> None:
    """Ctrl-C and SIGTERM at their defaults in the child, as a terminal starts a command: a test
    runner started in the background inherits SIGINT ignored, and so would every child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def convert_process(*args):
    return subprocess.Popen([sys.executable, "-m", "slomo.cli", *map(str, args)],
                            stderr=subprocess.PIPE, text=True, cwd=os.getcwd(),
                            preexec_fn=_as_from_a_terminal)


@pytest.mark.parametrize("audio", [False, True])
def test_a_pipe_input_is_read_once(tmp_path, audio):
    data = write_clip(tmp_path / "clip.mkv", moving_frames(12), audio=audio).read_bytes()
    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)
    feed(fifo, data)
    proc = convert_process(fifo, "-m", "blend", "-o", tmp_path / "out.mkv", "-q")
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    if audio:  # its audio would need a second read: refused, clearly
        assert proc.returncode == 1 and "a pipe can be read only once" in err
        assert not (tmp_path / "out.mkv").exists() and hidden(tmp_path) == []
    else:
        assert proc.returncode == 0, err
        assert len(read_video(tmp_path / "out.mkv")[0]) == 24


def wait_until_opening_a_pipe(proc: subprocess.Popen, limit: float = 60.0) -> None:
    """Until one of the process's threads waits in the kernel for a pipe's writer (Linux tells
    it as ``wait_for_partner``); elsewhere, a few seconds."""
    tasks = Path(f"/proc/{proc.pid}/task")
    if not tasks.exists():
        time.sleep(3)
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        waits = []
        for task in tasks.glob("*/wchan"):
            try:
                waits.append(task.read_text())
            except OSError:
                continue
        if "wait_for_partner" in waits:
            return
        time.sleep(0.05)
    raise AssertionError("the run never reached the pipe's open")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_a_run_waiting_for_a_pipe(tmp_path, sig):
    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)  # nobody ever writes: opening it waits
    proc = convert_process(fifo, "-m", "blend", "-q")
    wait_until_opening_a_pipe(proc)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
        feed(fifo, b"")  # release a reader still waiting
    assert proc.returncode != 0 and proc.returncode is not None


# 22. a failed run leaves nothing, not even the folders it created

def test_a_failed_run_removes_the_folders_it_created(clip, tmp_path):
    with pytest.raises(Boom):
        slomo.convert(clip, tmp_path / "new" / "deeper" / "out.mp4", model="blend", on_progress=fail_after(6))
    one = write_clip(tmp_path / "one.mp4", moving_frames(1))
    with pytest.raises(slomo.MediaError, match="only one frame"):
        slomo.convert(one, tmp_path / "new" / "out.mp4", model="blend")
    with pytest.raises(Boom):
        slomo.convert(clip, tmp_path / "new" / "%06d.png", model="blend", on_progress=fail_after(6))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "one.mp4"]


def test_an_output_that_cannot_be_moved_into_place_is_removed(clip, tmp_path, monkeypatch):
    def read_only_folder(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", read_only_folder)
    with pytest.raises(slomo.MediaError, match="cannot move the output into place.*Permission denied"):
        slomo.convert(clip, tmp_path / "new" / "out.mp4", model="blend")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_an_output_that_can_neither_move_nor_go_is_reported(clip, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    monkeypatch.setattr(os, "unlink", denied)
    with pytest.raises(slomo.MediaError, match=r"the finished output is left at .*\.out\..*\.partial\.mp4"):
        slomo.convert(clip, tmp_path / "out.mp4", model="blend")


# siblings: eval's plot and difference images land the same way

def test_small_outputs_never_replace_the_source_and_land_whole(clip, tmp_path):
    before = digest(clip)
    os.link(clip, tmp_path / "alias.png")
    for path in (clip, tmp_path / "alias.png"):
        with pytest.raises(slomo.MediaError, match="would replace the input"):
            outputs.write_file(path, lambda partial: partial.write_bytes(b"plot"), protect=[clip])

    def half_written(partial):
        partial.write_bytes(b"half")
        raise Boom()

    with pytest.raises(Boom):
        outputs.write_file(tmp_path / "new" / "plot.png", half_written, protect=[clip])
    assert digest(clip) == before and not (tmp_path / "new").exists() and hidden(tmp_path) == []
    written = outputs.write_file(tmp_path / "plot.png", lambda partial: partial.write_bytes(b"plot"), [clip])
    assert written.read_bytes() == b"plot"
