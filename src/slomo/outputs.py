"""Where outputs go and how they land: their names, what they may never replace, the atomic commit.

Rules every writer follows (the README's "Safety rules"):

- nothing that is an input of the run is ever opened for writing, whatever name reaches it
  (symbolic or hard link): files are compared by identity (device and inode), not by name;
- an existing file, or an existing frame matching an image-sequence pattern, is replaced only
  when asked (``overwrite``), and never one written earlier by the same batch;
- an output is written under a temporary name unique to the run (pid and a random part, created
  exclusively) in its destination folder, an image sequence into a temporary folder, and moved
  into place only once complete;
- a failed run leaves nothing: its temporary file or folder goes, and so do the folders it
  created for the output.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

from . import io
from .errors import MediaError, UsageError

log = logging.getLogger("slomo")

#: A file's identity: the same file under every name (symbolic links resolved, hard links alike).
FileId = tuple[int, int]

_OUTPUT_NAME = re.compile(r"^(?P<stem>.+)\.(slowmo)?(\d+x|[\d.]+fps)$")


def default_output(src: str, factor: int | None, fps: Fraction | None, slowmo: bool,
                   folder: Path | None = None) -> Path:
    """``<stem>.<factor>x.<ext>`` beside the input (``<stem>.slowmo<factor>x.<ext>`` for slow motion)."""
    if io.is_pattern(src):
        base = Path(src).parent
        stem, ext, parent = base.name or "frames", ".mp4", base.parent
    else:
        path = Path(src)
        ext = path.suffix if path.suffix.lower() in io.VIDEO_EXTENSIONS else ".mp4"
        stem, parent = path.stem, path.parent
    if fps is not None and not factor:
        tag = f"{float(fps):g}fps"
    else:
        tag = f"{factor}x"
    name = f"{stem}.{'slowmo' if slowmo else ''}{tag}{ext}"
    return (folder or parent) / name


def find_videos(folder: Path, recursive: bool = False) -> list[Path]:
    """Video files in ``folder`` (or below it), skipping slomo's own outputs of those inputs."""
    pattern = "**/*" if recursive else "*"
    videos = sorted(p for p in folder.glob(pattern)
                    if p.is_file() and p.suffix.lower() in io.VIDEO_EXTENSIONS
                    and not p.name.startswith("."))
    names = {p.name for p in videos}

    def is_output(path: Path) -> bool:
        match = _OUTPUT_NAME.match(path.stem)
        return bool(match) and any(n.startswith(match["stem"] + ".") and n != path.name
                                   and not _OUTPUT_NAME.match(Path(n).stem) for n in names)

    return [p for p in videos if not is_output(p)]


@dataclass(frozen=True)
class Job:
    """One input of a batch, the output it was asked for (None: beside it), or why it cannot run."""

    src: str
    output: str | None
    problem: str | None = None


def batch_jobs(inputs: Iterable[str], output: str | None, recursive: bool) -> list[Job]:
    """Each input as a job: folders become their videos, whose outputs mirror the folder tree
    under ``output`` (so same-named files of different subfolders never meet); a missing path
    stays a job with its problem.  Several inputs, or a folder, need ``output`` to be a folder
    or an image pattern."""
    inputs = list(inputs)
    several = len(inputs) > 1 or any(Path(item).is_dir() for item in inputs)
    if several and output and not io.is_pattern(output) and Path(output).suffix and not Path(output).is_dir():
        raise UsageError(f"{output}: several inputs need an output folder, not a file")
    jobs = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            videos = find_videos(path, recursive)
            if not videos:
                jobs.append(Job(item, None, "no video files in this folder"))
            jobs += [Job(str(v), _mirrored(output, v.parent.relative_to(path))) for v in videos]
        elif io.is_pattern(item) or path.exists():
            jobs.append(Job(item, _mirrored(output, Path()) if several else output))
        else:
            jobs.append(Job(item, output, "no such file"))
    return jobs


