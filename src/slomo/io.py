"""Reading and writing video with PyAV: frames with exact timestamps, audio and subtitles, colour.

Everything that touches a container lives here.  Frames leave a :class:`VideoReader` as float32 RGB
in ``[0, 1]`` together with their presentation time as an exact :class:`~fractions.Fraction` of a
second, and enter a :class:`VideoWriter` the same way.  The YUV<->RGB conversion uses the source's
matrix and range both ways, and the output is tagged with the source's colour metadata, so colours
survive the round trip.  Image sequences (``frames/%06d.png``) are read and written losslessly.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from . import colour
from .errors import MediaError
from .interpolator import from_frame, to_frame

log = logging.getLogger("slomo")

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts",
                    ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".gif", ".y4m"}
#: Default video and audio encoders per output container.
CONTAINER_CODECS = {".webm": ("libvpx-vp9", "libopus")}
DEFAULT_CODECS = ("libx264", "aac")


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a source."""

    path: str
    width: int
    height: int
    rate: Fraction  # average frame rate
    time_base: Fraction  # exact unit of the frame timestamps
    frames: int  # the container's frame count, 0 when unknown
    duration: Fraction | None  # seconds, when the container knows
    pix_fmt: str
    bit_depth: int
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    colorspace: int = 2
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None
    side_streams: bool = False  # audio or subtitles to carry over
    is_sequence: bool = False


def is_pattern(path: str) -> bool:
    """Whether ``path`` is a printf-style image-sequence pattern such as ``out/%06d.png``."""
    return re.search(r"%0?\d*d", str(path)) is not None


