"""Frames on a model's torch device: integer YUV planes <-> float RGB, and float RGB arrays <-> NCHW.

Two pairs of conversions, each for a batch of frames of one size:

- :func:`to_rgb` / :func:`from_rgb`: decoded integer planes (8 to 16 bits, 4:2:0/4:2:2/4:4:4)
  to an ``(N, 3, H, W)`` float RGB tensor on the device, and back to integer planes.  Integers
  cross to the device and back, not float RGB: 1.5 bytes a pixel for 8-bit 4:2:0 instead of 12,
  through pinned host memory with non-blocking copies on CUDA, and the arithmetic runs on the
  device.  It is :mod:`slomo.colour`'s arithmetic (the same matrix, from :func:`colour.affine`;
  chroma replicated on the way in and averaged over each block on the way out; one rounding at
  the end), in element-wise float32 operations only, so that no TF32 matrix unit rounds it.
- :func:`frames_to_tensor` / :func:`tensor_to_frames`: :data:`slomo.frames.Frame` arrays (float32
  ``(H, W, 3)`` in [0, 1]) to an ``(N, 3, H, W)`` tensor on the device and back, the one place
  the models do it.

Uploads come out channels-last in memory (``(N, H, W, 3)`` strides): that is how the pixels
arrive, and the layout convolutions run fastest in (cuDNN on CUDA, oneDNN on the CPU); call
``.contiguous()`` for plain NCHW.  Only model networks import this module, as it imports torch,
which a ``blend`` run never loads.  The CUDA branches (pinned memory, non-blocking copies) were
written without a GPU to run them on; ``tests/test_tensors.py`` has their tests, marked ``cuda``.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import numpy as np
import torch
import torch.nn.functional as F

from . import colour
from .errors import MediaError
from .frames import Frame

#: one frame's planes, Y then U then V: 2-D arrays (or tensors) of integer code values
Planes = Sequence[np.ndarray | torch.Tensor]
DeviceLike = torch.device | str


def _layout(pix_fmt: str, height: int, width: int) -> tuple[int, tuple[int, int]]:
    """Bits per component, and the chroma planes' (rows, columns), of a planar YUV format."""
    if not colour.supports(pix_fmt):
        raise MediaError(f"pixel format {pix_fmt} is not planar YUV (8 to 16 bits, 4:2:0, 4:2:2 or 4:4:4)")
    fmt = av.VideoFormat(pix_fmt)
    return colour.bit_depth(fmt), (fmt.chroma_height(height), fmt.chroma_width(width))


