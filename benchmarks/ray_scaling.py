"""Throughput on a simulated Ray cluster against its number of workers (one CPU each).

    .venv/bin/python benchmarks/ray_scaling.py                      # 1 and 2 workers, -m flow
    .venv/bin/python benchmarks/ray_scaling.py --workers 1,2,4 --clips 8 --model blend

Each worker is a Ray node of its own with ``num_cpus=1`` on this machine (Ray's
``ray.cluster_utils.Cluster``, which stops what it started; its nodes share this machine's IP
address, so the records cannot tell them apart: ``tests/test_ray.py`` uses two addresses).
Two workloads, each timed after a warm-up task per node (so Ray's worker start and the imports
are not counted):

- files: a folder of ``--clips`` clips (``--frames`` frames of the real sample at ``--size``),
  one task per file, as ``slomo FOLDER --ray ADDRESS`` does;
- chunks: one clip of 120 frames, a keyframe every 12, cut with ``--chunk-seconds``, one task
  per chunk, joined.

Reported: wall seconds, files per hour and seconds of input video per hour.  Every output is
checked against a local run (byte-identical video packets).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av

from slomo import api, bench


def video_packets(path: str) -> list[bytes]:
    with av.open(path) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def make_clips(folder: Path, count: int, frames: int, width: int, height: int) -> list[Path]:
    """Clips of the real sample, each from another start frame."""
    folder.mkdir(parents=True, exist_ok=True)
    sample = bench.sample_path()
    return [bench.make_clip(sample, folder / f"clip{i}.mp4", frames, width, height, start=4 * i)
            for i in range(count)]


def measure(workers: int, clips: list[Path], long_clip: Path, model: str, seconds: float, out: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    simulated = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(workers - 1):
            simulated.add_node(num_cpus=1)
        simulated.wait_for_nodes()
        address = simulated.address
        request = {"model": model, "device": "cpu", "overwrite": True}
        warm = clips[:workers]  # a task per node starts its worker, imports slomo
        api.convert_many(warm, out / "warm", ray=address, **request)

        started = time.perf_counter()
        batch = api.convert_many(clips, out / "files", ray=address, **request)
        if batch.failed:
            raise RuntimeError(f"files failed on the cluster: {batch.failed}")
        results = batch.converted
        files_seconds = time.perf_counter() - started

        started = time.perf_counter()
        split = api.convert(long_clip, out / "long.mp4", chunk_seconds=seconds, ray=address, **request)
        chunk_seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
        simulated.shutdown()
    video = sum(r.frames_in / r.input_fps for r in results)
    return {"workers": workers, "files_s": files_seconds,
            "files_per_hour": 3600 * len(results) / files_seconds,
            "video_s_per_hour": 3600 * video / files_seconds,
            "results": results, "chunks_s": chunk_seconds, "chunks": len(split.chunks),
            "chunk_video_s_per_hour": 3600 * split.frames_in / split.input_fps / chunk_seconds,
            "split": split}


def check(record: dict, clips: list[Path], long_clip: Path, model: str, out: Path) -> None:
    """Every cluster output equals a local run's."""
    for result in record["results"]:
        local = api.convert(result.input, out / "local.mp4", model=model, overwrite=True)
        assert video_packets(local.output) == video_packets(result.output), result.input
    local = api.convert(long_clip, out / "local.mp4", model=model, overwrite=True)
    assert video_packets(local.output) == video_packets(record["split"].output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", default="480x270")
    parser.add_argument("--model", default="flow")
    parser.add_argument("--chunk-seconds", type=float, default=0.9)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private cluster on this machine
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="slomo-scaling-") as tmp:
        clips = make_clips(Path(tmp) / "in", args.clips, args.frames, width, height)
        long_clip = bench.make_clip(bench.sample_path(), Path(tmp) / "long.mp4", 120, width, height, start=0,
                                    keyframe_interval=12)
        print(f"{args.clips} clips of {args.frames} frames at {args.size}, -m {args.model}; one clip of 120 "
              f"frames (keyframes every 12) in chunks of {args.chunk_seconds} s; "
              f"{os.cpu_count()} CPUs on this machine")
        print("| workers | files: wall s | files/hour | video s/hour | chunks: wall s | chunks "
              "| video s/hour |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for workers in map(int, args.workers.split(",")):
            out = Path(tmp) / str(workers)
            record = measure(workers, clips, long_clip, args.model, args.chunk_seconds, out)
            check(record, clips, long_clip, args.model, Path(tmp))
            print(f"| {workers} | {record['files_s']:.1f} | {record['files_per_hour']:.0f} | "
                  f"{record['video_s_per_hour']:.0f} | {record['chunks_s']:.1f} | "
                  f"{record['chunks']} | {record['chunk_video_s_per_hour']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
