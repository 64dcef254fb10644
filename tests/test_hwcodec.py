"""Hardware codecs: NVENC and NVDEC where the driver is, software with one warning where it is not.

PyAV's wheels know h264_nvenc and CUDA decoding on every machine; without an NVIDIA driver they
fail only when opened.  The fallbacks are tested here on any machine; the tests marked ``cuda``
need a real NVIDIA GPU and driver and skip cleanly without one.
"""

import json
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import moving_frames, read_video, texture, write_clip

import slomo
from slomo import io
from slomo.errors import UsageError
from slomo.frames import Picture

NVENC_OPENS = io._encoder_refusal("h264_nvenc") is None
NVDEC_OPENS = io._decoder_refusal("cuda", None, "h264") is None
needs_no_nvenc = pytest.mark.skipif(NVENC_OPENS, reason="NVENC opens here: nothing to fall back from")
needs_no_nvdec = pytest.mark.skipif(NVDEC_OPENS, reason="NVDEC opens here: nothing to fall back from")


def run_cli(*args):
    """The command in a process of its own, so that its warnings are exactly what it prints:
    (exit status, stdout, slomo's lines on stderr).  x265 and SVT-AV1 write their own banners
    there, outside libav's logging: those are not slomo's."""
    done = subprocess.run([sys.executable, "-m", "slomo.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    ours = [line for line in done.stderr.splitlines() if line.startswith("slomo:")]
    return done.returncode, done.stdout, ours


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.mp4", moving_frames(6), audio=False)


@needs_no_nvenc
@pytest.mark.parametrize("hardware,software,fmt", [("h264_nvenc", "libx264", "h264"),
                                                   ("hevc_nvenc", "libx265", "hevc"),
                                                   ("av1_nvenc", "libsvtav1", "av1")])
def test_nvenc_without_a_driver_encodes_in_software_with_one_warning(clip, tmp_path, hardware, software, fmt):
    out = tmp_path / "out.mp4"
    code, stdout, errors = run_cli(clip, "-o", out, "-m", "blend", "--codec", hardware, "--json", "-q")
    assert code == 0, errors
    assert errors == [f"slomo: warning: {hardware} is not available here (no NVIDIA driver: Cannot load "
                      f"libcuda.so.1): encoding with {software}"]
    assert json.loads(stdout)["converted"][0]["encoder"] == software
    frames, _, _ = read_video(out)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec.canonical_name == fmt
    # the same crf and preset as asking for the software encoder itself: the same pictures
    reference = slomo.convert(clip, tmp_path / "reference.mp4", model="blend", codec=software)
    assert reference.encoder == software
    expected, _, _ = read_video(reference.output)
    assert len(frames) == len(expected) == 12
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))


@needs_no_nvdec
def test_hwdec_without_a_driver_decodes_in_software_with_one_warning(clip, tmp_path):
    code, stdout, errors = run_cli(clip, "-o", tmp_path / "hw.mp4", "-m", "blend", "--hwdec", "--json", "-q")
    assert code == 0, errors
    assert errors == ["slomo: warning: hardware decoding is not available here (no NVIDIA driver: Cannot "
                      "load libcuda.so.1): decoding in software"]
    record = json.loads(stdout)["converted"][0]
    assert (record["decoder"], record["encoder"]) == ("h264 (software)", "libx264")
    plain = slomo.convert(clip, tmp_path / "plain.mp4", model="blend")
    assert plain.decoder == "h264 (software)"
    hw_frames, hw_times, _ = read_video(tmp_path / "hw.mp4")
    frames, times, _ = read_video(plain.output)
    assert hw_times == times
    assert all(np.array_equal(a, b) for a, b in zip(hw_frames, frames, strict=True))


def test_unknown_codec_is_still_a_usage_error(clip):
    code, _, errors = run_cli(clip, "-m", "blend", "--codec", "h264_nosuch", "-q")
    assert code == 2
    assert errors == [f"slomo: error: {clip}: {clip.parent / 'clip.2x.mp4'}: unknown video encoder "
                      "'h264_nosuch'"]


def test_unknown_hwdec_device_is_a_usage_error(clip, tmp_path):
    with pytest.raises(UsageError, match="hardware decoding 'nvdec': not auto or a device type"):
        slomo.convert(clip, tmp_path / "out.mp4", model="blend", hwdec="nvdec")
    assert not (tmp_path / "out.mp4").exists()


def test_software_encoders_are_taken_as_they_are(caplog):
    assert [io.usable_encoder(name) for name in ("libx264", "libx265", "ffv1", "h264_nosuch")] == [
        "libx264", "libx265", "ffv1", "h264_nosuch"]
    assert caplog.records == []


@pytest.mark.skipif("h264_videotoolbox" in av.codecs_available, reason="this FFmpeg has VideoToolbox")
def test_hardware_encoder_missing_from_this_ffmpeg_falls_back(caplog):
    io.usable_encoder.cache_clear()
    assert io.usable_encoder("h264_videotoolbox") == "libx264"
    assert [r.getMessage() for r in caplog.records] == [
        "h264_videotoolbox is not available here (not in this FFmpeg build): encoding with libx264"]


