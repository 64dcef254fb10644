"""Reading ncnn models (``.param`` text + ``.bin`` weights) into PyTorch tensors.

Some published weights exist only as ncnn models (Real-ESRGAN's video model among them).  This
module reads the two files without the ncnn runtime so that :mod:`slomo.weights` can convert them
once, at fetch time, into an ordinary checkpoint.

``.param`` (text): the magic ``7767517``, ``layer_count blob_count``, then one line per layer:
``Type name n_inputs n_outputs inputs... outputs... key=value...``.  A key ``k`` holds an int or a
float; a key ``-23300 - k`` holds an array for key ``k`` written ``count,v1,v2...``.

``.bin``: the layers' data blobs, one after another in layer order, nothing else.  Only the layer
types listed in :data:`DATA_LAYERS` carry data; a Convolution weight starts with a 4-byte tag
(:data:`FP16_TAG`: float16 values follow, padded to 4 bytes; 0: float32), its bias and PReLU
slopes are raw float32 without a tag.  Every byte of the file must be accounted for, so a layer
type this reader does not know, or a miscounted blob, is an error rather than shifted weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import WeightsError

MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0
ARRAY_KEY_BASE = -23300
#: layer types that carry no data in the ``.bin`` (graph plumbing and parameter-free operators)
DATA_FREE = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "PixelShuffle", "Interp"})
#: layer types with data that this reader understands
DATA_LAYERS = frozenset({"Convolution", "PReLU"})


@dataclass
class Layer:
    """One ``.param`` line, with its data blobs (float32 tensors, PyTorch layout) once read."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list[float]]
    blobs: list[torch.Tensor] = field(default_factory=list)

    def param(self, key: int, default: float | list[float] | None = None):
        return self.params.get(key, default)


def _value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, int | float | list[float]]:
    params: dict[int, int | float | list[float]] = {}
    for token in tokens:
        key_text, _, value_text = token.partition("=")
        try:
            key = int(key_text)
            if key <= ARRAY_KEY_BASE:
                count, *values = value_text.split(",")
                if int(count) != len(values):
                    raise ValueError(token)
                params[ARRAY_KEY_BASE - key] = [float(v) for v in values]
            else:
                params[key] = _value(value_text)
        except ValueError:
            raise WeightsError(f"{where}: bad layer parameter {token!r}") from None
    return params


def read_param(path: Path) -> list[Layer]:
    """The layers of a text ``.param`` file, in file (= execution and ``.bin``) order."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise WeightsError(f"{path}: not an ncnn .param file (no magic {MAGIC})")
    layer_count = int(lines[1][0])
    layers = []
    for number, tokens in enumerate(lines[2:], start=3):
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        inputs = tokens[4:4 + n_in]
        outputs = tokens[4 + n_in:4 + n_in + n_out]
        params = _parse_params(tokens[4 + n_in + n_out:], f"{path}:{number}")
        layers.append(Layer(kind, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise WeightsError(f"{path}: {len(layers)} layers, the header says {layer_count}")
    return layers


class _BinReader:
    """Sequential reads from the ``.bin`` bytes, each checked against the bytes left."""

    def __init__(self, path: Path):
        self.path = path
        self.data = Path(path).read_bytes()
        self.offset = 0

    def _take(self, nbytes: int) -> bytes:
        if self.offset + nbytes > len(self.data):
            raise WeightsError(f"{self.path}: ends at byte {len(self.data)}, "
                               f"the .param needs {self.offset + nbytes}")
        chunk = self.data[self.offset:self.offset + nbytes]
        self.offset += nbytes
        return chunk

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        """A weight blob: a type tag, then float16 (padded to 4 bytes) or float32 values."""
        tag = int.from_bytes(self._take(4), "little")
        if tag == FP16_TAG:
            values = np.frombuffer(self._take(2 * count), dtype="<f2").astype(np.float32)
            self._take((-2 * count) % 4)
            return values
        if tag == FP32_TAG:
            return self.raw_fp32(count)
        raise WeightsError(f"{self.path}: unsupported weight storage tag {tag:#010x} at byte "
                           f"{self.offset - 4}")

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise WeightsError(f"{self.path}: {len(self.data) - self.offset} bytes left over after "
                               f"the last layer (the .param and .bin do not belong together)")


def _convolution_blobs(layer: Layer, reader: _BinReader) -> list[torch.Tensor]:
    """Weight (out, in, kh, kw) and, when ``5=1``, bias (out,)."""
    out, kernel_w = int(layer.param(0)), int(layer.param(1, 0))
    kernel_h, size = int(layer.param(11, kernel_w)), int(layer.param(6))
    if int(layer.param(7, 1)) != 1:
        raise WeightsError(f"{reader.path}: {layer.name}: grouped convolutions are not supported")
    weight = reader.tagged(size).reshape(out, size // (out * kernel_h * kernel_w), kernel_h, kernel_w)
    blobs = [torch.from_numpy(weight)]
    if int(layer.param(5, 0)):
        blobs.append(torch.from_numpy(reader.raw_fp32(out)))
    return blobs


def read(param: Path, weights: Path) -> list[Layer]:
    """The layers of an ncnn model with their data blobs filled in from ``weights`` (``.bin``)."""
    layers = read_param(param)
    reader = _BinReader(weights)
    for layer in layers:
        if layer.type == "Convolution":
            layer.blobs = _convolution_blobs(layer, reader)
        elif layer.type == "PReLU":
            layer.blobs = [torch.from_numpy(reader.raw_fp32(int(layer.param(0, 1))))]
        elif layer.type not in DATA_FREE:
            raise WeightsError(f"{param}: layer type {layer.type!r} ({layer.name}) is not supported")
    reader.finish()
    return layers


def state_dict(layers: list[Layer], template: dict[str, torch.Tensor], where: str) -> dict:
    """The layers' blobs under ``template``'s keys, matched in order, every shape checked.

    ``template`` is a module's ``state_dict()``: its parameters are declared in the order the
    network runs them, which is the order ncnn stores them in, so order is the mapping; the
    count and every shape must agree, so a different network cannot load silently.
    """
    blobs = [blob for layer in layers for blob in layer.blobs]
    if len(blobs) != len(template):
        raise WeightsError(f"{where}: {len(blobs)} tensors, the model has {len(template)}")
    converted = {}
    for (key, expected), blob in zip(template.items(), blobs, strict=True):
        if tuple(expected.shape) != tuple(blob.shape):
            raise WeightsError(f"{where}: tensor for {key} has shape {tuple(blob.shape)}, "
                               f"the model's is {tuple(expected.shape)}")
        converted[key] = blob.contiguous()
    return converted
