"""End to end through slomo.convert: frame counts, timestamps, audio, formats, quality."""

from fractions import Fraction

import av
import numpy as np
import pytest

import slomo
from conftest import audio_track, moving_frames, psnr, read_video, write_clip


def test_factor_keeps_duration_timestamps_and_audio(clip, tmp_path):
    result = slomo.convert(clip, tmp_path / "out.mp4", factor=4, model="flow")
    frames, times, info = read_video(result.output)
    assert result.frames_in == 12 and result.frames_out == 48 == len(frames)
    assert info["rate"] == 100
    assert times == pytest.approx([i / 100 for i in range(48)], abs=1e-6)
    assert info["duration"] == pytest.approx(0.48, abs=0.01)  # as long as the input
    samples, rate, start = audio_track(result.output)
    source, _, _ = audio_track(clip)
    assert start == pytest.approx(0.0, abs=1e-3) and len(samples) == len(source)  # copied, not re-encoded


def test_first_and_last_frames_survive(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(12), pix_fmt="yuv444p")
    out = slomo.convert(clip, tmp_path / "out.mkv", factor=3, model="blend", crf=0).output
    src, _, _ = read_video(clip)
    dst, _, _ = read_video(out)
    assert psnr(dst[0], src[0]) > 42 and psnr(dst[-1], src[-1]) > 42
    assert psnr(dst[3], src[1]) > 42  # every 3rd output frame is an input frame
    assert psnr(dst[4], src[1]) < 35  # and the others are not


def test_flow_rebuilds_dropped_frames_of_known_motion(tmp_path):
    full = moving_frames(13, size=(160, 96), motion=(4, 1))
    half = write_clip(tmp_path / "half.mp4", full[::2], fps=12.5, audio=False, pix_fmt="yuv444p")
    out = slomo.convert(half, tmp_path / "out.mkv", factor=2, model="flow", codec="ffv1",
                        pix_fmt="yuv444p")
    rebuilt, _, _ = read_video(out.output)
    scores = [psnr(rebuilt[i][8:-8, 8:-8], full[i][8:-8, 8:-8]) for i in range(1, 12, 2)]
    blends = [psnr(((full[i - 1].astype(float) + full[i + 1]) / 2)[8:-8, 8:-8], full[i][8:-8, 8:-8])
              for i in range(1, 12, 2)]
    assert min(scores) > 35, scores
    assert np.mean(scores) > np.mean(blends) + 10


def test_fps_targets_a_rate(clip, tmp_path):
    result = slomo.convert(clip, tmp_path / "out.mp4", fps="60", model="blend")
    frames, times, info = read_video(result.output)
    assert len(frames) == 29  # ceil(0.48 s * 60)
    assert times == pytest.approx([i / 60 for i in range(29)], abs=1e-3)
    assert info["rate"] == 60


def test_fps_ntsc_rate(clip, tmp_path):
    result = slomo.convert(clip, tmp_path / "out.mp4", fps="59.94", model="blend")
    _, _, info = read_video(result.output)
    assert info["rate"] == Fraction(60000, 1001)


