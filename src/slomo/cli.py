"""The ``slomo`` command: parses arguments, calls :mod:`slomo.api`, reports.  Nothing else.

Exit status: 0 all inputs converted; 1 at least one failed; 2 usage error.  Errors are one line on
stderr, ``slomo: error: <file>: <reason>``, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import click

from . import __version__
from .errors import SlomoError, UsageError

COMMANDS = ("models", "weights", "eval", "bench")


def _fail(message: str, code: int) -> None:
    click.echo(f"slomo: error: {message}", err=True)
    sys.exit(code)


def _exit_at_once(signum, frame) -> None:
    """Leave without unwinding: while torch is imported nothing is written yet, and a
    KeyboardInterrupt raised inside its C++ initialisers can abort the process (``terminate``)."""
    os.write(2, b"slomo: error: interrupted\n")
    os._exit(128 + signum)


def _import_torch() -> None:
    """Import torch with Ctrl-C and SIGTERM exiting at once (see :func:`_exit_at_once`); the
    commands that run models call this first, the others (``--help``, ``models``, ``weights
    list``) never pay for torch."""
    handlers = {sig: signal.signal(sig, _exit_at_once) for sig in (signal.SIGINT, signal.SIGTERM)}
    import torch  # noqa: F401

    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _runs_a_network(model: str | None) -> bool:
    """Whether the model is a network with weights (torch): blend, flow and ffmpeg-mci runs never
    import torch, which costs a second of start-up and hundreds of MB.  A name that is not a model
    counts as one, to be refused where the run starts."""
    from . import interpolator

    try:
        return bool(interpolator.get_spec(model or interpolator.DEFAULT_MODEL).checkpoints)
    except SlomoError:
        return True


class _ConvertByDefault(click.Group):
    """``slomo INPUT ...`` runs convert; ``slomo models`` etc. run the named command."""

    def invoke(self, ctx):
        """Run the command; an interrupt ends it with status 130 and one line."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["convert", *args]
        elif not args:
            args = ["--help"]
        return super().parse_args(ctx, args)

    def main(self, *args, **kwargs):
        """click's own usage errors as the contract's one line, ``slomo: error: <reason>``, status 2."""
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            _fail(exc.format_message(), 2)
        except click.Abort:
            _fail("interrupted", 130)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=_ConvertByDefault, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slomo")
def main():
    """Smoother or slower video by synthesizing the frames in between.

    \b
    slomo INPUT [INPUT ...] [OPTIONS]   convert videos, folders or image sequences
    slomo models                        the interpolators and their weights
    slomo weights list|fetch|import     manage checkpoints
    slomo eval / slomo bench            quality and speed measurements
    """