def _bit_depth(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def _rgb_format(bit_depth: int) -> str:
    """8-bit RGB for 8-bit video: swscale's 16-bit RGB to 8-bit YUV path is off by a level in
    full range, the 8-bit one is not."""
    return "rgb24" if bit_depth <= 8 else "rgb48le"


class VideoReader:
    """Decodes one video stream frame by frame, skipping corrupt packets with a warning."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if not os.path.exists(self.path):
            raise MediaError("no such file")
        if os.path.isdir(self.path):
            raise MediaError("is a folder")
        try:
            self._container = av.open(self.path, metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise MediaError(f"not a video PyAV can open ({_ffmpeg_reason(exc)})") from None
        if not self._container.streams.video:
            kinds = sorted({s.type for s in self._container.streams}) or ["no streams"]
            self._container.close()
            raise MediaError(f"no video stream (has {', '.join(kinds)})")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.info = self._probe()

    def _probe(self) -> VideoInfo:
        s, cc = self._stream, self._stream.codec_context
        rate = s.average_rate or s.guessed_rate or s.base_rate or Fraction(30)
        fmt = cc.format
        duration = None
        if s.duration is not None:
            duration = Fraction(s.duration) * s.time_base
        elif self._container.duration:
            duration = Fraction(self._container.duration, av.time_base)
        sar = s.sample_aspect_ratio
        return VideoInfo(
            path=self.path,
            width=cc.width,
            height=cc.height,
            rate=Fraction(rate),
            time_base=Fraction(s.time_base),
            frames=s.frames or 0,
            duration=duration,
            pix_fmt=fmt.name if fmt else "yuv420p",
            bit_depth=_bit_depth(fmt) if fmt else 8,
            color_range=int(cc.color_range),
            color_primaries=int(cc.color_primaries),
            color_trc=int(cc.color_trc),
            colorspace=int(cc.colorspace),
            sample_aspect_ratio=Fraction(sar) if sar else None,
            side_streams=bool(self._container.streams.audio or self._container.streams.subtitles),
        )

    def seek(self, time: Fraction) -> None:
        """Start decoding at the last keyframe at or before ``time`` (a chunk of a long file)."""
        self._container.seek(round(time / self.info.time_base), stream=self._stream, backward=True)

    def keyframe_times(self) -> tuple[list[Fraction], list[Fraction]]:
        """(every frame's time, the keyframes' times) from the packets, without decoding;
        ``([], [])`` when a packet has no timestamp, so the frame times cannot be known."""
        times, keyframes = [], []
        with av.open(self.path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return [], []
                time = Fraction(packet.pts) * self.info.time_base
                times.append(time)
                if packet.is_keyframe:
                    keyframes.append(time)
        return sorted(times), sorted(keyframes)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames, skipping corrupt packets and stopping at a damaged end, with warnings."""
        try:
            for packet in self._container.demux(self._stream):
                try:
                    yield from packet.decode()
                except av.InvalidDataError as exc:
                    log.warning("%s: skipped a corrupt packet (%s)", self.path, _ffmpeg_reason(exc))
        except av.FFmpegError as exc:
            log.warning("%s: stopped reading at a damaged part (%s)", self.path, _ffmpeg_reason(exc))

    def _deinterlaced(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """libavfilter's yadif, one output frame per input frame."""
        graph = av.filter.Graph()
        source = graph.add_buffer(template=self._stream)
        yadif = graph.add("yadif", "mode=send_frame:deint=interlaced")
        sink = graph.add("buffersink")
        source.link_to(yadif)
        yadif.link_to(sink)
        graph.configure()
        for frame in [*frames, None]:
            graph.push(frame)
            while True:
                try:
                    yield graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    break

    def frames(self, deinterlace: bool = False) -> Iterator[tuple[Fraction, np.ndarray]]:
        """Yield ``(time in seconds, float32 RGB frame)`` in presentation order.

        Times come from the frames' timestamps; a frame without one, or with the same one as its
        predecessor, is placed one frame period later, and one going backwards is dropped.
        """
        tb, step = self.info.time_base, 1 / self.info.rate
        rgb = _rgb_format(self.info.bit_depth)
        last: Fraction | None = None
        frames = self._decoded()
        if deinterlace:
            frames = self._deinterlaced(frames)
        for frame in frames:
            if last is None:
                self.info = replace(self.info, rotation=int(frame.rotation or 0))
                if frame.interlaced_frame and not deinterlace:
                    log.warning("%s: the video is interlaced; --deinterlace gives cleaner results",
                                self.path)
            time = Fraction(frame.pts) * tb if frame.pts is not None else None
            if last is not None and (time is None or time <= last):
                if time is not None and time < last:
                    log.warning("%s: dropped a frame whose timestamp goes backwards", self.path)
                    continue
                time = last + step
            last = time if time is not None else Fraction(0)
            if colour.supports(frame.format.name):
                yield last, colour.to_rgb(frame, int(frame.colorspace), int(frame.color_range))
            else:
                array = frame.to_ndarray(format=rgb, src_colorspace=frame.colorspace or None,
                                         src_color_range=frame.color_range, dst_color_range=2)
                yield last, to_frame(array)

    def close(self) -> None:
        self._container.close()


class ImageSequenceReader:
    """Reads ``frames/%06d.png`` style sequences, numbered from the smallest number present."""

    def __init__(self, pattern: str, fps: Fraction):
        self.path = pattern
        self.files = _sequence_files(pattern)
        if not self.files:
            raise MediaError("no images match the pattern")
        first = cv2.imread(self.files[0], cv2.IMREAD_UNCHANGED)
        if first is None:
            raise MediaError(f"{self.files[0]}: not an image")
        height, width = first.shape[:2]
        self.info = VideoInfo(
            path=pattern, width=width, height=height, rate=Fraction(fps), time_base=1 / Fraction(fps),
            frames=len(self.files), duration=len(self.files) / Fraction(fps),
            pix_fmt="rgb48le" if first.dtype == np.uint16 else "rgb24",
            bit_depth=16 if first.dtype == np.uint16 else 8, color_range=2, colorspace=1,
            color_primaries=1, color_trc=1, is_sequence=True,
        )

    def frames(self, deinterlace: bool = False) -> Iterator[tuple[Fraction, np.ndarray]]:
        for index, name in enumerate(self.files):
            image = cv2.imread(name, cv2.IMREAD_UNCHANGED)
            if image is None:
                raise MediaError(f"{name}: not an image")
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
            yield index * self.info.time_base, to_frame(image)

    def close(self) -> None:
        pass


def _sequence_files(pattern: str) -> list[str]:
    """Files matching a printf pattern, sorted by their number."""
    match = re.search(r"%0?(\d*)d", pattern)
    head, tail = pattern[: match.start()], pattern[match.end():]
    numbered = []
    for name in glob.glob(glob.escape(head) + "*" + glob.escape(tail)):
        middle = name[len(head): len(name) - len(tail)]
        if middle.isdigit():
            numbered.append((int(middle), name))
    return [name for _, name in sorted(numbered)]


def open_input(path: str, fps: Fraction = Fraction(30)):
    """A reader for a video file or an image-sequence pattern."""
    return ImageSequenceReader(path, fps) if is_pattern(path) else VideoReader(path)


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


@dataclass(frozen=True)
class EncodeOptions:
    codec: str | None = None  # None: the container's default (libx264; libvpx-vp9 for .webm)
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str | None = None  # None: the source's where the codec allows
    audio: bool = True


def choose_pix_fmt(codec: str, info: VideoInfo, requested: str | None) -> str:
    """The source's pixel format where the encoder takes it, else the nearest it does."""
    supported = [f.name for f in av.codec.Codec(codec, "w").video_formats or ()]
    if requested:
        if supported and requested not in supported:
            raise MediaError(f"{codec} cannot encode pixel format {requested}")
        return requested
    odd = info.width % 2 or info.height % 2
    candidates = [] if info.is_sequence else [info.pix_fmt]
    if info.bit_depth > 8:
        candidates += ["yuv444p10le" if odd else "yuv420p10le"]
    candidates += ["yuv444p" if odd else "yuv420p"]
    for name in candidates:
        chroma_subsampled = name.startswith(("yuv420", "yuvj420", "nv12", "yuv422", "yuvj422"))
        if (not supported or name in supported) and not (odd and chroma_subsampled):
            return name
    return supported[0]


def encoder_frame(frame: np.ndarray, pix_fmt: str, info: VideoInfo) -> av.VideoFrame:
    """A float RGB frame in the encoder's pixel format, with the source's matrix and range."""
    if colour.supports(pix_fmt):
        vf = colour.from_rgb(frame, pix_fmt, info.colorspace, info.color_range)
    else:
        bit_depth = 16 if any(d in pix_fmt for d in ("10", "12", "16")) else 8
        vf = av.VideoFrame.from_ndarray(from_frame(frame, bit_depth), format=_rgb_format(bit_depth))
        vf = vf.reformat(format=pix_fmt, dst_colorspace=info.colorspace or None,
                         dst_color_range=info.color_range or 1)
    vf.color_range = info.color_range
    return vf


def output_pix_fmt(dst: str | os.PathLike, info: VideoInfo, options: EncodeOptions) -> str:
    """The pixel format a :class:`VideoWriter` to ``dst`` hands its encoder."""
    codec = options.codec or CONTAINER_CODECS.get(Path(dst).suffix.lower(), DEFAULT_CODECS)[0]
    return choose_pix_fmt(codec, info, options.pix_fmt)


class VideoWriter:
    """Encodes frames into a temporary file and moves it into place only when complete.

    ``time_scale`` stretches every timestamp (slow motion): video frames arrive with times in
    source seconds, audio and subtitles are copied from ``source`` stretched the same way (audio
    re-timed with libavfilter's atempo so the pitch is kept).  Audio is muxed as the video
    advances, so memory stays bounded and the file is interleaved.
    """

    def __init__(self, dst: str | os.PathLike, info: VideoInfo, rate: Fraction, time_base: Fraction,
                 options: EncodeOptions = EncodeOptions(), time_scale: Fraction = Fraction(1)):
        self.dst = Path(dst)
        self.partial = self.dst.with_name(f".{self.dst.stem}.partial{self.dst.suffix}")
        self.info = info
        self.time_base = time_base * time_scale
        self.time_scale = time_scale
        video_codec, audio_codec = CONTAINER_CODECS.get(self.dst.suffix.lower(), DEFAULT_CODECS)
        codec = options.codec or video_codec
        try:
            self._out = av.open(str(self.partial), "w")
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"cannot write {self.dst.suffix or 'this'} files ({_ffmpeg_reason(exc)})") from None
        try:
            self._video = self._add_video(codec, rate / time_scale, options)
            self._side = _StreamCopier(info, self._out, audio_codec, time_scale, options.audio) if (
                info.side_streams and not info.is_sequence) else None
        except Exception:
            self.abort()
            raise
        self._frames = 0

    def _add_video(self, codec: str, rate: Fraction, options: EncodeOptions):
        try:
            stream = self._out.add_stream(codec, rate=_limit(rate))
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"unknown or unsupported codec {codec!r} ({_ffmpeg_reason(exc)})") from None
        info = self.info
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = self._pix_fmt = choose_pix_fmt(codec, info, options.pix_fmt)
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        cc = stream.codec_context
        cc.color_range, cc.color_primaries = info.color_range, info.color_primaries
        cc.color_trc, cc.colorspace = info.color_trc, info.colorspace
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if codec in ("libx264", "libx265"):
            stream.options = {"crf": str(options.crf), "preset": options.preset}
        elif codec in ("libvpx-vp9", "libsvtav1", "libaom-av1"):
            stream.options = {"crf": str(options.crf), "b": "0"}
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def write(self, time: Fraction, frame: np.ndarray) -> None:
        """Encode one frame shown at ``time`` (source seconds, before stretching)."""
        self.write_converted(time, encoder_frame(frame, self._pix_fmt, self.info))

    def write_converted(self, time: Fraction, vf: av.VideoFrame) -> None:
        """Encode a frame already in the encoder's pixel format (:func:`encoder_frame`), such as
        one read back from a chunk's lossless intermediate."""
        vf.color_range = self.info.color_range
        vf.pict_type = av.video.frame.PictureType.NONE  # a decoded I-frame would force a keyframe
        vf.pts = round(time * self.time_scale / self.time_base)
        vf.time_base = self.time_base
        if self._side:
            self._side.mux_until(time * self.time_scale)
        for packet in self._video.encode(vf):
            self._out.mux(packet)
        self._frames += 1

    def close(self) -> Path:
        """Flush the encoder, finish audio, and move the file into place."""
        try:
            for packet in self._video.encode(None):
                self._out.mux(packet)
            if self._side:
                self._side.mux_until(None)
            self._out.close()
        except BaseException:
            self.abort()
            raise
        os.replace(self.partial, self.dst)
        return self.dst

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._out.close()
        except Exception:  # the container may already be unusable; the file goes anyway
            pass
        self.partial.unlink(missing_ok=True)