def _mirrored(output: str | None, relative: Path) -> str | None:
    """The output folder of a video found ``relative`` below an input folder."""
    if output is None or io.is_pattern(output):
        return output
    return os.path.join(output, *relative.parts, "")


def identity(path: str | os.PathLike) -> FileId | None:
    """The file's (device, inode), following symbolic links; None when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def input_files(src: str) -> list[str]:
    """The files an input is read from: every frame of an image pattern, else the file itself."""
    return io.sequence_files(src) if io.is_pattern(src) else [src]


class Batch:
    """The inputs of one run (one command) and the outputs it has written so far.

    An output may be none of them: an input may still be waiting to be read, and an earlier
    output of the batch would be lost without a word.
    """

    def __init__(self, inputs: Iterable[str] = ()):
        self._inputs: dict[FileId, str] = {}
        self._written: dict[FileId, str] = {}
        for src in inputs:
            self.add_input(src)

    def add_input(self, src: str) -> None:
        for name in input_files(src):
            key = identity(name)
            if key is not None:
                self._inputs.setdefault(key, name)

    def check(self, path: str | os.PathLike) -> None:
        """Refuse to write ``path`` when it is an input or an earlier output of the batch."""
        key = identity(path)
        if key in self._inputs:
            raise MediaError(f"output {path} would replace the input {self._inputs[key]}")
        if key in self._written:
            raise MediaError(f"output {path} was written earlier in this run "
                             f"(from {self._written[key]}); refusing to replace it")

    def wrote(self, path: str | os.PathLike, src: str) -> None:
        key = identity(path)
        if key is not None:
            self._written[key] = src


@dataclass(frozen=True)
class Target:
    """Where one run's output lands: a file, or an image-sequence pattern (``out/%06d.png``)."""

    path: Path
    src: str
    overwrite: bool
    batch: Batch = field(default_factory=Batch)

    @property
    def is_sequence(self) -> bool:
        return io.is_pattern(str(self.path))

    def existing(self) -> list[str]:
        """The files this output would replace: the file, or the frames matching the pattern."""
        if self.is_sequence:
            return io.sequence_files(str(self.path))
        return [str(self.path)] if self.path.exists() else []

    def check(self) -> None:
        """Refuse inputs and earlier outputs always, existing files unless ``overwrite``."""
        existing = self.existing()
        for name in existing:
            self.batch.check(name)
        if existing and not self.overwrite:
            if self.is_sequence:
                raise MediaError(f"output {self.path}: {len(existing)} frames exist, e.g. {existing[0]} "
                                 "(use -y to replace them)")
            raise MediaError(f"output {self.path} exists (use -y to replace it)")

    def land(self) -> Landing:
        """Start writing: the temporary file or folder the writer fills."""
        return Landing(self)


def plan(src: str, dst: str | os.PathLike | None, *, factor: int | None, fps: Fraction | None,
         slowmo: bool, overwrite: bool, batch: Batch | None = None) -> Target:
    """The output of converting ``src``: ``dst`` as given (a file or an image pattern), inside it
    when it is a folder, or the default name beside the input; checked against the rules above."""
    if batch is None:
        batch = Batch()
    batch.add_input(src)
    if dst is None:
        path = default_output(src, factor, fps, slowmo)
    else:
        path = Path(dst)
        if path.is_dir() or str(dst).endswith(os.sep):
            path = default_output(src, factor, fps, slowmo, path)
    if io.is_pattern(str(path)):
        if io.is_pattern(str(path.parent)):
            raise UsageError(f"output {path}: the frame number goes in the file name, not a folder name")
    elif path.suffix.lower() not in io.VIDEO_EXTENSIONS:
        raise UsageError(f"output {path}: unknown video extension {path.suffix or '(none)'!r}")
    target = Target(path, src, overwrite, batch)
    target.check()
    return target