def _progress_reporter(quiet: bool, json_out: bool):
    """A rich progress bar on a terminal; nothing otherwise (a line per file is printed after)."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:.1f} frames/s"), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)


@main.command("convert", context_settings={"ignore_unknown_options": False})
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file, folder, or image pattern out/%06d.png.")
@click.option("-f", "--factor", type=int, default=None, help="N times the frames (default 2).")
@click.option("--fps", help="Target output frame rate (60, 59.94, 60000/1001).")
@click.option("--slowmo", is_flag=True, help="Keep the input frame rate: play N times slower.")
@click.option("-m", "--model", default=None, help="Interpolator (slomo models lists them).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Checkpoint file to use.")
@click.option("--deblur", is_flag=True, help="Joint deblurring and interpolation (BIN).")
@click.option("--scale", type=click.FloatRange(0.25, 1.0), default=1.0, show_default=True,
              help="Compute motion at this fraction of the resolution (0.5 suits 4K).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
              show_default=True, help="Model arithmetic (bf16 on CPU/CUDA, fp16 on CUDA).")
@click.option("--upscale", type=int, default=None, help="Also enlarge every frame N times.")
@click.option("--upscale-model", default=None, help="Upscaler (default: the first that makes N).")
@click.option("--codec", default=None,
              help="Video encoder (default: the source's own format where the container takes it, "
                   "else libx264; VP9 for .webm; HEVC Main 10 for other sources over 8 bits); "
                   "h264_nvenc/hevc_nvenc/av1_nvenc fall back to x264/x265/SVT-AV1 without a GPU.")
@click.option("--crf", type=int, default=18, show_default=True)
@click.option("--preset", default="medium", show_default=True)
@click.option("--pix-fmt", default=None, help="Output pixel format (default: the source's).")
@click.option("--encoder-opts", default=None, help="Encoder options k=v:k=v (x264/x265 params).")
@click.option("--hwdec", flag_value="auto", default=None,
              help="Decode on the GPU (NVDEC) where there is one; else in software, with a warning.")
@click.option("--no-audio", is_flag=True, help="Drop audio.")
@click.option("--scene-threshold", type=click.FloatRange(0.0, 2.0), default=0.3, show_default=True,
              help="Cut score above which frames belong to different shots.")
@click.option("--no-scene-detect", is_flag=True, help="Interpolate across scene cuts too.")
@click.option("--dedup", is_flag=True, help="Drop repeated frames (animation on twos) first.")
@click.option("--max-fps", default=None, help="Cap the output frame rate.")
@click.option("--deinterlace", is_flag=True, help="Deinterlace (yadif) before interpolating.")
@click.option("--input-fps", default="30", show_default=True, help="Rate of image-sequence input.")
@click.option("-r", "--recursive", is_flag=True, help="Recurse into folders.")
@click.option("--chunk-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Split inputs at keyframes into chunks of about S seconds, joined seamlessly.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Chunks converted at once on this machine (processes).")
@click.option("--resume", is_flag=True, help="Reuse the finished chunks of an interrupted run.")
@click.option("--ray", default=None, metavar="ADDRESS",
              help="Run on a Ray cluster: host:port, ray://host:10001, auto (RAY_ADDRESS) or local.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output (never the input).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "json_out", is_flag=True, help="A JSON summary on stdout.")
@click.option("--debug", is_flag=True, help="Tracebacks on errors.")
def convert_command(inputs, output, factor, fps, model, deblur, no_audio, no_scene_detect,
                    recursive, quiet, json_out, debug, **settings):
    """Convert videos, folders of videos or image sequences."""
    from . import interpolator

    if deblur or settings.get("upscale") or _runs_a_network(model):
        _import_torch()
    from . import api

    logging.basicConfig(format="slomo: warning: %(message)s", level=logging.WARNING)
    if deblur:
        deblurring = interpolator.get_spec("deblur")
        if model is not None and interpolator.get_spec(model) is not deblurring:
            _fail(f"{model}: deblurring uses its own model, {deblurring.name}; give one of the two", 2)
        model = deblurring.name
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    progress = _progress_reporter(quiet, json_out)

    def on_start(src: str):
        if not progress:
            return None
        task = progress.add_task(Path(src).name, total=None, rate=0.0)
        tasks[src] = task

        def on_progress(done, total):
            elapsed = progress.tasks[task].elapsed or 0
            progress.update(task, completed=done, total=total or None,
                            rate=done / elapsed if elapsed else 0.0)
        return on_progress

    def on_done(src: str, outcome) -> None:
        if src in tasks:
            progress.remove_task(tasks.pop(src))
        if isinstance(outcome, BaseException):
            if debug:
                traceback.print_exception(outcome)
            reason = str(outcome).splitlines()[0] if str(outcome) else outcome.__class__.__name__
            click.echo(f"slomo: error: {src}: {reason}", err=True)
        elif not quiet and not json_out:
            click.echo(f"{outcome.input} -> {outcome.output}: {outcome.frames_in} -> "
                       f"{outcome.frames_out} frames, {outcome.output_fps:g} fps, "
                       f"{outcome.seconds:.1f} s ({outcome.speed:.1f} frames/s)", err=True)

    tasks: dict[str, int] = {}
    if progress:
        progress.start()
    try:
        batch = api.convert_many(inputs, output, recursive=recursive, on_start=on_start, on_done=on_done,
                                 factor=factor, fps=fps,
                                 model=interpolator.DEFAULT_MODEL if model is None else model,
                                 audio=not no_audio, scene_detect=not no_scene_detect, **settings)
    except UsageError as exc:  # the request itself, whatever the input
        if debug:
            traceback.print_exc()
        _fail(f"{inputs[0]}: {exc}" if len(inputs) == 1 else str(exc), 2)
    except KeyboardInterrupt:
        _fail("interrupted; no partial output was left", 130)
    finally:
        if progress:
            progress.stop()

    failures = [{"input": f.input, "error": f.error} for f in batch.failed]
    if json_out:
        click.echo(json.dumps({"converted": [r.to_dict() for r in batch.converted], "failed": failures},
                              indent=2))
    elif len(batch.converted) + len(batch.failed) > 1 and not quiet:
        _batch_table(batch.converted, failures)
    single = len(batch.converted) + len(batch.failed) == 1
    sys.exit(2 if single and batch.failed and batch.failed[0].usage else 1 if batch.failed else 0)


def _batch_table(results, failures) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(results)} converted, {len(failures)} failed")
    for column in ("input", "result", "frames", "seconds"):
        table.add_column(column)
    for r in results:
        table.add_row(r.input, r.output, f"{r.frames_in} -> {r.frames_out}", f"{r.seconds:.1f}")
    for f in failures:
        table.add_row(f["input"], f"[red]failed: {f['error']}[/red]", "", "")
    Console(stderr=True).print(table)


@main.command("models")
def models_command():
    """The interpolators, what each needs, which weights are installed."""
    from rich.console import Console
    from rich.table import Table

    from . import interpolator, weights

    table = Table()
    for column in ("model", "window", "timesteps", "weights", "about", "from"):
        table.add_column(column)
    for spec in interpolator.available():
        if spec.weights:
            status = ", ".join(f"{w} ({'installed' if weights.installed(w) else 'missing'})"
                               for w in spec.weights)
        else:
            status = "none needed"
        steps = {"any": "any t", "midpoint": "t=0.5 (bisection)",
                 "fixed": "x" + "/".join(map(str, spec.factors))}[spec.timesteps]
        table.add_row(spec.name, str(spec.window), steps, status, spec.summary, interpolator.source(spec))
    Console().print(table)


@main.group("weights")
def weights_group():
    """Known checkpoints: list, fetch, import."""


@weights_group.command("list")
@click.option("--json", "json_out", is_flag=True)
def weights_list(json_out):
    """Known checkpoints: name, size, sha256, installed where."""
    from rich.console import Console
    from rich.table import Table

    from . import weights

    rows = []
    for e in weights.entries().values():
        where = weights.installed(e.name)
        rows.append({"name": e.name, "model": e.model, "size": e.size, "sha256": e.sha256,
                     "license": e.license, "installed": str(where) if where else None})
    if json_out:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("name", "model", "size", "sha256", "license", "installed"):
        table.add_column(column)
    for r in rows:
        size = f"{r['size'] / 1e6:.1f} MB" if r["size"] else "?"
        table.add_row(r["name"], r["model"], size, (r["sha256"] or "?")[:16], r["license"],
                      r["installed"] or "-")
    Console().print(table)


@weights_group.command("fetch")
@click.argument("name")
def weights_fetch(name):
    """Download and verify (sha256) a checkpoint."""
    from . import weights

    try:
        click.echo(f"{name}: {weights.fetch(name)}")
    except SlomoError as exc:
        _fail(f"{name}: {exc}", 1)


@weights_group.command("import")
@click.argument("name")
@click.argument("file", type=click.Path())
def weights_import(name, file):
    """Register a checkpoint you downloaded yourself, after verifying it loads."""
    _import_torch()
    from . import interpolator, weights

    try:
        click.echo(f"{name}: {weights.import_file(name, Path(file), interpolator.verify_checkpoint)}")
    except SlomoError as exc:
        _fail(f"{file}: {exc}", 1)


@main.command("eval")
@click.argument("source")
@click.option("-f", "--factor", type=int, default=2, show_default=True,
              help="Keep every N-th frame of a video and rebuild the others.")
@click.option("-m", "--model", "models", default=None,
              help="Comma-separated models to compare (default: those that need no weights).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most K sequences of a dataset, K rebuilt frames of a video.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--scale", type=click.FloatRange(0.25, 1.0), default=1.0, show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False), help="Checkpoint file to use.")
@click.option("--json", "json_out", is_flag=True, help="Records on stdout as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), help="PSNR per frame plot (needs matplotlib).")
@click.option("--save-diff", type=click.Path(file_okay=False),
              help="Folder for ground truth / output / error images of the worst frames.")
@click.option("--worst", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many worst frames per model --save-diff writes.")
@click.option("--upscale", type=int, default=None,
              help="Score upscalers instead: shrink frames N times, upscale them back (--model: "
                   "upscalers, bicubic, lanczos).")
@click.option("--debug", is_flag=True, help="Tracebacks on errors.")
def eval_command(source, factor, models, limit, device, scale, weights, json_out, plot, save_diff,
                 worst, upscale, debug):
    """Quality: rebuild dropped frames of real footage (or Middlebury / Vimeo-90K) and score them.

    SOURCE is a video, a folder of videos, a Middlebury "other" folder (other-data/,
    other-gt-interp/) or a Vimeo-90K triplet folder (sequences/, tri_testlist.txt).
    """
    _import_torch()
    from . import evaluate, interpolator

    logging.basicConfig(format="slomo: warning: %(message)s", level=logging.WARNING)
    if upscale is not None:
        _eval_upscaling(source, upscale, models, limit, device, json_out, debug)
        return
    if models is None:
        names = [s.name for s in interpolator.available("interpolate") if not s.checkpoints]
    else:
        names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        _fail(f"{source}: --model names no model", 2)
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _fail(f"{plot}: --plot needs matplotlib (pip install 'slomo[plot]')", 1)
    try:
        per_model, worst_frames = evaluate.run(source, names, factor=factor, limit=limit,
                                               device=device, scale=scale, weights=weights,
                                               worst_k=worst if save_diff else 0)
        if plot:
            evaluate.plot(per_model, Path(plot), protect=[source])
        written = []
        if save_diff:
            for name, kept in worst_frames.items():
                written += evaluate.save_diffs(name, kept, Path(save_diff), protect=[source])
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        _fail(str(exc), 2)
    except (SlomoError, ValueError, OSError, RuntimeError) as exc:
        if debug:
            traceback.print_exc()
        message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        _fail(message if str(source) in message else f"{source}: {message}", 1)
    records = evaluate.records(per_model)
    if json_out:
        click.echo(json.dumps(records, indent=2))
        return
    _eval_table(records, f"rebuilt frames (factor {factor} on videos)")
    if plot:
        click.echo(f"plot: {plot}", err=True)
    if save_diff:
        click.echo(f"{len(written)} difference images in {save_diff}", err=True)


def _eval_upscaling(source, scale, models, limit, device, json_out, debug) -> None:
    """``slomo eval --upscale N``: the upscalers and plain resizes scored on shrunk real frames."""
    from dataclasses import asdict

    from . import evaluate, stages

    try:
        names = ([m.strip() for m in models.split(",") if m.strip()] if models else
                 [*evaluate.UPSCALE_BASELINES, stages.upscaler_for(scale).name])
        results = evaluate.run_upscaling(source, names, scale=scale, limit=limit, device=device)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        _fail(f"{source}: {exc}", 2)
    except (SlomoError, OSError, RuntimeError) as exc:
        if debug:
            traceback.print_exc()
        _fail(f"{source}: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}", 1)
    records = [{"model": r.method, **asdict(r)} for r in results]
    for r in records:
        del r["method"]
    if json_out:
        click.echo(json.dumps(records, indent=2))
        return
    _eval_table(records, f"upscaled {scale}x from frames shrunk {scale}x (area)")


def _eval_table(records, title) -> None:
    from rich.console import Console
    from rich.table import Table

    clips = {r["clip"] for r in records if r["clip"] != "overall"}
    shown = records if len(clips) <= 30 else [r for r in records if r["clip"] == "overall"]
    has_ie = any("ie" in r for r in records)
    if len(shown) < len(records):
        title += f"; {len(clips)} clips, overall only (--json for each)"
    table = Table(title=title)
    for column in ("model", "clip", "frames", "PSNR dB", "SSIM", *(["IE"] if has_ie else []),
                   "model s", "ms/frame"):
        table.add_column(column, justify="left" if column in ("model", "clip") else "right",
                         no_wrap=column in ("model", "clip"))
    for r in shown:
        if r["frames"] == 0:
            table.add_row(r["model"], r["clip"], "0", "-", "-", *(["-"] if has_ie else []),
                          "-", "-")
            continue
        ie = [f"{r['ie']:.3f}" if r.get("ie") is not None else "-"] if has_ie else []
        bold = r["clip"] == "overall"
        row = [r["model"], r["clip"], str(r["frames"]), f"{r['psnr']:.3f}", f"{r['ssim']:.4f}",
               *ie, f"{r['seconds']:.2f}", f"{1000 * r['seconds'] / r['frames']:.1f}"]
        table.add_row(*row, style="bold" if bold else None)
    Console().print(table)


@main.command("bench")
@click.option("-m", "--models", default=None,
              help="Comma-separated models (default: all; missing weights are reported skipped).")
@click.option("--sizes", default=None, help="Comma-separated: 360p,720p,1080p,4k (default all).")
@click.option("--quick", is_flag=True, help="Fewer, shorter runs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--modes", default="model,pipeline", show_default=True,
              help="model (interpolate() alone) and/or pipeline (decode + model + encode).")
@click.option("--codec", default=None, help="The pipeline's video encoder (default libx264).")
@click.option("--hwdec", flag_value="auto", default=None, help="The pipeline decodes on the GPU (NVDEC).")
@click.option("--json", "json_out", is_flag=True, help="Records on stdout as JSON.")
@click.option("--write", "write_to", type=click.Path(dir_okay=False),
              help="Write a markdown report to this file.")
@click.option("--debug", is_flag=True, help="Tracebacks on errors.")
def bench_command(models, sizes, quick, device, modes, codec, hwdec, json_out, write_to, debug):
    """Speed and peak memory per model and resolution, on this machine."""
    _import_torch()
    from . import bench

    try:
        plan = bench.plan(models=models.split(",") if models else None,
                          sizes=sizes.split(",") if sizes else None,
                          modes=modes.split(","), device=device, quick=quick, codec=codec, hwdec=hwdec)
    except UsageError as exc:
        _fail(str(exc), 2)
    progress = None if json_out else (lambda line: click.echo(line, err=True))
    try:
        results = bench.run(plan, on_result=progress)
        if write_to:
            bench.write_report(results, plan, Path(write_to))
    except (SlomoError, OSError, RuntimeError) as exc:
        if debug:
            traceback.print_exc()
        _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__, 1)
    if json_out:
        click.echo(json.dumps(results, indent=2))
    else:
        bench.print_table(results, plan)
        if write_to:
            click.echo(f"report: {write_to}", err=True)
    sys.exit(1 if any(r.get("error") for r in results) else 0)


if __name__ == "__main__":
    main()