def _limit(rate: Fraction) -> Fraction:
    """A frame rate with a denominator encoders accept."""
    return rate.limit_denominator(1_000_000)


class _StreamCopier:
    """Copies (or re-encodes) the source's audio and subtitle streams into the output."""

    def __init__(self, info: VideoInfo, out, audio_codec: str, time_scale: Fraction, audio: bool):
        self._src = av.open(info.path, metadata_errors="ignore")
        self._out = out
        self._scale = time_scale
        self._routes = {}
        for stream in self._src.streams:
            if stream.type == "audio" and audio:
                self._routes[stream.index] = self._audio_route(stream, audio_codec)
            elif stream.type == "subtitle" and stream.codec_context.name in out.supported_codecs:
                self._routes[stream.index] = ("copy", out.add_stream_from_template(stream), None)
            elif stream.type == "subtitle":
                log.warning("%s: %s subtitles cannot go into %s; dropped", info.path,
                            stream.codec_context.name, out.format.name)
        self._packets = self._src.demux([s for s in self._src.streams if s.index in self._routes])
        self._pending = None
        self._finished = not self._routes

    def _audio_route(self, stream, audio_codec: str):
        name = stream.codec_context.name
        if self._scale == 1 and name in self._out.supported_codecs:
            return ("copy", self._out.add_stream_from_template(stream), None)
        rate = stream.codec_context.sample_rate or 48000
        encoder = self._out.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else rate)
        encoder.layout = stream.codec_context.layout if stream.codec_context.layout.nb_channels <= 2 else "stereo"
        return ("encode", encoder, _TempoFilter(stream, 1 / self._scale, encoder))

    def mux_until(self, time: Fraction | None) -> None:
        """Mux source packets up to ``time`` (output seconds); all that remain when None."""
        if self._finished:
            return
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                break
            if packet.pts is not None and time is not None:
                if Fraction(packet.pts) * packet.time_base * self._scale > time + 1:
                    self._pending = packet  # keep about a second of audio ahead of the video
                    return
            self._route(packet)
        for kind, stream, tempo in self._routes.values():
            if kind == "encode":
                for frame in tempo.push(None):
                    self._encode(stream, frame)
                for out_packet in stream.encode(None):
                    self._out.mux(out_packet)
        self._src.close()
        self._finished = True

    def _route(self, packet) -> None:
        kind, stream, tempo = self._routes[packet.stream.index]
        if kind == "copy":
            if packet.dts is None and packet.pts is None:
                return
            if self._scale != 1:  # slow motion: subtitles stay with their scenes
                packet.pts = round(packet.pts * self._scale) if packet.pts is not None else None
                packet.dts = round(packet.dts * self._scale) if packet.dts is not None else None
                packet.duration = round(packet.duration * self._scale)
            packet.stream = stream
            self._out.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            log.warning("skipped a corrupt audio packet")
            return
        for frame in frames:
            for out in tempo.push(frame):
                self._encode(stream, out)

    def _encode(self, stream, frame) -> None:
        for packet in stream.encode(frame):
            self._out.mux(packet)


