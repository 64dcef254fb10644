"""Media correctness on real-world stream layouts (issue 10): timestamps, audio, metadata, codecs."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
from conftest import moving_frames, read_video, write_clip

import slomo
from slomo import io
from slomo.errors import MediaError, UsageError


def write_av(path, n=10, fps=25, size=(64, 48), audio_codec="aac", layout="mono", audio_start=0.0,
             audio_seconds=None, video_codec="libx264", pix_fmt="yuv420p", options=None):
    """A clip with a tone in ``audio_codec``/``layout`` whose first sample is at ``audio_start`` s."""
    frames = moving_frames(n, size=size)
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        video.options = options or ({"crf": "0", "preset": "ultrafast"} if video_codec == "libx264" else {})
        audio = None
        if audio_codec:
            audio = out.add_stream(audio_codec, rate=48000)
            audio.layout = layout
            audio.time_base = Fraction(1, 48000)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            seconds = audio_seconds if audio_seconds is not None else n / fps - audio_start
            samples = int(seconds * 48000)
            channels = audio.layout.nb_channels
            fmt = audio.codec_context.codec.audio_formats[0].name
            for start in range(0, samples, 960):
                t = (start + np.arange(min(960, samples - start))) / 48000
                wave = np.tile((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (channels, 1))
                chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout=layout)
                chunk.sample_rate = 48000
                chunk.pts = start + round(audio_start * 48000)
                chunk.time_base = Fraction(1, 48000)
                if fmt != "fltp":
                    chunk = av.AudioResampler(format=fmt, layout=layout, rate=48000).resample(chunk)[0]
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))
    return path


def audio_info(path):
    """(codec, layout, first time, last end time in seconds) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        end = frames[-1].time + frames[-1].samples / frames[-1].sample_rate
        return stream.codec_context.name, stream.layout.name, frames[0].time, end


def video_start(path):
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).time


# 7 ------------------------------------------------------------------------------------------
def test_deinterlace_keeps_timestamps(tmp_path):
    src = write_clip(tmp_path / "int.mp4", moving_frames(6), audio=False,
                     options={"crf": "0", "preset": "ultrafast", "flags": "+ilme+ildct",
                              "x264-params": "tff=1"})
    reader = io.VideoReader(src)
    times = [t for t, _ in reader.frames(deinterlace=True)]
    reader.close()
    assert times == [Fraction(i, 25) for i in range(6)]  # yadif's half time base read as such
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", deinterlace=True).output
    assert read_video(out)[1][-1] == pytest.approx(11 / 50, abs=1e-3)


# 8 ------------------------------------------------------------------------------------------
def tone_onset(path) -> float:
    """When the tone is first heard (s): the first loud sample, after the encoder's priming."""
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()[0]) > 0.1)
            if loud.size:
                return frame.time + loud[0] / frame.sample_rate
    raise AssertionError("silent")


@pytest.mark.parametrize("factor", [2, 4])
def test_slowmo_stretches_the_audio_start_offset(tmp_path, factor):
    src = write_av(tmp_path / "late.mp4", n=25, audio_start=0.28)
    assert tone_onset(src) - video_start(src) == pytest.approx(0.28, abs=0.005)
    out = slomo.convert(src, tmp_path / "slow.mp4", factor=factor, slowmo=True, model="blend").output
    # within atempo's own jitter; uncompensated, its window put the tone 27 ms (2x) / 71 ms (4x) early
    assert tone_onset(out) - video_start(out) == pytest.approx(0.28 * factor, abs=0.005 * factor)


# 11 -----------------------------------------------------------------------------------------
def _fake(pts):
    return SimpleNamespace(pts=pts, dts=None, time_base=Fraction(1, 1000))


def test_missing_and_repeated_timestamps_are_derived_from_the_rate(caplog):
    stamps = [None, None, None, 120, 160, 160, 160, 280, None, 360]
    placed = [t for t, _ in io.frame_times(iter(map(_fake, stamps)), Fraction(1, 1000), Fraction(25), "x")]
    assert placed == [Fraction(k, 25) for k in range(10)]  # leading ones before the first timed frame
    assert len(caplog.records) == 1  # one warning per file, not per frame