def _staging(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A host buffer to gather an upload in: pinned for CUDA (torch's caching host allocator
    hands the same blocks out again), so the copy to the device need not block."""
    return torch.empty(shape, dtype=dtype, pin_memory=device.type == "cuda")


def _uploaded(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``host`` on ``device``; from pinned memory without blocking the calling thread."""
    return host.to(device, non_blocking=host.is_pinned())


def _downloaded(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's values in a numpy array: on CUDA through pinned memory, waiting for the copy."""
    if tensor.device.type != "cuda":
        return tensor.cpu().numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensor.device).synchronize()
    return host.numpy()


# --------------------------------------------------------------------------------------------
# integer planes <-> float RGB


def _integer_planes(frames: Sequence[Planes], bits: int, device: torch.device) -> list[torch.Tensor]:
    """The three planes of every frame as (N, rows, columns) integer tensors on ``device``.

    Host planes (numpy arrays or CPU tensors, strided views of a decoded frame included) are
    gathered into one buffer and sent in one copy (planes already on a device are stacked
    there).  16-bit samples travel as int16 (torch before 2.3 has no uint16) and
    :func:`_widened` reads them back unsigned.
    """
    if any(isinstance(p, torch.Tensor) and p.device.type != "cpu" for planes in frames for p in planes):
        return [torch.stack([torch.as_tensor(planes[i]) for planes in frames]).to(device) for i in range(3)]
    host = [[np.asarray(p) for p in planes] for planes in frames]
    if bits > 8:
        host = [[p.view(np.int16) for p in planes] for planes in host]
    shapes = [p.shape for p in host[0]]
    sizes = [int(np.prod(s)) for s in shapes]
    buffer = _staging((len(frames), sum(sizes)), torch.uint8 if bits <= 8 else torch.int16, device)
    rows = buffer.numpy()
    bounds = np.cumsum([0, *sizes])
    for row, planes in zip(rows, host, strict=True):
        for plane, start, end, shape in zip(planes, bounds[:-1], bounds[1:], shapes, strict=True):
            np.copyto(row[start:end].reshape(shape), plane)
    flat = _uploaded(buffer, device)
    return [flat[:, start:end].view(-1, *shape)
            for start, end, shape in zip(bounds[:-1], bounds[1:], shapes, strict=True)]


def _widened(plane: torch.Tensor) -> torch.Tensor:
    """Integer code values as float32 (int16 carrying 16-bit samples read back unsigned)."""
    if plane.dtype == torch.int16:
        return plane.to(torch.int32).bitwise_and_(0xFFFF).float()
    return plane.float()


def _replicated(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A chroma plane (N, h, w) upsampled to (N, height, width) by repeating each sample over
    its block, as :func:`colour.to_rgb` does (cv2's nearest resize, cropped for odd sizes)."""
    n, h, w = plane.shape
    if (h, w) == (height, width):
        return plane
    sy, sx = -(-height // h), -(-width // w)
    blocks = plane[:, :, None, :, None].expand(n, h, sy, w, sx).reshape(n, h * sy, w * sx)
    return blocks[:, :height, :width]


def _combined(row: Sequence[float], planes: Sequence[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """``row[0] * planes[0] + row[1] * planes[1] + row[2] * planes[2] + row[3]`` into ``out``,
    element by element in float32 on any device."""
    torch.mul(planes[0], row[0], out=out)
    out.add_(planes[1], alpha=row[1]).add_(planes[2], alpha=row[2])
    return out.add_(row[3])


def to_rgb(frames: Sequence[Planes], pix_fmt: str, colorspace: int, color_range: int,
           device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Decoded frames of one stream as an ``(N, 3, H, W)`` RGB tensor in [0, 1] on ``device``,
    channels-last in memory.

    ``frames`` holds each frame's Y, U, V planes (``uint8`` for 8 bits, ``uint16`` above; numpy
    arrays, strided views included, or tensors); ``colorspace`` and ``color_range`` are FFmpeg's
    numbers, as :func:`slomo.colour.to_rgb` takes them.  Computed in float32, then cast to ``dtype``.
    """
    device = torch.device(device)
    height, width = frames[0][0].shape
    bits, _ = _layout(pix_fmt, height, width)
    y, u, v = _integer_planes(frames, bits, device)
    planes = [_widened(y), *(_widened(_replicated(p, height, width)) for p in (u, v))]
    inverse = colour.inverse_affine(colorspace, colour.is_full(color_range, pix_fmt), bits, height)
    rgb = torch.empty((len(frames), height, width, 3), dtype=torch.float32, device=device)
    rgb = rgb.permute(0, 3, 1, 2)
    for channel, row in enumerate(inverse.tolist()):
        _combined(row, planes, rgb[:, channel])
    return rgb.clamp_(0.0, 1.0).to(dtype)


def from_rgb(rgb: torch.Tensor, pix_fmt: str, colorspace: int, color_range: int) -> list[list[np.ndarray]]:
    """An ``(N, 3, H, W)`` RGB tensor as each frame's Y, U, V planes in ``pix_fmt`` (``uint8`` or
    ``uint16`` numpy arrays), as :func:`slomo.colour.from_rgb` makes them.

    Chroma is averaged over each subsampled block; RGB is averaged first, which is the same (the
    matrix is linear) for a quarter of the arithmetic.  Rounded once, on the device, and the
    integers of the whole batch downloaded in one copy.  Odd sizes average whole blocks (the last
    one partial), which undoes :func:`to_rgb`'s replication; :mod:`slomo.colour`'s area resize
    spreads the odd scale (151 -> 76 columns) over the whole row instead, so there the chroma of
    the two differs (up to 7 levels on a 151x101 crop of the sample clip).
    """
    n, _, height, width = rgb.shape
    bits, (rows, columns) = _layout(pix_fmt, height, width)
    forward = colour.affine(colorspace, colour.is_full(color_range, pix_fmt), bits, height).tolist()
    rgb = rgb.float()
    small = rgb
    if (rows, columns) != (height, width):
        block = (-(-height // rows), -(-width // columns))
        small = F.avg_pool2d(rgb, block, ceil_mode=True)
    sizes = [height * width, rows * columns, rows * columns]
    bounds = np.cumsum([0, *sizes])
    packed = torch.empty((n, bounds[-1]), dtype=torch.int32, device=rgb.device)
    sources = (rgb, small, small)
    for index, (row, source) in enumerate(zip(forward, sources, strict=True)):
        values = _combined(row, source.unbind(1), torch.empty_like(source[:, 0]))
        target = packed[:, bounds[index]:bounds[index + 1]].view_as(values)
        target.copy_(values.round_().clamp_(0, 2 ** bits - 1))
    # int32 -> int16 keeps the low 16 bits: a uint16 sample read back through a numpy view
    host = _downloaded(packed.to(torch.uint8 if bits <= 8 else torch.int16))
    if bits > 8:
        host = host.view(np.uint16)
    shapes = [(height, width), (rows, columns), (rows, columns)]
    return [[row[bounds[i]:bounds[i + 1]].reshape(shapes[i]) for i in range(3)] for row in host]


# --------------------------------------------------------------------------------------------
# float RGB frames <-> NCHW tensors


def frames_to_tensor(frames: Sequence[Frame], device: DeviceLike = "cpu",
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Frames of one size as an ``(N, 3, H, W)`` tensor on ``device``, channels-last in memory.

    On the CPU, one float32 frame is not copied: the tensor shares its memory, so it must not be
    changed in place.  On CUDA the batch goes through pinned memory, without blocking.
    """
    device = torch.device(device)
    if device.type == "cpu" and len(frames) == 1:
        host = torch.from_numpy(np.ascontiguousarray(frames[0], dtype=np.float32))[None]
    else:
        host = _staging((len(frames), *frames[0].shape), torch.float32, device)
        for row, frame in zip(host.numpy(), frames, strict=True):
            np.copyto(row, frame, casting="same_kind")
    return _uploaded(host, device).permute(0, 3, 1, 2).to(dtype)


def tensor_to_frames(tensor: torch.Tensor) -> list[Frame]:
    """An ``(N, 3, H, W)`` tensor (any device, any float dtype) as N :data:`Frame` arrays,
    clamped to [0, 1]."""
    nhwc = tensor.clamp(0.0, 1.0).permute(0, 2, 3, 1).float().contiguous()
    return list(_downloaded(nhwc))