@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc", "av1_nvenc"])
@pytest.mark.parametrize("crf,preset", [(18, "medium"), (0, "veryslow"), (30, "p2")])
def test_nvenc_options_are_ones_nvenc_takes(codec, crf, preset):
    """crf and preset as NVENC's own options, checked against the encoder's option table (which
    PyAV reads without a GPU): every name exists, every value is in its range or choices."""
    settings = io.encoder_options(codec, io.EncodeOptions(codec, crf, preset))
    table = av.codec.CodecContext.create(codec, "w").supported_options
    known = {option.name: option for option in (*table.generic, *table.private)}
    for name, value in settings.items():
        option = known[name]
        if option.choices:
            assert value in {choice.name for choice in option.choices}, (name, value)
        else:
            assert option.min <= float(value) <= option.max, (name, value)
    assert settings.get("cq") == (str(crf) if crf else None)
    assert settings["preset"] == {"medium": "p4", "veryslow": "p7", "p2": "p2"}[preset]


@pytest.mark.parametrize("pix_fmt,device_layout,codec", [("yuv420p", "nv12", "libx264"),
                                                         ("yuvj420p", "nv12", "libx264"),
                                                         ("yuv420p10le", "p010le", "libx265")])
def test_frames_from_the_device_come_in_the_software_layout(tmp_path, pix_fmt, device_layout, codec):
    """NVDEC hands frames over as NV12/P010; the reader gives the rest of slomo the very samples
    and attributes software decoding gives (checked on software-decoded frames put into NVDEC's
    layout, as no GPU is needed for that)."""
    path = write_clip(tmp_path / "clip.mkv", moving_frames(2), audio=False, codec=codec, pix_fmt=pix_fmt,
                      rotation=90)
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
    downloaded = decoded.reformat(format=device_layout)
    downloaded.color_range = decoded.color_range
    again = io.in_software_layout(downloaded, decoded.format.name)
    assert again.format.name == pix_fmt
    assert np.array_equal(again.to_ndarray(), decoded.to_ndarray())
    assert (again.pts, again.time_base, again.color_range, again.colorspace, again.rotation) == (
        decoded.pts, decoded.time_base, decoded.color_range, decoded.colorspace, decoded.rotation)


@needs_no_nvenc
@needs_no_nvdec
def test_chunked_runs_warn_once_and_name_their_codecs(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(12), audio=False,
                      options={"crf": "0", "preset": "ultrafast", "g": "4"})
    code, stdout, errors = run_cli(clip, "-o", tmp_path / "out.mp4", "-m", "blend", "--chunk-seconds", "0.1",
                                   "--codec", "h264_nvenc", "--hwdec", "--json", "-q")
    assert code == 0, errors
    assert len(errors) == 2 and "hardware decoding" in errors[0] + errors[1], errors
    record = json.loads(stdout)["converted"][0]
    assert len(record["chunks"]) == 3
    assert (record["encoder"], record["decoder"]) == ("libx264", "h264 (software)")


@pytest.mark.cuda
@pytest.mark.skipif(not NVENC_OPENS, reason="needs an NVIDIA GPU and driver (NVENC does not open here)")
def test_nvenc_is_used_where_it_opens(clip, tmp_path):
    result = slomo.convert(clip, tmp_path / "out.mp4", model="blend", codec="h264_nvenc")
    assert result.encoder == "h264_nvenc"
    frames, _, _ = read_video(result.output)
    with av.open(result.output) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(frames) == 12


@pytest.mark.cuda
@pytest.mark.skipif(not NVDEC_OPENS, reason="needs an NVIDIA GPU and driver (NVDEC does not open here)")
def test_nvdec_gives_the_frames_software_decoding_gives(clip, tmp_path):
    on_gpu = slomo.convert(clip, tmp_path / "gpu.mp4", model="blend", hwdec="cuda")
    plain = slomo.convert(clip, tmp_path / "cpu.mp4", model="blend")
    assert (on_gpu.decoder, plain.decoder) == ("h264 (cuda)", "h264 (software)")
    gpu_frames, gpu_times, _ = read_video(on_gpu.output)
    frames, times, _ = read_video(plain.output)
    assert gpu_times == times
    assert all(np.array_equal(a, b) for a, b in zip(gpu_frames, frames, strict=True))


def test_nvenc_keeps_ten_bits():
    """NVENC takes 10-bit 4:2:0 only as P010: a 10-bit source keeps its depth there, with the
    samples the encoder would have had in planar yuv420p10le (swscale's chroma filter differs)."""
    ten_bits = io.VideoInfo(path="clip.mov", width=64, height=48, rate=Fraction(25),
                            time_base=Fraction(1, 25), frames=0, duration=None, pix_fmt="yuv420p10le",
                            bit_depth=10, color_range=1, colorspace=1, codec="prores")
    assert io.choose_pix_fmt("hevc_nvenc", ten_bits, None) == "p010le"
    assert io.choose_pix_fmt("libx265", ten_bits, None) == "yuv420p10le"
    picture = Picture(rgb=texture(48, 64).astype(np.float32) / 255)
    p010 = io.encoder_frame(picture, "p010le", ten_bits).reformat(format="yuv420p10le")
    planar = io.encoder_frame(picture, "yuv420p10le", ten_bits)
    for ours, theirs in zip(p010.planes, planar.planes, strict=True):
        a, b = (np.frombuffer(bytes(p), np.uint16).reshape(p.height, -1)[:, :p.width].astype(int)
                for p in (ours, theirs))
        assert np.abs(a - b).mean() < 3  # of 1023 levels
