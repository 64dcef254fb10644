"""Reading and writing video with PyAV: frames with exact timestamps, audio and subtitles, colour.

Everything that touches a container lives here.  Frames leave a :class:`VideoReader` as
:class:`~slomo.frames.Picture` objects (decoded planes; :meth:`VideoReader.frames` gives float32 RGB
in ``[0, 1]``) together with their presentation time as an exact :class:`~fractions.Fraction` of a
second, and enter a :class:`VideoWriter` as pictures: one still as it was decoded is encoded as it
is.  The YUV<->RGB conversion uses the source's matrix and range both ways, and the output is
tagged with the source's colour metadata, so colours survive the round trip.  Image sequences
(``frames/%06d.png``) are read and written losslessly.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import itertools
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import av
import av.codec.hwaccel
import av.logging
import cv2
import numpy as np

from . import colour
from .errors import MediaError, UsageError
from .frames import Frame, Picture, from_frame, to_frame

if TYPE_CHECKING:
    from av.container.core import Chapter  # a TypedDict of PyAV's stubs only

    from .outputs import Target

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
    codec: str = ""  # the source's video format (h264, hevc, prores, ...)
    tags: dict[str, str] = field(default_factory=dict)  # the container's title and global tags
    video_tags: dict[str, str] = field(default_factory=dict)  # the video stream's language, title
    video_disposition: int = 0  # the video stream's default/forced/... flags
    chapters: tuple[Chapter, ...] = ()  # as PyAV gives them: start, end, time_base, metadata


def is_pattern(path: str) -> bool:
    """Whether ``path`` is a printf-style image-sequence pattern such as ``out/%06d.png``."""
    return re.search(r"%0?\d*d", str(path)) is not None


def _bit_depth(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def _rgb_format(bit_depth: int) -> str:
    """8-bit RGB for 8-bit video: swscale's 16-bit RGB to 8-bit YUV path is off by a level in
    full range, the 8-bit one is not."""
    return "rgb24" if bit_depth <= 8 else "rgb48le"


def _wait_for_writer(path: str) -> BinaryIO:
    """Open a named pipe (a FIFO, ``<(ffmpeg ...)``) for reading, once.

    Opening a pipe waits for its writer inside the kernel, where a signal delivered to another
    thread would never wake it; so the open runs in a helper thread while this one waits in short
    steps, and Ctrl-C or SIGTERM stop the run at once whatever thread the signal reached.
    """
    opened: list[BinaryIO] = []
    failed: list[OSError] = []

    def open_it() -> None:
        try:
            opened.append(open(path, "rb"))  # noqa: SIM115 (owned by the reader, closed with it)
        except OSError as exc:
            failed.append(exc)

    waiter = threading.Thread(target=open_it, name="slomo-pipe", daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(0.1)
    if failed:
        raise MediaError(f"cannot open the pipe ({failed[0].strerror})")
    return opened[0]


class VideoReader:
    """Decodes one video stream frame by frame, skipping corrupt packets with a warning.

    ``hwdec`` decodes on a device (``auto``, ``cuda``, ``cuda:1``: see :func:`hardware_decoder`)
    where it can, in software with one warning where it cannot; ``decoder`` says which ran.
    """

    def __init__(self, path: str | os.PathLike, hwdec: str | None = None):
        self.path = str(path)
        devices = _hwdec_devices(hwdec) if hwdec else []
        if not os.path.exists(self.path):
            raise MediaError("no such file")
        if os.path.isdir(self.path):
            raise MediaError("is a folder")
        self._pipe = _wait_for_writer(self.path) if stat.S_ISFIFO(os.stat(self.path).st_mode) else None
        try:
            with _libav_log():
                self._container = av.open(self._pipe or self.path, "r", metadata_errors="ignore")
        except av.FFmpegError as exc:
            self._close_pipe()
            raise MediaError(f"not a video PyAV can open ({_ffmpeg_reason(exc)})") from None
        if not self._container.streams.video:
            kinds: list[str] = sorted({s.type for s in self._container.streams}) or ["no streams"]
            self._container.close()
            raise MediaError(f"no video stream (has {', '.join(kinds)})")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.info = self._probe()
        self.decoder = f"{self.info.codec} (software)"
        self._on_device = False
        if devices:
            self._decode_on_device(devices)

    def _decode_on_device(self, devices: list[tuple[str, str | None]]) -> None:
        """Reopen the file to decode on the first of ``devices`` that decodes it, or keep decoding
        in software with one warning saying why.  The first open, in software, told the stream's
        own pixel format: a hardware decoder reports only its device's."""
        accel, outcome = hardware_decoder(devices, self.info.codec)
        if accel is not None and self._pipe is not None:
            accel, outcome = None, "a pipe can be read only once"
        if accel is not None:
            try:
                container = av.open(self.path, "r", metadata_errors="ignore", hwaccel=accel)
            except av.FFmpegError as exc:
                container, outcome = None, _ffmpeg_reason(exc)
            if container is not None and container.streams.video[0].codec_context.is_hwaccel:
                self._container.close()
                self._container, self._stream = container, container.streams.video[0]
                self._stream.thread_type = "AUTO"
                self.decoder, self._on_device = f"{self.info.codec} ({outcome})", True
                return
            if container is not None:
                container.close()
                outcome = f"{outcome} does not take this stream"
        _warn_once(f"hardware decoding is not available here ({outcome}): decoding in software")

    def _probe(self) -> VideoInfo:
        s, cc = self._stream, self._stream.codec_context
        if s.time_base is None:  # libavformat gives every stream one; PyAV's type allows None
            raise MediaError("the video stream has no time base")
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
            codec=cc.name,
            tags=_content_tags(self._container.metadata),
            video_tags=_content_tags(s.metadata),
            video_disposition=int(s.disposition),
            chapters=tuple(self._container.chapters()),
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
                    yield from self._in_software_layout(packet.decode())
                except av.InvalidDataError as exc:
                    log.warning("%s: skipped a corrupt packet (%s)", self.path, _ffmpeg_reason(exc))
        except av.FFmpegError as exc:
            log.warning("%s: stopped reading at a damaged part (%s)", self.path, _ffmpeg_reason(exc))

    def _in_software_layout(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        """Frames as software decoding lays them out (:func:`in_software_layout`)."""
        if not self._on_device:
            return frames
        return [in_software_layout(frame, self.info.pix_fmt) for frame in frames]

    def _deinterlaced(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """libavfilter's yadif, one output frame per input frame."""
        graph = av.filter.Graph()
        # the stream's own format: a hardware decoder's context reports its device's ("cuda")
        source = graph.add_buffer(template=self._stream, format=av.VideoFormat(self.info.pix_fmt))
        yadif = graph.add("yadif", "mode=send_frame:deint=interlaced")
        sink = graph.add("buffersink")
        source.link_to(yadif)
        yadif.link_to(sink)
        graph.configure()
        for frame in [*frames, None]:
            graph.push(frame)
            while True:
                try:
                    yield graph.vpull()
                except (av.BlockingIOError, av.EOFError):
                    break

    def frames(self, deinterlace: bool = False) -> Iterator[tuple[Fraction, Frame]]:
        """Yield ``(time in seconds, float32 RGB frame)`` in presentation order."""
        for time, picture in self.pictures(deinterlace):
            yield time, picture.rgb()

    def pictures(self, deinterlace: bool = False) -> Iterator[tuple[Fraction, Picture]]:
        """Yield ``(time in seconds, picture)`` in presentation order: planar YUV as decoded,
        other formats converted to RGB by swscale.

        Times come from the frames' timestamps in the time base they carry (a filter such as
        yadif has its own); :func:`frame_times` fills in missing and repeated ones.
        """
        rgb = _rgb_format(self.info.bit_depth)
        frames = self._decoded()
        if deinterlace:
            frames = self._deinterlaced(frames)
        first = True
        for time, frame in frame_times(frames, self.info.time_base, self.info.rate, self.path):
            if first:
                first = False
                self.info = replace(self.info, rotation=int(frame.rotation or 0))
                if frame.interlaced_frame and not deinterlace:
                    log.warning("%s: the video is interlaced; --deinterlace gives cleaner results",
                                self.path)
            if colour.supports(frame.format.name):
                yield time, Picture(video=frame)
            else:
                array = frame.to_ndarray(format=rgb, src_colorspace=frame.colorspace or None,
                                         src_color_range=frame.color_range, dst_color_range=2)
                yield time, Picture(rgb=to_frame(array))

    def close(self) -> None:
        self._container.close()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            self._pipe.close()


#: Leading frames without a timestamp held back (decoded, so bounded) to go before the first timed one.
_UNTIMED_LEAD = 32
_MADE_UP_TIMES = ("%s: some frames have no timestamp or repeat one; each is placed one frame period "
                  "(1/%s s) after the previous")


def _best_effort_time(frame, stream_time_base: Fraction) -> Fraction | None:
    """The frame's time as ffmpeg's best_effort_timestamp guesses it: pts, else the packet's dts,
    in the frame's own time base where it has one (filters change it)."""
    stamp = frame.pts if frame.pts is not None else frame.dts
    if stamp is None:
        return None
    return Fraction(stamp) * Fraction(frame.time_base or stream_time_base)


#: what :func:`frame_times` times: decoded frames (tests use stand-ins with pts, dts, time_base)
Timed = TypeVar("Timed")


def frame_times(frames: Iterable[Timed], time_base: Fraction, rate: Fraction,
                path: str) -> Iterator[tuple[Fraction, Timed]]:
    """Pair every frame with a strictly increasing time; no frame is dropped.

    A frame without a timestamp, or with one not after its predecessor's (repeated, or going
    backwards), is placed one frame period (1/rate) after the previous frame, as ffmpeg does.
    Frames without one before the first timed frame (a stream cut by copying) are placed one
    period apart just before it.  One warning per file says how the times were made up.
    """
    step = 1 / rate
    lead: list[Timed] = []  # leading frames without a time, held until the first timed one
    last: Fraction | None = None
    warned = False
    for frame in frames:
        time = _best_effort_time(frame, time_base)
        if last is None and time is None and len(lead) < _UNTIMED_LEAD:
            lead.append(frame)
            continue
        if not warned and (lead or time is None or (last is not None and time <= last)):
            warned = True
            log.warning(_MADE_UP_TIMES, path, rate)
        if lead:  # just before this frame; from 0 if there are too many to hold or it has no time
            start = time - len(lead) * step if time is not None else Fraction(0)
            yield from ((start + index * step, held) for index, held in enumerate(lead))
            last, lead = start + (len(lead) - 1) * step, []
        if time is None or (last is not None and time <= last):
            time = last + step if last is not None else Fraction(0)
        last = time
        yield time, frame
    if lead:  # no frame had a time at all
        log.warning(_MADE_UP_TIMES, path, rate)
        yield from ((index * step, held) for index, held in enumerate(lead))


class ImageSequenceReader:
    """Reads ``frames/%06d.png`` style sequences, numbered from the smallest number present."""

    def __init__(self, pattern: str, fps: Fraction):
        self.path = pattern
        self.files = sequence_files(pattern)
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
        self.decoder = "images (OpenCV)"

    def frames(self, deinterlace: bool = False) -> Iterator[tuple[Fraction, Frame]]:
        for index, name in enumerate(self.files):
            image = cv2.imread(name, cv2.IMREAD_UNCHANGED)
            if image is None:
                raise MediaError(f"{name}: not an image")
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
            yield index * self.info.time_base, to_frame(image)

    def pictures(self, deinterlace: bool = False) -> Iterator[tuple[Fraction, Picture]]:
        for time, frame in self.frames(deinterlace):
            yield time, Picture(rgb=frame)

    def close(self) -> None:
        pass


def sequence_files(pattern: str) -> list[str]:
    """Files matching a printf pattern, sorted by their number."""
    match = re.search(r"%0?(\d*)d", pattern)
    if match is None:
        raise UsageError(f"{pattern}: not an image-sequence pattern such as out/%06d.png")
    head, tail = pattern[: match.start()], pattern[match.end():]
    numbered = []
    for name in glob.glob(glob.escape(head) + "*" + glob.escape(tail)):
        middle = name[len(head): len(name) - len(tail)]
        if middle.isdigit():
            numbered.append((int(middle), name))
    return [name for _, name in sorted(numbered)]


def open_input(path: str, fps: Fraction = Fraction(30), hwdec: str | None = None):
    """A reader for a video file (decoded on a device with ``hwdec``, see :class:`VideoReader`)
    or an image-sequence pattern."""
    return ImageSequenceReader(path, fps) if is_pattern(path) else VideoReader(path, hwdec)


def _ffmpeg_reason(exc: Exception) -> str:
    """Why libav failed in words: the message it logged where :func:`_libav_log` caught one (an
    error number alone says "Device or resource busy" for a picture size it refuses)."""
    logged = getattr(exc, "log", None)
    if logged and logged[2]:
        return logged[2].strip()
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


@contextlib.contextmanager
def _libav_log() -> Iterator[list]:
    """libav's warnings and errors while the block runs, as (level, source, text); its exceptions
    then carry the reason in words (``exc.log``).  libav says why only in its log."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as captured:
            yield captured
    finally:
        av.logging.set_level(level)


# --------------------------------------------------------------------------------------------
# hardware codecs
#
# PyAV's wheels carry FFmpeg's NVENC, NVDEC (CUDA), QSV and AMF codecs whatever the machine: a
# hardware encoder such as h264_nvenc is always known, and fails only when opened, for want of
# its driver or device ("Cannot load libcuda.so.1").  So each is probed once per run by opening
# it, and falls back to software with one warning.

#: The software encoder of each format, taking over from a hardware one that cannot run here.
SOFTWARE_ENCODERS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1", "vp9": "libvpx-vp9"}
#: How FFmpeg's hardware encoders end (h264_nvenc, hevc_vaapi, ...): told apart by name when this
#: FFmpeg lacks them.
_HARDWARE_BACKENDS = ("nvenc", "qsv", "amf", "vaapi", "videotoolbox", "v4l2m2m", "mediacodec", "vulkan",
                      "mf", "d3d12va")
_HARDWARE = av.codec.Capabilities.hardware | av.codec.Capabilities.hybrid
#: x264/x265 presets as NVENC's (p1 fastest .. p7 best); NVENC's own names pass as they are.
_NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
                  "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7"}
#: Hardware decoders ``hwdec="auto"`` tries, in order: NVDEC, then the platforms' own.
AUTO_HWDEC = ("cuda", "videotoolbox", "d3d11va", "vaapi")


def _software_twin(codec: str) -> str | None:
    """The software encoder of ``codec``'s format when ``codec`` is a hardware encoder (known to
    this FFmpeg and flagged as hardware, or named like one), else None."""
    try:
        known = av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        fmt, _, backend = codec.rpartition("_")
        return SOFTWARE_ENCODERS.get(fmt) if backend in _HARDWARE_BACKENDS else None
    return SOFTWARE_ENCODERS.get(known.canonical_name) if known.capabilities & _HARDWARE else None


def _libav_refusal(messages: list, exc: Exception) -> str:
    """Why libav refused, from its logged errors (the exception's error number says only
    "Operation not permitted"); a missing libcuda means no NVIDIA driver."""
    errors = [text.strip() for level, _, text in messages if level <= av.logging.ERROR and text.strip()]
    reason = errors[0] if errors else _ffmpeg_reason(exc)
    return f"no NVIDIA driver: {reason}" if "libcuda" in reason else reason


def _encoder_refusal(codec: str) -> str | None:
    """Why the encoder ``codec`` cannot run here, or None: a small context is opened, which is
    when a hardware encoder loads its driver and claims its device."""
    try:
        context = av.codec.CodecContext.create(codec, "w")
    except (av.FFmpegError, ValueError):
        return "not in this FFmpeg build"
    if not isinstance(context, av.VideoCodecContext):
        return None  # not a video encoder: refused as such where the output is opened
    formats = context.codec.video_formats or ()
    context.width, context.height = 256, 256  # above every hardware encoder's minimum size
    context.pix_fmt = formats[0].name if formats else "yuv420p"
    context.time_base, context.framerate = Fraction(1, 25), Fraction(25)
    try:
        with _libav_log() as messages:
            context.open()
    except (av.FFmpegError, ValueError) as exc:
        return _libav_refusal(messages, exc)
    return None


@functools.cache
def usable_encoder(codec: str) -> str:
    """``codec``; or, when it is a hardware encoder that this FFmpeg lacks or that cannot open
    here (no driver or device), the software encoder of the same format, with one warning per
    run.  Any other name is returned as it is, to be refused as unknown where it is opened."""
    fallback = _software_twin(codec)
    if fallback is None:
        return codec
    refusal = _encoder_refusal(codec)
    if refusal is None:
        return codec
    log.warning("%s is not available here (%s): encoding with %s", codec, refusal, fallback)
    return fallback


def nvenc_options(options: EncodeOptions) -> dict[str, str]:
    """crf and preset as NVENC takes them: constant quality ``cq`` (the same scale as x264's crf
    for H.264/HEVC, as SVT-AV1's for AV1) with no bitrate cap, x264's preset names as p1..p7; crf
    0 (lossless in x264) as NVENC's lossless tuning, since its cq 0 means "automatic"."""
    preset = _NVENC_PRESETS.get(options.preset, options.preset)
    if options.crf == 0:
        return {"tune": "lossless", "preset": preset}
    return {"rc": "vbr", "cq": str(options.crf), "b": "0", "preset": preset}


def _hwdec_devices(hwdec: str) -> list[tuple[str, str | None]]:
    """``(device type, device)`` to try for ``hwdec``: ``auto``, a type (``cuda``, ``vaapi``), or
    a type and device (``cuda:1``, ``vaapi:/dev/dri/renderD129``)."""
    if hwdec == "auto":
        built = av.codec.hwaccel.hwdevices_available()
        return [(kind, None) for kind in AUTO_HWDEC if kind in built]
    kind, _, device = hwdec.partition(":")
    if kind not in av.codec.hwaccel.HWDeviceType.__members__ or kind == "none":
        known = ", ".join(t for t in av.codec.hwaccel.HWDeviceType.__members__ if t != "none")
        raise UsageError(f"hardware decoding {hwdec!r}: not auto or a device type ({known})")
    return [(kind, device or None)]


@functools.cache
def _decoder_refusal(kind: str, device: str | None, codec: str) -> str | None:
    """Why ``kind`` cannot decode ``codec`` here, or None: the device is created as the decoder
    will create it (the driver is loaded then), once per run, not for every file and chunk."""
    if kind not in av.codec.hwaccel.hwdevices_available():
        return f"this FFmpeg has no {kind} devices"
    try:
        with _libav_log() as messages:
            av.codec.hwaccel.HWAccel(kind, device).create(av.codec.Codec(codec, "r"))
    except NotImplementedError:
        return f"no {kind} decoder for {codec}"
    except (av.FFmpegError, ValueError) as exc:
        return _libav_refusal(messages, exc)
    return None


def hardware_decoder(devices: list[tuple[str, str | None]], codec: str
                     ) -> tuple[av.codec.hwaccel.HWAccel | None, str]:
    """The first of ``devices`` (:func:`_hwdec_devices`) that decodes ``codec`` here, and its
    type; else None and why not (the first refusal)."""
    refusals = []
    for kind, device in devices:
        refusal = _decoder_refusal(kind, device, codec)
        if refusal is None:
            return av.codec.hwaccel.HWAccel(kind, device), kind
        refusals.append(refusal)
    return None, refusals[0] if refusals else "this FFmpeg has no hardware decoders"


@functools.cache
def _warn_once(message: str) -> None:
    """A warning said once per run: every file of a batch and every chunk of a long file would
    otherwise repeat the same missing driver."""
    log.warning(message)


def in_software_layout(frame: av.VideoFrame, pix_fmt: str) -> av.VideoFrame:
    """A frame downloaded from the decoder's device (NV12, P010) in the planar layout software
    decoding gives (``pix_fmt``): the same samples reshuffled, range kept, so everything after
    the decoder sees what it would have seen without the hardware."""
    if frame.format.name == pix_fmt:
        return frame
    return frame.reformat(format=pix_fmt, src_color_range=frame.color_range,
                          dst_color_range=frame.color_range)


@dataclass(frozen=True)
class EncodeOptions:
    codec: str | None = None  # None: see choose_codec
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str | None = None  # None: see choose_pix_fmt
    audio: bool = True
    encoder_opts: dict[str, str] | str | None = None  # encoder options, a dict or "k=v:k=v"


#: The encoder that makes the source's own format: its output plays where the source played.
_OWN_FORMAT_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9"}
#: Codec tags players need: Apple's players take HEVC in MP4/MOV only as hvc1 (ffmpeg writes hev1).
_CODEC_TAGS = {("hevc", "mp4"): "hvc1", ("hevc", "mov"): "hvc1", ("hevc", "ipod"): "hvc1"}


def choose_codec(info: VideoInfo, out, requested: str | None) -> str:
    """The encoder for a run: the requested one; else the source's own format when the container
    takes it (H.264 stays H.264, 10-bit HEVC stays 10-bit HEVC); else the container's default,
    which for sources deeper than 8 bits (ProRes, 10-bit DNxHR) is HEVC Main 10: 10-bit H.264
    (High 10) or 4:2:2 play in few players, HEVC Main 10 4:2:0 plays wherever HEVC does.  A
    hardware encoder that cannot run here gives way to software (:func:`usable_encoder`)."""
    if requested:
        return usable_encoder(requested)
    own = _OWN_FORMAT_ENCODERS.get(info.codec)
    if own and info.codec in out.supported_codecs and own in av.codecs_available:
        return own
    if out.format.name == "webm":
        return CONTAINER_CODECS[".webm"][0]
    if info.bit_depth > 8 and "hevc" in out.supported_codecs:
        return "libx265"
    return DEFAULT_CODECS[0]


def choose_pix_fmt(codec: str, info: VideoInfo, requested: str | None) -> str:
    """The requested pixel format; else the source's when the output keeps its format (it played
    there); else 4:2:0 (8 or 10 bits, as the source), the one layout every player decodes."""
    supported = [f.name for f in av.codec.Codec(codec, "w").video_formats or ()]
    if requested:
        if supported and requested not in supported:
            raise UsageError(f"{codec} cannot encode pixel format {requested!r} "
                             f"(it takes {', '.join(supported)})")
        return requested
    keeps_format = codec in (info.codec, _OWN_FORMAT_ENCODERS.get(info.codec)) and not info.is_sequence
    candidates = [info.pix_fmt] if keeps_format else []
    if info.bit_depth > 8:
        candidates += ["yuv420p10le", "p010le"]  # p010le: the same 10-bit 4:2:0 as NVENC takes it
    candidates.append("yuv420p")
    for name in candidates:
        if not supported or name in supported:
            return name
    return supported[0]


def even_size(pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """The frame size ``pix_fmt``'s chroma subsampling can hold: odd sides grow by one pixel."""
    planes = av.VideoFormat(pix_fmt, 2, 2).components
    chroma = planes[1] if len(planes) > 1 else planes[0]  # of a 2x2 frame: 1 where subsampled
    return width + width % (3 - chroma.width), height + height % (3 - chroma.height)


def encoder_options(codec: str, options: EncodeOptions) -> dict[str, str]:
    """Quality settings the encoder understands, then the user's ``encoder_opts``: for libx264 and
    libx265 those are x264/x265 parameters (as ffmpeg's ``-x264-params``), for others the
    encoder's own options."""
    user = parse_encoder_opts(options.encoder_opts)
    if codec in ("libx264", "libx265"):
        settings = {"crf": str(options.crf), "preset": options.preset}
        if user:
            settings[f"{codec[3:]}-params"] = ":".join(f"{k}={v}" for k, v in user.items())
        return settings
    if codec in ("libvpx-vp9", "libsvtav1", "libaom-av1"):
        return {"crf": str(options.crf), "b": "0", **user}
    if codec.endswith("_nvenc"):
        return {**nvenc_options(options), **user}
    return user


def parse_encoder_opts(opts: dict[str, str] | str | None) -> dict[str, str]:
    """``{"keyint": 60}`` or ``"keyint=60:bframes=3"`` as a dict of strings."""
    if not opts:
        return {}
    if isinstance(opts, dict):
        return {str(k): str(v) for k, v in opts.items()}
    pairs = {}
    for item in opts.split(":"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"encoder option {item!r} in {opts!r} is not key=value")
        pairs[key] = value
    return pairs


def encoder_frame(picture: Picture, pix_fmt: str, info: VideoInfo) -> av.VideoFrame:
    """A picture as the encoder gets it: padded to the size ``pix_fmt`` holds (:func:`even_size`),
    in ``pix_fmt`` with the source's matrix and range.  A decoded frame already in that format and
    size is the frame itself, not a copy: the encoder takes its own reference to the buffers, and
    :meth:`VideoWriter.write_converted` sets the timestamp of each write (a frame repeated at a cut
    or the end is written several times)."""
    width, height = even_size(pix_fmt, info.width, info.height)
    video = picture.video
    if video is not None and (video.format.name, video.width, video.height) == (pix_fmt, width, height):
        video.color_range = info.color_range
        return video
    frame = picture.rgb()
    pad_y, pad_x = height - frame.shape[0], width - frame.shape[1]
    if pad_y or pad_x:
        frame = np.pad(frame, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
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
    """The pixel format a :class:`VideoWriter` to ``dst`` hands its encoder: the codec is chosen
    for ``dst``'s container as the writer does.  An output container never started writes
    nothing, so the probe touches no file."""
    with av.open(f"slomo-probe{Path(dst).suffix}", "w") as out:
        return choose_pix_fmt(choose_codec(info, out, options.codec), info, options.pix_fmt)


class VideoWriter:
    """Encodes frames into a temporary file and moves it into place only when complete.

    ``target`` (:mod:`slomo.outputs`) says where, and lands the file safely.
    ``time_scale`` stretches every timestamp (slow motion): video frames arrive with times in
    source seconds, audio and subtitles are copied from ``source`` stretched the same way (audio
    re-timed with libavfilter's atempo so the pitch is kept).  Audio is muxed as the video
    advances, so memory stays bounded and the file is interleaved.
    """

    def __init__(self, target: Target, info: VideoInfo, rate: Fraction, time_base: Fraction,
                 options: EncodeOptions = EncodeOptions(), time_scale: Fraction = Fraction(1)):
        self.dst = target.path
        self._landing = target.land()
        self.info = info
        self.time_base = time_base * time_scale
        self.time_scale = time_scale
        audio_codec = CONTAINER_CODECS.get(self.dst.suffix.lower(), DEFAULT_CODECS)[1]
        try:
            self._out = av.open(str(self._landing.path), "w")
        except (av.FFmpegError, ValueError) as exc:
            self._landing.discard()
            raise MediaError(f"cannot write {self.dst.suffix or 'this'} files "
                             f"({_ffmpeg_reason(exc)})") from None
        try:
            self.encoder = codec = choose_codec(info, self._out, options.codec)
            self._video = self._add_video(codec, rate / time_scale, options)
            _carry_metadata(info, self._out, self._video, time_scale)
            self._side = _StreamCopier(info, self._out, audio_codec, time_scale, options.audio) if (
                info.side_streams and not info.is_sequence) else None
            self._start(codec, rate / time_scale)
        except Exception:
            self.abort()
            raise
        self._frames = 0

    def _add_video(self, codec: str, rate: Fraction, options: EncodeOptions):
        try:
            kind = av.codec.Codec(codec, "w").type
        except (av.FFmpegError, ValueError):
            raise UsageError(f"{self.dst}: unknown video encoder {codec!r}") from None
        if kind != "video":
            raise UsageError(f"{self.dst}: {codec!r} is an {kind} encoder, not a video one")
        stream = self._out.add_stream(codec, rate=_limit(rate))
        assert isinstance(stream, av.VideoStream)  # a video encoder, checked above
        info = self.info
        stream.pix_fmt = self._pix_fmt = choose_pix_fmt(codec, info, options.pix_fmt)
        stream.width, stream.height = even_size(self._pix_fmt, info.width, info.height)
        if (stream.width, stream.height) != (info.width, info.height):
            log.warning("%s: %dx%d padded to %dx%d (edge pixels repeated) for %s, which most players "
                        "need; ask for a 4:4:4 pixel format to keep the size", self.dst, info.width,
                        info.height, stream.width, stream.height, self._pix_fmt)
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        cc = stream.codec_context
        cc.color_range, cc.color_primaries = info.color_range, info.color_primaries
        cc.color_trc, cc.colorspace = info.color_trc, info.colorspace
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        tag = _CODEC_TAGS.get((cc.codec.canonical_name, self._out.format.name))
        if tag:
            cc.codec_tag = tag
        self._options = encoder_options(codec, options)
        stream.options = dict(self._options)  # PyAV copies them on opening the encoder anyway
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def _start(self, codec: str, rate: Fraction) -> None:
        """Open the encoders and write the header, so a refusal is told in words before any frame
        is made: the library's own messages, not an error number; an encoder option the encoder
        does not take or cannot parse is a usage error, not silently dropped.  Then check that
        the container's time unit can tell the output frames apart (Matroska and WebM count in
        milliseconds whatever is asked)."""
        try:
            with _libav_log() as messages:
                self._out.start_encoding()
        except (av.FFmpegError, ValueError) as exc:
            logged = getattr(exc, "log", None)
            who = logged[1] if logged and logged[1] else codec
            raise MediaError(f"{self.dst}: {who} refuses to start (video: {codec} {self._pix_fmt} "
                             f"{self._video.width}x{self._video.height} {self._options}): "
                             f"{_ffmpeg_reason(exc)}") from None
        unused = dict(self._video.codec_context.options or {})
        refused = [text.strip() for _, _, text in messages if "option" in text]
        refused += [f"no option {key}={value}" for key, value in unused.items()]
        if refused:
            raise UsageError(f"{self.dst}: {codec} encoder options {self._options}: "
                             f"{'; '.join(refused)}")
        unit = Fraction(self._video.time_base)
        if unit > 1 / rate:
            raise MediaError(f"{self.dst}: the {self._out.format.name} container keeps times in steps of "
                             f"{unit} s, too coarse for {float(rate):g} frames per second; "
                             "write .mp4 or .mov, or ask for a lower rate")

    def write(self, time: Fraction, picture: Picture) -> None:
        """Encode one picture shown at ``time`` (source seconds, before stretching)."""
        self.write_converted(time, encoder_frame(picture, self._pix_fmt, self.info))

    def write_converted(self, time: Fraction, vf: av.VideoFrame) -> None:
        """Encode a frame already as the encoder gets it (:func:`encoder_frame`), such as one
        read back from a chunk's lossless intermediate."""
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
        return self._landing.commit()

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._out.close()
        except Exception:  # the container may already be unusable; the file goes anyway
            pass
        self._landing.discard()


def _limit(rate: Fraction) -> Fraction:
    """A frame rate with a denominator encoders accept."""
    return rate.limit_denominator(1_000_000)


#: Audio copied as it is into these containers (by muxer name): what their players play.  The
#: muxers take more (PCM in MP4, opus in MOV fails late); anything else is re-encoded.
_PLAYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
            "pcm_f32le", "pcm_f32be"},
    "webm": {"opus", "vorbis"},
}
_PLAYABLE_AUDIO["ipod"] = _PLAYABLE_AUDIO["3gp"] = _PLAYABLE_AUDIO["mp4"]
#: The layouts an encoder takes, by channel count, where it takes only some (ffmpeg picks from the
#: encoder's list, which PyAV does not show): libopus's are Vorbis's.  Others keep the source's.
_ENCODER_LAYOUTS = {"libopus": {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1",
                                8: "7.1"}}
#: Stream tags that describe the source file's encoding, not the content: not carried over.
_ENCODING_TAGS = {"encoder", "duration", "number_of_frames", "number_of_bytes", "bps"}
#: Text subtitles converted for containers that only take their own text format.
_TEXT_SUBTITLES = {"subrip", "srt", "text"}


def plays_in(codec: str, out) -> bool:
    """Whether audio in ``codec`` can be copied into the output container as it is."""
    playable = _PLAYABLE_AUDIO.get(out.format.name)
    return codec in playable if playable is not None else codec in out.supported_codecs


def _content_tags(metadata: dict[str, str]) -> dict[str, str]:
    """Tags about the content (title, language, comment), without those about the old encoding."""
    return {k: v for k, v in metadata.items()
            if k.lower() not in _ENCODING_TAGS and not k.upper().startswith("_STATISTICS")}


def _copy_stream_tags(source, target) -> None:
    """Language, title and the default/forced flags, as ffmpeg keeps them."""
    target.metadata.update(_content_tags(source.metadata))
    target.disposition = source.disposition


def _carry_metadata(info: VideoInfo, out, video, time_scale: Fraction) -> None:
    """The container's title and global tags, the video stream's language and flags, and the
    chapters, stretched with slow motion so they stay with their scenes (as ffmpeg keeps them)."""
    out.metadata.update(info.tags)
    video.metadata.update(info.video_tags)
    video.disposition = info.video_disposition
    out.set_chapters([{**chapter, "start": round(chapter["start"] * time_scale),
                       "end": round(chapter["end"] * time_scale)} for chapter in info.chapters])


def _open_again(path: str):
    """A second reader of ``path`` for its audio and subtitles.  A pipe (``<(ffmpeg ...)``, a
    FIFO) can be read only once: opening it again would wait for a writer that never comes."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError as exc:
        raise MediaError(f"{path}: cannot open it again for its audio ({exc.strerror})") from None
    if not regular:
        raise MediaError(f"{path}: a pipe can be read only once, and its audio/subtitles need a "
                         "second read; save it to a file first")
    return av.open(path, metadata_errors="ignore")


class _StreamCopier:
    """Copies the source's audio and subtitle streams into the output (re-encoded or converted
    where the output container needs it), with their languages and flags."""

    def __init__(self, info: VideoInfo, out, audio_codec: str, time_scale: Fraction, audio: bool):
        self._src = _open_again(info.path)
        self._out = out
        self._scale = time_scale
        self._routes = {}
        for stream in self._src.streams:
            if stream.type == "audio" and audio:
                self._routes[stream.index] = self._audio_route(stream, audio_codec)
            elif stream.type == "subtitle":
                self._add_subtitles(stream, info.path)
            if stream.index in self._routes:
                _copy_stream_tags(stream, self._routes[stream.index][1])
        self._packets = self._src.demux([s for s in self._src.streams if s.index in self._routes])
        self._pending = None
        self._finished = not self._routes

    def _add_subtitles(self, stream, path: str) -> None:
        """Copy subtitles the container takes; convert text ones (SRT) to its own text format
        (mov_text in MP4/MOV) through libavcodec, as ffmpeg does; drop others with a warning."""
        name, out = stream.codec_context.name, self._out
        text_codec = "mov_text" if "mov_text" in out.supported_codecs else out.default_subtitle_codec
        if name in out.supported_codecs:
            target, kind = out.add_stream_from_template(stream), "copy"
        elif name in _TEXT_SUBTITLES and text_codec in out.supported_codecs:
            stream.codec_context.open()  # makes the ASS header the text encoder starts from
            target, kind = out.add_stream(text_codec), "text"
            target.codec_context.subtitle_header = stream.codec_context.subtitle_header
            target.time_base = stream.time_base
        else:
            log.warning("%s: %s subtitles cannot go into %s; dropped", path, name, out.format.name)
            return
        self._routes[stream.index] = (kind, target, None)

    def _audio_route(self, stream, audio_codec: str):
        """Copy audio the output container plays as it is; else re-encode it (slow motion always:
        its samples change), keeping the channel layout and the sample rate the encoder takes."""
        cc = stream.codec_context
        if self._scale == 1 and plays_in(cc.name, self._out):
            return ("copy", self._out.add_stream_from_template(stream), None)
        rate = cc.sample_rate or 48000
        rates = av.codec.Codec(audio_codec, "w").audio_rates
        if rates and rate not in rates:
            rate = min(rates, key=lambda r: (r < rate, abs(r - rate)))
        encoder = self._out.add_stream(audio_codec, rate=rate)
        encoder.layout = _ENCODER_LAYOUTS.get(audio_codec, {}).get(cc.layout.nb_channels, cc.layout)
        return ("encode", encoder, _TempoFilter(stream, self._scale, encoder))

    def mux_until(self, time: Fraction | None) -> None:
        """Mux source packets up to ``time`` (output seconds); all that remain when None."""
        if self._finished:
            return
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                break
            ahead = packet.pts is not None and time is not None and (
                Fraction(packet.pts) * packet.time_base * self._scale > time + 1)
            if ahead:
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
        if kind == "encode":
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                log.warning("skipped a corrupt audio packet")
                return
            for frame in frames:
                for out in tempo.push(frame):
                    self._encode(stream, out)
            return
        if packet.dts is None and packet.pts is None:
            return
        if kind == "text":
            source = packet
            packet = stream.codec_context.encode_subtitle(packet.stream.codec_context.decode2(packet))
            packet.pts, packet.dts, packet.duration = source.pts, source.dts, source.duration
            packet.time_base = source.time_base
        if self._scale != 1:  # slow motion: subtitles stay with their scenes
            packet.pts = round(packet.pts * self._scale) if packet.pts is not None else None
            packet.dts = round(packet.dts * self._scale) if packet.dts is not None else None
            packet.duration = round(packet.duration * self._scale)
        packet.stream = stream
        self._out.mux(packet)

    def _encode(self, stream, frame) -> None:
        for packet in stream.encode(frame):
            self._out.mux(packet)


class _TempoFilter:
    """Re-times audio for the encoder: every timestamp stretched by the slow-motion factor (so a
    track starting after the video stays as far behind it, scaled), the speed changed with atempo
    keeping the pitch and its lead undone (:func:`_atempo_lead`), and the samples converted to
    what the encoder takes.  With no stretch there is no tempo filter at all: atempo=1 still
    shifts and shortens the audio."""

    def __init__(self, source, stretch: Fraction, encoder):
        cc = source.codec_context
        filters = []
        if stretch != 1:
            lead = _atempo_lead(cc.sample_rate, stretch)
            filters += [("asetpts", f"PTS*{stretch.numerator}/{stretch.denominator}"),
                        *_atempo_filters(stretch), ("asetpts", f"PTS+{float(lead):.6f}/TB")]
        out_fmt = encoder.codec_context.codec.audio_formats[0].name
        conversion = (f"sample_fmts={out_fmt}:sample_rates={encoder.rate}:"
                      f"channel_layouts={encoder.layout.name}")
        filters.append(("aformat", conversion))
        self.graph = _audio_graph(cc.sample_rate, cc.format.name, cc.layout.name, source.time_base, filters)

    def push(self, frame) -> list:
        """Feed one frame (None flushes) and return the frames ready for the encoder."""
        return _drain(self.graph, frame)


def _audio_graph(sample_rate: int, fmt: str, layout: str, time_base: Fraction,
                 filters: list[tuple[str, str]]) -> av.filter.Graph:
    """A configured abuffer -> ``filters`` -> abuffersink graph."""
    graph = av.filter.Graph()
    chain = [graph.add_abuffer(sample_rate=sample_rate, format=fmt, layout=layout, time_base=time_base)]
    chain += [graph.add(name, args) for name, args in filters]
    chain.append(graph.add("abuffersink"))
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    return graph


def _drain(graph: av.filter.Graph, frame) -> list:
    """Push one frame (None: the end) and pull every frame the graph has ready."""
    graph.push(frame)
    out = []
    while True:
        try:
            out.append(graph.pull())
        except (av.BlockingIOError, av.EOFError):
            return out


def _atempo_filters(stretch: Fraction) -> list[tuple[str, str]]:
    return [("atempo", f"{factor:.10f}") for factor in _atempo_factors(1 / stretch)]


#: Tone bursts (start, length in s) that :func:`_atempo_lead` times; irregular, so that only the
#: true lag lines them all up.
_PROBE_BURSTS = ((0.10, 0.02), (0.33, 0.03), (0.47, 0.02), (0.80, 0.04), (1.05, 0.02), (1.50, 0.03))


@functools.cache
def _atempo_lead(sample_rate: int, stretch: Fraction) -> Fraction:
    """How early (s) atempo's output sounds against its own timestamps, for this slow-down.

    atempo labels its output from its first input time, but its first output starts about half
    a window (~20 ms) into the input, so everything after sounds that much early, stretched,
    and more again with each chained instance (some 35 ms at 2x, 90 ms at 4x).  Measured once
    per rate and factor on tone bursts sent through the same chain, to the millisecond.
    """
    time_base = Fraction(1, sample_rate)
    graph = _audio_graph(sample_rate, "flt", "mono", time_base, _atempo_filters(stretch))
    wave = _bursts(np.arange(2 * sample_rate) / sample_rate)
    heard = []
    for start in [*range(0, wave.size, 1024), None]:
        frame = None
        if start is not None:
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, time_base
        heard += [f.to_ndarray().reshape(-1) for f in _drain(graph, frame)]
    ms = sample_rate // 1000
    heard_ms = np.abs(_whole_ms(np.concatenate(heard), ms)).reshape(-1, ms).mean(axis=1) > 0.05
    ideal_ms = _burst_mask(np.arange(heard_ms.size) / 1000 / float(stretch))
    lags = np.arange(-200, 201)
    overlap = [np.count_nonzero(np.roll(ideal_ms, lag) & heard_ms) for lag in lags]
    return Fraction(-int(lags[int(np.argmax(overlap))]), 1000)


def _bursts(times: np.ndarray) -> np.ndarray:
    """The probe signal at ``times`` (s): 1 kHz tone bursts, silence between."""
    return (_burst_mask(times) * 0.5 * np.sin(2 * np.pi * 1000 * times)).astype(np.float32)


def _burst_mask(times: np.ndarray) -> np.ndarray:
    on = np.zeros(times.shape, bool)
    for start, length in _PROBE_BURSTS:
        on |= (times >= start) & (times < start + length)
    return on


def _whole_ms(samples: np.ndarray, ms: int) -> np.ndarray:
    return samples[: samples.size // ms * ms]


def _atempo_factors(tempo: Fraction) -> list[float]:
    """atempo takes 0.5..100 per instance: chain several for stronger slow-downs."""
    factors = []
    remaining = float(tempo)
    while remaining < 0.5:
        factors.append(0.5)
        remaining /= 0.5
    factors.append(remaining)
    return factors


class ImageSequenceWriter:
    """Writes lossless PNG frames numbered from 0 into a temporary folder; ``target``
    (:mod:`slomo.outputs`) moves them into place only once all are written."""

    def __init__(self, target: Target, info: VideoInfo):
        self._landing = target.land()
        self._bit_depth = 16 if info.bit_depth > 8 else 8
        self.encoder = "png (OpenCV)"
        self._frames = 0

    def write(self, time: Fraction, picture: Picture) -> None:
        path = str(self._landing.path) % self._frames
        image = cv2.cvtColor(from_frame(picture.rgb(), self._bit_depth), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(path, image):
            raise MediaError(f"cannot write {Path(path).name} in {self._landing.target.path.parent}")
        self._frames += 1

    def close(self) -> Path:
        return self._landing.commit()

    def abort(self) -> None:
        self._landing.discard()


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
        self._stream.width, self._stream.height = even_size(pix_fmt, info.width, info.height)
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
