"""The README's example plugin, installed as a package the way a user would, is a model like any other.

The code is taken from the README's "Writing a model" section, so the documentation cannot drift
from what works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, moving_frames, read_video, write_clip

pytestmark = pytest.mark.slow  # pip builds and installs the example: ~10 s


def _readme_blocks() -> dict[str, str]:
    """The fenced blocks of the README's "Writing a model" section, by language."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Writing a model\n", 1)[1].split("\n## ", 1)[0]
    return {lang: code for lang, code in re.findall(r"```(\w+)\n(.*?)```", section, re.S)}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package installed (pip, no dependencies) into a folder of its own."""
    blocks = _readme_blocks()
    package = tmp_path_factory.mktemp("slomo-nearest")
    (package / "slomo_nearest.py").write_text(blocks["python"])
    (package / "pyproject.toml").write_text(blocks["toml"])
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(package)],
                   check=True, capture_output=True)
    return target


def _python(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": os.pathsep.join(filter(None, [str(site),
                                                                     os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_readme_plugin_is_listed_with_its_distribution(site):
    done = _python(site, "-m", "slomo", "models")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if " nearest " in line)
    assert re.search(r"slomo[-_]nearest", row) and "example plugin" in row


def test_the_readme_plugin_converts_a_clip_end_to_end(site, tmp_path):
    frames = moving_frames(4, size=(64, 48), motion=(6, 0))
    src = tmp_path / "in.mp4"
    write_clip(src, frames, fps=25, audio=False)
    out = tmp_path / "out.mp4"
    done = _python(site, "-c", f"import slomo; r = slomo.convert({str(src)!r}, {str(out)!r}, "
                               f"model='nearest', factor=2, crf=0); print(r.model, r.frames_out)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["nearest", "8"]
    made, _, _ = read_video(out)
    source, _, _ = read_video(src)

    def distance(a, b):
        return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())

    # t = 0.5 is not before the middle: the frame made between inputs k and k+1 repeats input k+1
    for k in range(3):
        assert distance(made[2 * k + 1], source[k + 1]) < 2.0 < distance(made[2 * k + 1], source[k])