class _TempoFilter:
    """Resamples audio for the encoder and changes its speed with atempo, keeping the pitch."""

    def __init__(self, source, tempo: Fraction, encoder):
        self.graph = av.filter.Graph()
        cc = source.codec_context
        chain = [self.graph.add_abuffer(sample_rate=cc.sample_rate, format=cc.format.name,
                                        layout=cc.layout.name, time_base=source.time_base)]
        for factor in _atempo_factors(float(tempo)):
            chain.append(self.graph.add("atempo", f"{factor:.10f}"))
        out_fmt = encoder.codec_context.codec.audio_formats[0].name
        chain.append(self.graph.add("aformat", f"sample_fmts={out_fmt}:sample_rates={encoder.rate}:"
                                               f"channel_layouts={encoder.layout.name}"))
        chain.append(self.graph.add("abuffersink"))
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        self.graph.configure()

    def push(self, frame) -> list:
        """Feed one frame (None flushes) and return the frames ready for the encoder."""
        self.graph.push(frame)
        out = []
        while True:
            try:
                out.append(self.graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return out


def _atempo_factors(tempo: float) -> list[float]:
    """atempo takes 0.5..100 per instance: chain several for stronger slow-downs."""
    factors = []
    while tempo < 0.5:
        factors.append(0.5)
        tempo /= 0.5
    factors.append(tempo)
    return factors


class ImageSequenceWriter:
    """Writes lossless PNG frames numbered from 0; each file appears only when complete."""

    def __init__(self, pattern: str, info: VideoInfo):
        self.pattern = pattern
        Path(pattern).parent.mkdir(parents=True, exist_ok=True)
        self._bit_depth = 16 if info.bit_depth > 8 else 8
        self._written: list[Path] = []

    def write(self, time: Fraction, frame: np.ndarray) -> None:
        target = Path(self.pattern % len(self._written))
        partial = target.with_name(f".{target.name}.partial.png")
        image = cv2.cvtColor(from_frame(frame, self._bit_depth), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(partial), image):
            raise MediaError(f"cannot write {target}")
        os.replace(partial, target)
        self._written.append(target)

    def close(self) -> Path:
        return Path(self.pattern)

    def abort(self) -> None:
        for path in self._written:
            path.unlink(missing_ok=True)


class LosslessWriter:
    """A chunk's output frames, exactly as they will reach the final encoder: FFV1 in Matroska.

    FFV1 stores the planar YUV and RGB formats slomo hands its encoders (8 to 16 bits), bit for
    bit; the frames' times travel separately (Matroska rounds timestamps to milliseconds, so the
    stream's nominal rate and counter timestamps here carry nothing).  The file appears only when
    closed.
    """

    def __init__(self, dst: str | os.PathLike, info: VideoInfo, pix_fmt: str):
        self.dst = Path(dst)
        self.partial = self.dst.with_name(f".{self.dst.name}.partial")
        self._out = av.open(str(self.partial), "w", format="matroska")
        self._stream = self._out.add_stream("ffv1", rate=24)
        self._stream.width, self._stream.height = info.width, info.height
        self._stream.pix_fmt = pix_fmt
        self._stream.options = {"slices": "4", "threads": "2"}
        self._count = 0

    def write(self, vf: av.VideoFrame) -> None:
        vf.pts, vf.time_base = self._count, Fraction(1, 24)
        vf.pict_type = av.video.frame.PictureType.NONE
        for packet in self._stream.encode(vf):
            self._out.mux(packet)
        self._count += 1

    def close(self) -> Path:
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        os.replace(self.partial, self.dst)
        return self.dst

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception:  # the container may already be unusable; the file goes anyway
            pass
        self.partial.unlink(missing_ok=True)


def read_lossless(path: str | os.PathLike) -> Iterator[av.VideoFrame]:
    """The frames of a :class:`LosslessWriter` file, in order."""
    with av.open(str(path)) as container:
        yield from container.decode(container.streams.video[0])