class Landing:
    """An output being written: a temporary file, or folder of frames, beside its destination.

    :meth:`commit` moves it into place; :meth:`discard` removes it and the folders created for it.
    """

    def __init__(self, target: Target):
        self.target = target
        self._created = _make_folders(target.path.parent)
        name = target.path.name
        try:
            if target.is_sequence:
                self._temp = _exclusive(target.path.parent, f".{name.split('%')[0] or 'frames'}", ".partial",
                                        os.mkdir)
                self.path = self._temp / name
            else:
                self._temp = _exclusive(target.path.parent, f".{target.path.stem}",
                                        f".partial{target.path.suffix}", _create_file)
                self.path = self._temp
        except OSError as exc:
            self._remove_folders()
            raise MediaError(f"cannot write in {target.path.parent} ({exc.strerror})") from None

    def commit(self) -> Path:
        """Move the finished output into place, re-checking the rules first (the run took time)."""
        moves = self._moves()
        created: list[Path] = []
        try:
            self.target.check()
            for temp, final in moves:
                if not self.target.overwrite and final.exists():
                    raise MediaError(f"output {final} appeared while this run wrote it; not replaced")
                new = not final.exists()
                os.replace(temp, final)
                if new:
                    created.append(final)
            if self.target.is_sequence:
                os.rmdir(self._temp)
        except BaseException as exc:
            for path in created:  # frames this run created; never ones it replaced
                path.unlink(missing_ok=True)
            left = self.discard()
            if isinstance(exc, OSError):
                where = f"; the finished output is left at {left}" if left else ""
                raise MediaError(f"cannot move the output into place as {self.target.path} "
                                 f"({exc.strerror}){where}") from None
            raise
        for _, final in moves:
            self.target.batch.wrote(final, self.target.src)
        return self.target.path

    def _moves(self) -> list[tuple[Path, Path]]:
        if not self.target.is_sequence:
            return [(self._temp, self.target.path)]
        return [(frame, self.target.path.parent / frame.name) for frame in sorted(self._temp.iterdir())]

    def discard(self) -> Path | None:
        """Remove the temporary output and the folders created for it; what could not be
        removed is returned (and logged), so that it can be reported."""
        try:
            if self._temp.is_dir():
                shutil.rmtree(self._temp)
            else:
                self._temp.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: could not remove this unfinished output (%s)", self._temp, exc.strerror)
            return self._temp
        self._remove_folders()
        return None

    def _remove_folders(self) -> None:
        _remove_empty(self._created)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:  # made meanwhile by someone else: not ours to remove
            continue
        except OSError as exc:
            _remove_empty(created)
            raise MediaError(f"cannot create the folder {path} ({exc.strerror})") from None
        created.append(path)
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove created folders, innermost first, while they are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # not empty (something else was put there meanwhile): kept
            return


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _exclusive(folder: Path, prefix: str, suffix: str, create: Callable[[Path], None]) -> Path:
    """A new hidden name in ``folder``, unique to this run (pid and a random part), created
    exclusively: an existing file, whatever it is, is never opened."""
    for _ in range(100):
        path = folder / f"{prefix}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            create(path)
            return path
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name")


def write_file(path: Path, write: Callable[[Path], None], protect: Iterable[str] = ()) -> Path:
    """Write a small output (a plot, an image) by ``write(temporary path)``, then move it into place.

    It replaces an existing file, but never one of ``protect`` (inputs of the run), nor a file
    inside an input folder.
    """
    batch = Batch(p for p in protect if not Path(p).is_dir())
    for folder in (Path(p).resolve() for p in protect if Path(p).is_dir()):
        if path.exists() and path.resolve().is_relative_to(folder):
            raise MediaError(f"output {path} is inside the input folder {folder}; refusing to replace it")
    landing = Target(path, str(path), True, batch).land()
    try:
        write(landing.path)
    except BaseException:
        landing.discard()
        raise
    return landing.commit()
