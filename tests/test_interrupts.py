"""Ctrl-C while torch is being imported ends the command with status 130 and one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import moving_frames, write_clip

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")


def _interrupt_during_torch_import(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``slomo ARGS`` and send SIGINT as soon as torch's library is mapped (its import has
    begun); bounded to a minute whatever happens."""
    proc = subprocess.Popen([sys.executable, "-m", "slomo.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text():
                    proc.send_signal(signal.SIGINT)
                    break
            except OSError:
                pass
            time.sleep(0.001)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("command", ["eval", "convert"])
def test_interrupt_during_torch_import_exits_130_with_one_line(tmp_path, command):
    """Every command that runs networks imports torch first, with an interrupt ending it at once
    (a convert with blend, flow or ffmpeg-mci never imports torch)."""
    write_clip(tmp_path / "clip.mp4", moving_frames(6), audio=False)
    args = (["clip.mp4", "-m", "rife", "-o", "out.mp4"] if command == "convert"
            else ["eval", "clip.mp4", "-m", "blend"])
    done = _interrupt_during_torch_import(args, tmp_path)
    assert done.returncode == 130, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slomo: error: interrupted"), done.stderr
    assert not (tmp_path / "out.mp4").exists()
    assert os.listdir(tmp_path) == ["clip.mp4"]
