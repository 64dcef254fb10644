"""slomo.tensors: YUV planes <-> RGB tensors on a device give what slomo.colour gives on the CPU.

Expected values are slomo.colour's actual outputs on real decoded frames (Big Buck Bunny, 720p
yuv420p as decoded, and the same frames reformatted by swscale to 10-bit 4:2:2, full range,
BT.601/BT.2020, 4:4:4).  Tests marked ``cuda`` run the device paths and skip without a GPU.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from conftest import yuv_planes

from slomo import colour, tensors
from slomo.errors import MediaError

#: (pix_fmt, colorspace, color_range) to reformat the decoded frames to; None: as decoded
FORMATS = [
    None,  # yuv420p, colorspace and range unspecified: BT.709 (HD), limited
    ("yuv422p10le", 1, 1),  # 10-bit 4:2:2, BT.709, limited
    ("yuvj420p", 5, 2),  # full range, BT.601
    ("yuv420p", 9, 2),  # full range signalled by the range alone, BT.2020
    ("yuv444p12le", 9, 1),  # 12-bit 4:4:4
    ("yuv420p16le", 1, 2),  # 16-bit: samples over 32767 cross as negative int16
]


@pytest.fixture(scope="module")
def decoded(real_clip) -> list[av.VideoFrame]:
    """Frames 40 and 41 of the real 720p clip, as decoded."""
    frames = []
    with av.open(str(real_clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= 40:
                frames.append(frame)
            if len(frames) == 2:
                return frames
    raise AssertionError("the sample clip is shorter than 42 frames")


def _frames(decoded, layout) -> tuple[list[av.VideoFrame], int, int]:
    """The decoded frames in ``layout``, with their colorspace and range numbers."""
    if layout is None:
        frame = decoded[0]
        return decoded, int(frame.colorspace), int(frame.color_range)
    pix_fmt, space, full = layout
    frames = [f.reformat(format=pix_fmt, dst_colorspace=space, dst_color_range=full) for f in decoded]
    return frames, space, full


def _nhwc(rgb: torch.Tensor) -> np.ndarray:
    return rgb.float().permute(0, 2, 3, 1).cpu().numpy()


@pytest.mark.parametrize("layout", FORMATS, ids=lambda x: "-".join(map(str, x)) if x else "decoded")
def test_to_rgb_equals_the_colour_module(decoded, layout):
    frames, space, full = _frames(decoded, layout)
    want = np.stack([colour.to_rgb(f, space, full) for f in frames])
    got = tensors.to_rgb([yuv_planes(f) for f in frames], frames[0].format.name, space, full)
    assert got.shape == (2, 3, 720, 1280) and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    # a level of 16-bit video is 1.5e-5; measured: 1.8e-7 (float rounding only)
    assert np.abs(_nhwc(got) - want).max() < 1e-5


@pytest.mark.parametrize("layout", FORMATS, ids=lambda x: "-".join(map(str, x)) if x else "decoded")
def test_from_rgb_equals_the_colour_module(decoded, layout):
    """RGB that is no decoded frame (two frames mixed 1:2, as a blend makes; not 1:1 or 3:7, which put
    many samples on rounding ties that float noise then decides) to planes."""
    frames, space, full = _frames(decoded, layout)
    pix_fmt = frames[0].format.name
    pair = [colour.to_rgb(f, space, full) for f in frames]
    rgb = np.stack([(pair[0] + 2 * pair[1]) / 3, pair[1]])
    want = [yuv_planes(colour.from_rgb(x, pix_fmt, space, full)) for x in rgb]
    got = tensors.from_rgb(torch.from_numpy(rgb).permute(0, 3, 1, 2), pix_fmt, space, full)
    for got_planes, want_planes in zip(got, want, strict=True):
        for g, w in zip(got_planes, want_planes, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            diff = np.abs(g.astype(np.int32) - w.astype(np.int32))
            assert diff.max() <= 1  # rounding ties only: measured 0 to 6 samples of 921600
            assert np.count_nonzero(diff) < 1e-4 * diff.size


def test_a_batch_equals_frames_one_at_a_time(decoded):
    planes = [yuv_planes(f) for f in decoded]
    space, full = int(decoded[0].colorspace), int(decoded[0].color_range)
    batch = tensors.to_rgb(planes, "yuv420p", space, full)
    singles = torch.cat([tensors.to_rgb([p], "yuv420p", space, full) for p in planes])
    assert torch.equal(batch, singles)
    back = tensors.from_rgb(batch, "yuv420p", space, full)
    for i in range(len(planes)):
        one = tensors.from_rgb(batch[i:i + 1], "yuv420p", space, full)[0]
        assert all(np.array_equal(a, b) for a, b in zip(back[i], one, strict=True))


def test_integers_cross_to_the_device(decoded, monkeypatch):
    """What is sent is the 8-bit 4:2:0 planes: 1.5 bytes a pixel, not 12 of float RGB."""
    sent = []
    upload = tensors._uploaded
    monkeypatch.setattr(tensors, "_uploaded", lambda host, device: sent.append(host) or upload(host, device))
    tensors.to_rgb([yuv_planes(f) for f in decoded], "yuv420p", 1, 1)
    assert [(t.dtype, t.numel() * t.element_size()) for t in sent] == [(torch.uint8, 2 * 1280 * 720 * 3 // 2)]


def test_dtype_is_applied_after_the_float32_arithmetic(decoded):
    planes = [yuv_planes(decoded[0])]
    full = tensors.to_rgb(planes, "yuv420p", 1, 1)
    half = tensors.to_rgb(planes, "yuv420p", 1, 1, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(half, full.to(torch.bfloat16))


def test_only_planar_yuv_is_converted(decoded):
    with pytest.raises(MediaError, match="nv12"):
        tensors.to_rgb([yuv_planes(decoded[0])], "nv12", 1, 1)
    with pytest.raises(MediaError, match="rgb24"):
        tensors.from_rgb(torch.zeros(1, 3, 4, 4), "rgb24", 1, 1)


def test_float_frames_to_tensor_and_back():
    rng = np.random.default_rng(0)
    frames = [rng.random((6, 10, 3), dtype=np.float32) for _ in range(3)]
    x = tensors.frames_to_tensor(frames, "cpu")
    assert x.shape == (3, 3, 6, 10) and x.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), np.stack(frames))
    back = tensors.tensor_to_frames(x)
    assert len(back) == 3 and all(np.array_equal(a, b) for a, b in zip(back, frames, strict=True))
    assert tensors.frames_to_tensor(frames[:1], "cpu").data_ptr() == frames[0].ctypes.data  # no copy
    assert tensors.frames_to_tensor(frames[:1], "cpu", torch.bfloat16).dtype == torch.bfloat16
    out_of_range = tensors.tensor_to_frames(torch.tensor([-0.5, 0.5, 1.5]).view(1, 3, 1, 1))[0]
    assert out_of_range.tolist() == [[[0.0, 0.5, 1.0]]] and out_of_range.dtype == np.float32


# ------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("layout", FORMATS, ids=lambda x: "-".join(map(str, x)) if x else "decoded")
def test_cuda_conversion_equals_the_cpu_one_within_one_level(decoded, layout):
    frames, space, full = _frames(decoded, layout)
    pix_fmt = frames[0].format.name
    planes = [yuv_planes(f) for f in frames]
    cpu = tensors.to_rgb(planes, pix_fmt, space, full, "cpu")
    gpu = tensors.to_rgb(planes, pix_fmt, space, full, "cuda")
    assert gpu.device.type == "cuda" and gpu.is_contiguous(memory_format=torch.channels_last)
    assert (gpu.cpu() - cpu).abs().max() < 1e-5
    mean = (gpu[:1] + 2 * gpu[1:]) / 3
    on_gpu = tensors.from_rgb(mean, pix_fmt, space, full)
    on_cpu = tensors.from_rgb(mean.cpu(), pix_fmt, space, full)
    for g, c in zip(on_gpu[0], on_cpu[0], strict=True):
        assert g.dtype == c.dtype and np.abs(g.astype(np.int32) - c.astype(np.int32)).max() <= 1


@pytest.mark.cuda
def test_cuda_float_frames_round_trip():
    rng = np.random.default_rng(0)
    frames = [rng.random((6, 10, 3), dtype=np.float32) for _ in range(2)]
    x = tensors.frames_to_tensor(frames, "cuda")
    assert x.device.type == "cuda" and x.is_contiguous(memory_format=torch.channels_last)
    back = tensors.tensor_to_frames(x)
    assert all(np.array_equal(a, b) for a, b in zip(back, frames, strict=True))