def test_repeated_timestamps_in_a_file_drop_no_frame(tmp_path, caplog):
    src = write_clip(tmp_path / "v.mkv", moving_frames(10), audio=False)
    dup = tmp_path / "dup.mkv"
    with av.open(str(src)) as inp, av.open(str(dup), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for i, packet in enumerate(p for p in inp.demux() if p.dts is not None):
            if i in (4, 5):
                packet.pts = packet.dts = 120  # the same time as frame 3
            packet.stream = stream
            out.mux(packet)
    result = slomo.convert(dup, tmp_path / "out.mkv", factor=2, model="blend")
    assert result.frames_in == 10 and result.frames_out == 20
    assert sum("timestamps" in r.message for r in caplog.records) == 1


# 13 -----------------------------------------------------------------------------------------
def test_output_rate_finer_than_the_container_clock(tmp_path):
    src = write_av(tmp_path / "fast.mp4", n=6, fps=1000, audio_codec=None)
    with pytest.raises(MediaError, match="steps of 1/1000 s"):
        slomo.convert(src, tmp_path / "out.mkv", factor=2, model="blend")
    assert not list(tmp_path.glob("*out*"))
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend").output
    times = read_video(out)[1]
    assert len(set(times)) == len(times) == 12
    assert times[1] - times[0] == pytest.approx(0.0005, abs=1e-6)


# 24, 25, 26 ---------------------------------------------------------------------------------
def test_opus_into_mov_is_reencoded_to_aac(tmp_path):
    src = write_av(tmp_path / "opus.mkv", audio_codec="libopus")
    out = slomo.convert(src, tmp_path / "out.mov", factor=2, model="blend").output
    assert audio_info(out)[0] == "aac"


def test_pcm_into_mp4_becomes_aac(tmp_path):
    src = write_av(tmp_path / "pcm.mov", audio_codec="pcm_s16le")
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend").output
    assert audio_info(out)[0] == "aac"


@pytest.mark.parametrize("layout,ext,slowmo", [("5.1", ".webm", False), ("5.1", ".mp4", True),
                                               ("5.1(side)", ".webm", False)])
def test_reencoded_audio_keeps_five_one(tmp_path, layout, ext, slowmo):
    src = write_av(tmp_path / "surround.mkv", layout=layout, audio_codec="flac")
    out = slomo.convert(src, tmp_path / f"out{ext}", factor=2, slowmo=slowmo, model="blend").output
    assert audio_info(out)[1] == "5.1"  # Opus takes 5.1(side) as 5.1, as ffmpeg gives it


def test_reencoding_without_slowmo_keeps_audio_times(tmp_path):
    src = write_av(tmp_path / "aac.mp4", n=25, audio_start=0.28)
    out = slomo.convert(src, tmp_path / "out.webm", factor=2, model="blend").output  # AAC -> Opus
    assert audio_info(out)[0] == "opus"
    assert tone_onset(out) == pytest.approx(tone_onset(src), abs=0.003)  # atempo=1 put it 20 ms early
    assert audio_info(out)[3] == pytest.approx(audio_info(src)[3], abs=0.01)  # and cut its end


# 27 -----------------------------------------------------------------------------------------
def _tagged(tmp_path):
    """An MKV with a French default audio track, a title, a global tag, two chapters and SRT."""
    plain = write_av(tmp_path / "plain.mkv", n=10)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nhello\n\n2\n00:00:00,200 --> 00:00:00,380\nworld\n")
    tagged = tmp_path / "tagged.mkv"
    with av.open(str(plain)) as v, av.open(str(srt)) as s, av.open(str(tagged), "w") as out:
        out.metadata.update({"title": "Holiday", "comment": "take 2"})
        out.set_chapters([{"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000),
                           "metadata": {"title": "one"}},
                          {"id": 2, "start": 200, "end": 400, "time_base": Fraction(1, 1000),
                           "metadata": {"title": "two"}}])
        pairs = [(stream, out.add_stream_from_template(stream)) for stream in (*v.streams, s.streams[0])]
        for stream, copy in pairs:
            copy.metadata["language"] = "fra" if stream.type != "subtitle" else "eng"
        pairs[1][1].disposition = av.stream.Disposition.default
        for stream, copy in pairs:
            for packet in stream.container.demux(stream):
                if packet.dts is not None:
                    packet.stream = copy
                    out.mux(packet)
    return tagged


@pytest.mark.parametrize("slowmo", [False, True])
def test_languages_flags_title_tags_and_chapters_are_kept(tmp_path, slowmo):
    src = _tagged(tmp_path)
    out = slomo.convert(src, tmp_path / "out.mkv", factor=2, slowmo=slowmo, model="blend").output
    scale = 2 if slowmo else 1
    with av.open(out) as container:
        tags = {key.lower(): value for key, value in container.metadata.items()}
        assert (tags.get("title"), tags.get("comment")) == ("Holiday", "take 2")
        assert [s.language for s in container.streams] == ["fra", "fra", "eng"]
        assert container.streams.audio[0].disposition & av.stream.Disposition.default
        chapters = [(float(c["start"] * c["time_base"]), c["metadata"]["title"])
                    for c in container.chapters()]
    assert chapters == [(0.0, "one"), (pytest.approx(0.2 * scale), "two")]


def test_srt_subtitles_become_mov_text_in_mp4(tmp_path):
    out = slomo.convert(_tagged(tmp_path), tmp_path / "out.mp4", factor=2, model="blend").output
    with av.open(out) as container:
        stream = container.streams.subtitles[0]
        assert (stream.codec_context.name, stream.language) == ("mov_text", "eng")
        texts = [bytes(p)[2:] for p in container.demux(stream) if p.size > 2]
    assert texts == [b"hello", b"world"]


# 28 -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_hevc_ten_bit_stays_hevc_ten_bit_tagged_hvc1(tmp_path):
    src = write_av(tmp_path / "hevc.mkv", n=4, audio_codec=None, video_codec="libx265",
                   pix_fmt="yuv420p10le",
                   options={"crf": "0", "preset": "ultrafast", "x265-params": "log-level=0"})
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", preset="ultrafast").output
    with av.open(out) as container:
        cc = container.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt, cc.codec_tag) == ("hevc", "yuv420p10le", "hvc1")


