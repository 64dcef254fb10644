"""Quality evaluation: rebuild frames that have ground truth and score them against it.

Sources (:func:`find_clips`):

- a video file (or a folder of videos): every ``factor``-th frame is kept, the frames in between
  are rebuilt from the kept ones and compared with the originals.  Frames after the last kept one
  have no later frame to interpolate towards and are not scored.
- a Middlebury ``other`` set: ``other-data/<seq>/frame10.png, frame11.png`` and the ground truth
  ``other-gt-interp/<seq>/frame10i11.png``.  Where ``frame09.png`` and ``frame12.png`` exist
  they are passed as context to models with a 4-frame window.
- Vimeo-90K triplets: ``<root>/sequences/<a>/<b>/im1.png, im2.png, im3.png`` (``im2`` is the
  ground truth), in the order of ``<root>/tri_testlist.txt`` when present.

Models are driven exactly as in a conversion: the kept frames go through
:func:`slomo.pipeline.schedule` with a :class:`~slomo.pipeline.FactorTimeline`, so windows,
replication at the ends and timesteps are the production ones.  A triplet is a 2-frame stream
at factor 2.  Scene detection is off: every pair is interpolated.

Metrics, on 8-bit RGB (model outputs are rounded to 8 bits as the encoder would):

- PSNR: per frame, ``10 log10(255^2 / MSE)`` with the MSE over all pixels and the three
  channels of the full frame; a clip's PSNR is the mean over its rebuilt frames (an exact match
  counts as 100 dB so means stay finite).
- SSIM: Wang et al. 2004 on luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (BT.601, in float, not
  rounded): 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``,
  the mean of the SSIM map over the positions where the window fits inside the frame (the
  reference implementation's ``'valid'`` filtering), without its automatic downsampling.
- IE (Middlebury only): Baker et al.'s interpolation error, the root mean square over pixels of
  the L2 norm of the RGB difference: ``sqrt(mean_xy(dR^2 + dG^2 + dB^2))`` on 8-bit values.
- frames: rebuilt frames scored; seconds: wall time spent inside the model's ``interpolate``.

Overall numbers average over all rebuilt frames of all clips (each frame counts once).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from . import interpolator, io, outputs, pipeline
from .errors import MediaError, UsageError, WeightsError
from .frames import Picture, from_frame, to_frame

PSNR_CAP = 100.0
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


# --------------------------------------------------------------------------------------------
# metrics (8-bit RGB uint8 arrays)


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """A float frame in [0, 1] rounded to 8 bits as the encoder rounds it."""
    return frame if frame.dtype == np.uint8 else from_frame(frame)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two 8-bit images over all pixels and channels; 100 for identical ones."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0 ** 2 / mse))


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an 8-bit RGB image, float64, unrounded."""
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) of two 8-bit RGB images on their luma; see the module docstring."""
    x, y = luma(a), luma(b)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2

    def blur(img):  # valid positions only: crop the half window that saw the border
        r = SSIM_WINDOW // 2
        return cv2.GaussianBlur(img, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA)[r:-r, r:-r]

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(ssim_map.mean())


def interpolation_error(a: np.ndarray, b: np.ndarray) -> float:
    """Middlebury IE: RMS over pixels of the RGB difference vector's L2 norm (8-bit values)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.sqrt(np.mean(np.sum(diff * diff, axis=-1))))


# --------------------------------------------------------------------------------------------
# sources


@dataclass
class Clip:
    """A stream of frames at the full rate: every ``factor``-th is an input, the others are
    ground truth (``None`` where there is none).  ``times`` gives input timestamps."""

    name: str
    factor: int
    frames: Callable[[], Iterator[tuple[Fraction, np.ndarray | None]]]
    kind: str = "video"  # "video", "middlebury", "vimeo"


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"{path}: not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _image_clip(name: str, kind: str, paths: Sequence[Path | None]) -> Clip:
    """A clip at factor 2 from image files at full rate: inputs at even positions."""

    def frames():
        for i, path in enumerate(paths):
            if path is None:
                yield Fraction(i, 2), None
            else:
                image = _read_png(path)
                yield Fraction(i, 2), image if i % 2 else to_frame(image)

    return Clip(name, 2, frames, kind)