@pytest.mark.parametrize("factor", [2, 4])
def test_slowmo_stretches_video_and_audio(clip, tmp_path, factor):
    result = slomo.convert(clip, tmp_path / "out.mp4", factor=factor, slowmo=True, model="blend")
    frames, times, info = read_video(result.output)
    assert len(frames) == 12 * factor and info["rate"] == 25
    assert times[-1] == pytest.approx((12 * factor - 1) / 25, abs=1e-3)
    samples, rate, _ = audio_track(result.output)
    assert len(samples) / rate == pytest.approx(0.48 * factor, abs=0.06)
    # pitch kept: the 440 Hz tone is still the strongest frequency
    spectrum = np.abs(np.fft.rfft(samples[rate // 10: rate // 10 + 8192]))
    assert np.fft.rfftfreq(8192, 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=10)


def test_audio_stays_in_sync(tmp_path):
    frames = [np.full((64, 96, 3), 20, np.uint8) for _ in range(25)]
    frames[10] = np.full((64, 96, 3), 235, np.uint8)  # a flash at 0.4 s, with a beep at 0.4 s
    src = write_clip(tmp_path / "flash.mp4", frames, beep_at=0.4)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=4, model="blend", scene_detect=False)
    video, times, _ = read_video(out.output)
    flash = next(t for f, t in zip(video, times) if f.mean() > 200)
    samples, rate, start = audio_track(out.output)
    beep = start + np.argmax(np.abs(samples) > 0.1) / rate
    assert abs(flash - beep) < 1 / 25, (flash, beep)


def test_ten_bit_stays_ten_bit(tmp_path):
    src = write_clip(tmp_path / "ten.mkv", moving_frames(6), pix_fmt="yuv420p10le", audio=False,
                     options={"crf": "0", "preset": "ultrafast"})
    out = slomo.convert(src, tmp_path / "out.mkv", factor=2, model="blend")
    assert read_video(out.output)[2]["pix_fmt"] == "yuv420p10le"


def test_odd_size_is_kept(tmp_path):
    src = write_clip(tmp_path / "odd.mkv", [f[:63, :95] for f in moving_frames(6)], codec="ffv1",
                     pix_fmt="yuv444p", audio=False)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="flow", pix_fmt="yuv444p")  # asked
    frames, _, _ = read_video(out.output)
    assert frames[0].shape == (63, 95, 3) and len(frames) == 12


def test_image_sequences_in_and_out(tmp_path):
    import cv2

    (tmp_path / "in").mkdir()
    for i, frame in enumerate(moving_frames(5), start=7):
        cv2.imwrite(str(tmp_path / "in" / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    result = slomo.convert(str(tmp_path / "in" / "%04d.png"), str(tmp_path / "out" / "%06d.png"),
                           factor=2, model="blend")
    written = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in written] == [f"{i:06d}.png" for i in range(10)]
    first = cv2.cvtColor(cv2.imread(str(written[0])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(first, moving_frames(5)[0])  # lossless
    assert result.frames_out == 10


def test_variable_frame_rate_follows_timestamps(tmp_path):
    times = [0, 0.04, 0.08, 0.2, 0.24, 0.4, 0.44]  # gaps of 0.12 and 0.16 s
    src = write_clip(tmp_path / "vfr.mkv", moving_frames(7), times=times, audio=False)
    out = slomo.convert(src, tmp_path / "out.mkv", factor=2, model="blend")
    _, got, _ = read_video(out.output)
    expected = []
    for a, b in zip(times, times[1:] + [times[-1] + 0.04]):
        expected += [a, (a + b) / 2]
    assert got == pytest.approx(expected, abs=2e-3)


def test_rotation_is_kept(tmp_path):
    src = write_clip(tmp_path / "rot.mp4", moving_frames(4), rotation=90, audio=False)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend")
    with av.open(out.output) as container:
        frame = next(container.decode(video=0))
        assert frame.rotation == 90


def test_default_model_is_rife_with_its_real_weights(tmp_path):
    full = moving_frames(9, size=(160, 96), motion=(4, 1))
    half = write_clip(tmp_path / "half.mp4", full[::2], fps=12.5, pix_fmt="yuv444p")
    result = slomo.convert(half, tmp_path / "out.mkv", factor=2, codec="ffv1", pix_fmt="yuv444p")
    assert result.model == "rife" and result.frames_out == 10
    rebuilt, _, _ = read_video(result.output)
    scores = [psnr(rebuilt[i][8:-8, 8:-8], full[i][8:-8, 8:-8]) for i in (1, 3, 5, 7)]
    assert min(scores) > 40, scores


@pytest.mark.parametrize("options,named", [
    ({"scale": 4}, "scale must be within 0.25..1, not 4"),
    ({"scene_threshold": -1}, "scene threshold must be within 0..2, not -1"),
    ({"fps": 60, "factor": 2}, "a factor (2) and a frame rate (60) together"),
    ({"crf": 99}, "crf 99 is outside libx264's range 0..51"),
    ({"model": ""}, "unknown model ''"),
    ({"device": "cuda"}, "model blend runs on cpu only, not 'cuda'"),
])
def test_api_refuses_bad_values_with_one_error_family(clip, options, named):
    """Issue 10 items 20 and 23: a SlomoError naming the value, before any output is opened."""
    import slomo

    with pytest.raises(slomo.UsageError) as info:
        slomo.convert(clip, **{"model": "blend", **options})
    assert isinstance(info.value, slomo.SlomoError) and named in str(info.value)
    assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4"]


def test_flavr_takes_its_checkpoint_from_the_target_rate(tmp_path):
    """Issue 10 item 10: 25 -> 100 fps is 4x, served by the 4x checkpoint (not the default 2x)."""
    import slomo
    from test_flavr import deterministic_state, save_official, shapes_for

    checkpoint = save_official(deterministic_state(shapes_for(4), 0), tmp_path / "FLAVR_4x.pth")
    src = write_clip(tmp_path / "clip.mp4", moving_frames(4, size=(64, 48)), audio=False)
    result = slomo.convert(src, tmp_path / "out.mp4", fps=100, model="flavr", weights=checkpoint)
    assert result.frames_out == 16 and result.output_fps == 100