def test_other_ten_bit_formats_default_to_hevc_main10(tmp_path):
    src = write_av(tmp_path / "prores.mov", n=4, audio_codec=None, video_codec="prores_ks",
                   pix_fmt="yuv422p10le")
    out = slomo.convert(src, tmp_path / "out.mov", factor=2, model="blend", preset="ultrafast",
                        encoder_opts="log-level=0").output
    with av.open(out) as container:
        cc = container.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt, cc.codec_tag) == ("hevc", "yuv420p10le", "hvc1")


def test_odd_size_is_padded_to_420_with_a_note(tmp_path, caplog):
    odd = [f[:47, :63] for f in moving_frames(4, size=(64, 48))]
    src = write_clip(tmp_path / "odd.mkv", odd, codec="ffv1", pix_fmt="yuv444p", audio=False)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend").output
    frames, _, info = read_video(out)
    assert info["pix_fmt"] == "yuv420p" and frames[0].shape == (48, 64, 3)
    assert "padded to 64x48" in caplog.text
    asked = slomo.convert(src, tmp_path / "asked.mp4", factor=2, model="blend", pix_fmt="yuv420p").output
    assert read_video(asked)[0][0].shape == (48, 64, 3)  # a 4:2:0 request on an odd size: padded too


def test_encoder_opts_reach_x264(tmp_path):
    src = write_av(tmp_path / "in.mp4", n=6, audio_codec=None)
    out = slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", encoder_opts="keyint=1").output
    with av.open(out) as container:
        assert all(f.key_frame for f in container.decode(video=0))  # every frame a keyframe
    with pytest.raises(UsageError, match="not key=value"):
        slomo.convert(src, tmp_path / "bad.mp4", factor=2, model="blend", encoder_opts="keyint")


# 18, 19 -------------------------------------------------------------------------------------
def test_audio_codec_as_video_codec_is_a_usage_error(tmp_path):
    src = write_av(tmp_path / "in.mp4", n=4, audio_codec=None)
    with pytest.raises(UsageError, match="'aac' is an audio encoder"):
        slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", codec="aac")
    with pytest.raises(UsageError, match="unknown video encoder 'nope'"):
        slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", codec="nope")


def test_encoder_refusals_are_told_in_words(tmp_path):
    src = write_av(tmp_path / "in.mp4", n=4, audio_codec=None)
    refused = r"libx264 refuses to start \(video: libx264 yuv420p 64x48 .*tune nope"
    with pytest.raises(MediaError, match=refused):
        slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", preset="nope")
    with pytest.raises(UsageError, match=r"Error parsing option 'bogus = 3'"):  # x264 only logs it
        slomo.convert(src, tmp_path / "out.mp4", factor=2, model="blend", encoder_opts="bogus=3")
    with pytest.raises(UsageError, match=r"no option bogus=1"):  # left unused by the encoder
        slomo.convert(src, tmp_path / "out.mkv", factor=2, model="blend", codec="ffv1",
                      encoder_opts="bogus=1")
    assert not list(tmp_path.glob("*out*"))


def test_unreadable_header_is_told_in_words(tmp_path):
    huge = tmp_path / "huge.y4m"
    huge.write_bytes(b"YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(3000))
    with pytest.raises(MediaError, match="Picture size 100000x100000 is invalid"):
        slomo.convert(huge, tmp_path / "out.mp4", factor=2, model="blend")