def _video_clip(path: Path, factor: int, limit: int | None) -> Clip:
    def frames():
        reader = io.open_input(str(path))
        try:
            # enough kept pairs for ``limit`` rebuilt frames: (factor - 1) per pair
            last_needed = None if limit is None else -(-limit // (factor - 1)) * factor
            for index, (t, frame) in enumerate(reader.frames()):
                if last_needed is not None and index > last_needed:
                    break
                yield t, frame if index % factor == 0 else to_uint8(frame)
        finally:
            reader.close()

    try:
        io.open_input(str(path)).close()
    except io.MediaError as exc:
        raise MediaError(f"{path}: {exc}") from None
    return Clip(path.name, factor, frames, "video")


def _middlebury_root(path: Path) -> Path | None:
    for root in (path, path.parent):
        if (root / "other-data").is_dir() and (root / "other-gt-interp").is_dir():
            return root
    return None


def _middlebury(root: Path, limit: int | None) -> list[Clip]:
    clips = []
    for gt in sorted((root / "other-gt-interp").glob("*/frame10i11.png")):
        seq = gt.parent.name
        data = root / "other-data" / seq
        f10, f11 = data / "frame10.png", data / "frame11.png"
        if not (f10.is_file() and f11.is_file()):
            raise MediaError(f"{data}: frame10.png or frame11.png missing")
        f09, f12 = data / "frame09.png", data / "frame12.png"
        if f09.is_file() and f12.is_file():
            paths = [f09, None, f10, gt, f11, None, f12]
        else:
            paths = [f10, gt, f11]
        clips.append(_image_clip(seq, "middlebury", paths))
    if not clips:
        raise MediaError(f"{root}: no other-gt-interp/<seq>/frame10i11.png")
    return clips[:limit]


def _vimeo(root: Path, limit: int | None) -> list[Clip]:
    listing = root / "tri_testlist.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(f"{p.parent.name}/{p.name}" for p in (root / "sequences").glob("*/*")
                       if p.is_dir())
    if limit is not None:
        names = names[:limit]
    clips = []
    for name in names:
        folder = root / "sequences" / name
        paths = [folder / f"im{i}.png" for i in (1, 2, 3)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise MediaError(f"{folder}: missing {', '.join(missing)}")
        clips.append(_image_clip(name, "vimeo", paths))
    if not clips:
        raise MediaError(f"{root}: no triplets under sequences/")
    return clips


def find_clips(source: str | Path, factor: int = 2, limit: int | None = None) -> list[Clip]:
    """The clips of a video, a folder of videos, a Middlebury or a Vimeo-90K folder."""
    path = Path(source)
    if factor < 2:
        raise UsageError(f"{path}: --factor must be at least 2")
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder")
    if path.is_file():
        return [_video_clip(path, factor, limit)]
    root = _middlebury_root(path)
    if root is not None:
        return _middlebury(root, limit)
    if (path / "sequences").is_dir():
        return _vimeo(path, limit)
    from .outputs import find_videos

    videos = find_videos(path)
    if not videos:
        raise MediaError(f"{path}: no videos, Middlebury other-data/other-gt-interp, "
                        "or Vimeo-90K sequences/ here")
    return [_video_clip(v, factor, limit) for v in videos]


# --------------------------------------------------------------------------------------------
# running


@dataclass
class Scored:
    """One rebuilt frame."""

    clip: str
    index: int  # position in the clip's full-rate stream
    psnr: float
    ssim: float
    ie: float | None = None


@dataclass
class Result:
    """A model on one clip (or overall)."""

    model: str
    clip: str
    kind: str
    frames: list[Scored] = field(default_factory=list)
    seconds: float = 0.0

    def record(self) -> dict:
        n = len(self.frames)
        rec = {"model": self.model, "clip": self.clip,
               "psnr": round(float(np.mean([f.psnr for f in self.frames])), 6) if n else None,
               "ssim": round(float(np.mean([f.ssim for f in self.frames])), 6) if n else None,
               "frames": n, "seconds": round(self.seconds, 3)}
        if self.kind == "middlebury":
            rec["ie"] = round(float(np.mean([f.ie for f in self.frames])), 6) if n else None
        return rec


class _Timed(interpolator.Interpolator):
    """Forwards to a model, adding up the time spent in it."""

    def __init__(self, inner: interpolator.Interpolator):
        self.inner, self.spec, self.seconds = inner, inner.spec, 0.0

    def interpolate(self, window, times):
        started = time.perf_counter()
        try:
            return self.inner.interpolate(window, times)
        finally:
            self.seconds += time.perf_counter() - started

    def reset(self):
        self.inner.reset()


@dataclass
class Worst:
    """Keeps the ``k`` worst frames (lowest PSNR) with their images, for ``--save-diff``."""

    k: int
    heap: list = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)

    def offer(self, scored: Scored, truth: np.ndarray, output: np.ndarray) -> None:
        item = (-scored.psnr, next(self.counter), scored, truth, output)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
        elif item[0] > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)

    def frames(self) -> list[tuple[Scored, np.ndarray, np.ndarray]]:
        return [(s, t, o) for _, _, s, t, o in sorted(self.heap, key=lambda i: -i[0])]


def evaluate_clip(model: interpolator.Interpolator, clip: Clip, limit: int | None = None,
                  worst: Worst | None = None) -> Result:
    """Rebuild and score the ground-truth frames of one clip."""
    timed = _Timed(model)
    model.reset()
    truth: dict[int, np.ndarray] = {}
    inputs: list[int] = []
    size: list[tuple] = []

    def kept() -> Iterator[tuple[Fraction, Picture]]:
        for index, (t, frame) in enumerate(clip.frames()):
            if index % clip.factor == 0:
                if frame is None:
                    raise MediaError(f"{clip.name}: input frame {index} missing")
                if size and frame.shape != size[0]:
                    raise MediaError(f"{clip.name}: frame {index} is {frame.shape[1]}x"
                                    f"{frame.shape[0]}, not {size[0][1]}x{size[0][0]}")
                size.append(frame.shape)
                inputs.append(index)
                yield t, Picture(rgb=frame)
            elif frame is not None:
                truth[index] = frame

    result = Result(model.spec.name, clip.name, clip.kind)
    outputs = pipeline.schedule(kept(), timed, pipeline.FactorTimeline(clip.factor),
                                lambda t: Fraction(1, 25))
    for index, (_, frame) in enumerate(outputs):
        if index % clip.factor == 0:
            continue
        gt = truth.pop(index, None)
        if gt is None or index > inputs[-1]:
            continue  # nothing to compare with, or past the last kept frame (a repeat)
        if limit is not None and clip.kind == "video" and len(result.frames) >= limit:
            break
        out = to_uint8(frame.rgb())
        if out.shape != gt.shape:
            raise MediaError(f"{clip.name}: ground truth is {gt.shape[1]}x{gt.shape[0]}, "
                            f"output {out.shape[1]}x{out.shape[0]}")
        scored = Scored(clip.name, index, psnr(out, gt), ssim(out, gt),
                        interpolation_error(out, gt) if clip.kind == "middlebury" else None)
        result.frames.append(scored)
        if worst is not None:
            worst.offer(scored, gt, out)
    result.seconds = timed.seconds
    if not inputs:
        raise MediaError(f"{clip.name}: no frames could be read")
    return result


def load_model(name: str, factor: int, device: str = "auto", scale: float = 1.0,
               weights: str | Path | None = None) -> interpolator.Interpolator:
    """A model as ``slomo convert`` would build it, checked against the factor by its spec."""
    spec = interpolator.get_spec(name, kind="interpolate")
    options = interpolator.ModelOptions(device=device, weights=Path(weights) if weights else None,
                                        scale=scale, factor=factor)
    if spec.own_factor(options) not in (None, factor):  # alone, without the model that follows it
        raise UsageError(f"model {spec.name} alone makes {spec.factors[-1]}x, not {factor}x")
    return interpolator.create(spec, options)


def overall(model: str, results: Sequence[Result]) -> Result:
    kinds = {r.kind for r in results}
    total = Result(model, "overall", kinds.pop() if len(kinds) == 1 else "mixed")
    for r in results:
        total.frames += r.frames
        total.seconds += r.seconds
    return total


# --------------------------------------------------------------------------------------------
# outputs


def plot(per_model: dict[str, list[Result]], path: Path, protect: Sequence[str | Path] = ()) -> Path:
    """PSNR per rebuilt frame, one line per model (needs matplotlib); never onto ``protect``
    (the source), and in place only once written (:func:`slomo.outputs.write_file`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MediaError(f"{path}: --plot needs matplotlib (pip install 'slomo[plot]')") from None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    boundaries: list[float] = []
    single = all(len(results) == 1 for results in per_model.values())
    for model, results in per_model.items():
        values = [f.psnr for r in results for f in r.frames]
        x = [f.index for f in results[0].frames] if single else range(len(values))
        ax.plot(x, values, label=model, linewidth=1, marker="." if len(values) < 80 else None)
        if not boundaries:
            n = 0
            for r in results[:-1]:
                n += len(r.frames)
                boundaries.append(n - 0.5)
    for b in boundaries[:50]:
        ax.axvline(b, color="0.85", linewidth=0.5)
    ax.set_xlabel(f"frame of {next(iter(per_model.values()))[0].clip}" if single
                  else "rebuilt frame (clips one after another)")
    ax.set_ylabel("PSNR (dB)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return outputs.write_file(path, lambda partial: fig.savefig(partial, dpi=120), protect)
    finally:
        plt.close(fig)


def save_diffs(model: str, worst: Worst, folder: Path, amplify: float = 4.0,
               protect: Sequence[str | Path] = ()) -> list[Path]:
    """Ground truth | output | error (amplified, colour-mapped) side by side, worst frames;
    never onto ``protect`` (the source), each in place only once written."""
    written = []
    for rank, (scored, truth, output) in enumerate(worst.frames(), 1):
        error = np.abs(truth.astype(np.int16) - output.astype(np.int16)).mean(axis=-1)
        heat = cv2.applyColorMap(np.clip(error * amplify, 0, 255).astype(np.uint8),
                                 cv2.COLORMAP_JET)
        panel = np.concatenate([cv2.cvtColor(truth, cv2.COLOR_RGB2BGR),
                                cv2.cvtColor(output, cv2.COLOR_RGB2BGR), heat], axis=1)
        w = truth.shape[1]
        scale = max(0.4, truth.shape[0] / 720)
        for i, label in enumerate(("ground truth", f"{model} {scored.psnr:.2f} dB",
                                   f"|error| x{amplify:g}")):
            cv2.putText(panel, label, (i * w + 8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX,
                        0.7 * scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        clip = scored.clip.replace("/", "_")
        name = folder / f"{model}.{rank:02d}.{clip}.{scored.index:05d}.png"
        write = functools.partial(_write_image, image=panel, name=name)
        written.append(outputs.write_file(name, write, protect))
    return written


def _write_image(path: Path, image: np.ndarray, name: Path) -> None:
    """cv2.imwrite says only True or False: a False is an error, not a missing file later."""
    if not cv2.imwrite(str(path), image):
        raise MediaError(f"{name}: cannot write this image")


def run(source: str | Path, models: Sequence[str], factor: int = 2, limit: int | None = None,
        device: str = "auto", scale: float = 1.0, weights: str | Path | None = None,
        worst_k: int = 0, on_clip: Callable[[Result], None] | None = None
        ) -> tuple[dict[str, list[Result]], dict[str, Worst | None]]:
    """Evaluate ``models`` on ``source``: per-model lists of per-clip results, and worst frames."""
    for name in models:  # unknown names fail before any work
        try:
            interpolator.get_spec(name, kind="interpolate")
        except UsageError as exc:
            raise UsageError(f"{source}: {exc}") from None
    clips = find_clips(source, factor, limit)
    if weights and sum(bool(interpolator.get_spec(m).checkpoints) for m in models) > 1:
        raise UsageError(f"{weights}: --weights is ambiguous with several models that "
                         "load weights")
    per_model: dict[str, list[Result]] = {}
    worst: dict[str, Worst | None] = {}
    for name in models:
        clip_factor = clips[0].factor
        try:
            model = load_model(name, clip_factor, device, scale, weights)
        except UsageError as exc:
            raise UsageError(f"{source}: {exc}") from None
        except WeightsError as exc:
            raise WeightsError(f"{name}: {exc}") from None
        key = model.spec.name
        per_model[key] = []
        worst[key] = Worst(worst_k) if worst_k else None
        for clip in clips:
            result = evaluate_clip(model, clip, limit, worst[key])
            per_model[key].append(result)
            if on_clip:
                on_clip(result)
    return per_model, worst


def records(per_model: dict[str, list[Result]]) -> list[dict]:
    """Per clip and overall records, model by model."""
    out = []
    for model, results in per_model.items():
        out += [r.record() for r in results]
        if len(results) > 1:
            out.append(overall(model, results).record())
    return out


# --------------------------------------------------------------------------------------------
# upscaling quality: downscale real frames, upscale them back, compare with the originals

#: the plain resizes an upscaler must beat, as OpenCV implements them
UPSCALE_BASELINES = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


@dataclass
class UpscaleResult:
    """Mean PSNR/SSIM of one method on one clip's frames, and the seconds it spent upscaling."""

    method: str
    clip: str
    frames: int
    psnr: float
    ssim: float
    seconds: float


def upscale_pairs(path: Path, scale: int, count: int, crop: tuple[int, int] | None = None
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (low, original) pairs spread over a video: the original frame (8-bit, centre
    ``crop`` = (width, height) when given, trimmed to a multiple of ``scale``) and its area-filtered
    downscale by ``scale``, rounded to 8 bits as a decoded low-resolution video would be."""
    reader = io.open_input(str(path))
    step = max(1, (reader.info.frames or count) // count)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        for index, (_, frame) in enumerate(reader.frames()):
            if index % step or len(pairs) == count:
                continue
            original = to_uint8(frame)
            height, width = original.shape[:2]
            crop_w, crop_h = crop or (width, height)
            crop_w, crop_h = min(crop_w, width) // scale * scale, min(crop_h, height) // scale * scale
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            original = original[top:top + crop_h, left:left + crop_w]
            low = cv2.resize(original, (crop_w // scale, crop_h // scale), interpolation=cv2.INTER_AREA)
            pairs.append((to_frame(low), original))
    finally:
        reader.close()
    return pairs


def baseline_upscaler(name: str, scale: int) -> Callable[[np.ndarray], np.ndarray]:
    """A plain OpenCV resize by ``scale`` (see :data:`UPSCALE_BASELINES`) as an upscaler."""
    flag = UPSCALE_BASELINES[name]

    def upscale(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (frame.shape[1] * scale, frame.shape[0] * scale), interpolation=flag)

    return upscale


def evaluate_upscaling(method: str, upscale: Callable[[np.ndarray], np.ndarray], clip: str,
                       pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> UpscaleResult:
    """Score ``upscale`` (float RGB in [0, 1] -> float RGB ``scale`` times larger) on the pairs."""
    psnrs, ssims, seconds = [], [], 0.0
    for low, original in pairs:
        start = time.perf_counter()
        rebuilt = to_uint8(np.clip(upscale(low), 0.0, 1.0))
        seconds += time.perf_counter() - start
        psnrs.append(psnr(rebuilt, original))
        ssims.append(ssim(rebuilt, original))
    return UpscaleResult(method, clip, len(pairs), float(np.mean(psnrs)), float(np.mean(ssims)), seconds)


def _upscaler(name: str, scale: int, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """A baseline resize or a registered upscaling model, as a function of one frame."""
    if name in UPSCALE_BASELINES:
        return baseline_upscaler(name, scale)
    spec = interpolator.get_spec(name, kind="upscale")
    model = interpolator.create(spec, interpolator.ModelOptions(device=device, factor=scale))
    return lambda frame: model.interpolate([frame], [0.0])[0]


def run_upscaling(source: str | Path, methods: Sequence[str], scale: int = 2, limit: int | None = None,
                  device: str = "auto", crop: tuple[int, int] | None = None) -> list[UpscaleResult]:
    """Score upscalers (and the plain resizes of :data:`UPSCALE_BASELINES`) on a video or a folder
    of videos: ``limit`` frames of each (default 4), shrunk ``scale`` times and upscaled back."""

    path = Path(source)
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder")
    videos = [path] if path.is_file() else outputs.find_videos(path)
    if not videos:
        raise MediaError(f"{path}: no videos here")
    upscalers = {name: _upscaler(name, scale, device) for name in methods}  # unknown names fail first
    results = []
    for video in videos:
        pairs = upscale_pairs(video, scale, limit or 4, crop)
        results += [evaluate_upscaling(name, upscale, video.name, pairs)
                    for name, upscale in upscalers.items()]
    return results
