"""A real two-node Ray cluster on this machine: head on 127.0.0.2, worker on 127.0.0.3.

Both nodes are started here as ``ray start --block`` processes in their own process groups and
stopped by killing those groups: never ``ray stop``, which would stop every Ray process on the
machine.  Token authentication is off (``RAY_AUTH_MODE=disabled``) for this private cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray")

from conftest import moving_frames, write_clip  # noqa: E402
from test_chunks import ENCODE, assert_same_video, packets, two_shots  # noqa: E402

import slomo  # noqa: E402
from slomo import cluster  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ray]
HEAD, WORKER = "127.0.0.2", "127.0.0.3"


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {seconds} s")
        time.sleep(0.2)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def descendants(roots: list[int]) -> dict[int, bytes]:
    """The processes started (directly or not) by ``roots``: id -> command line."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
    found, frontier = set(), set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {pid: commands[pid] for pid in found}


def stop(process: subprocess.Popen) -> None:
    """Stop a node by process id: the ``ray start`` process group (raylet, GCS, object store),
    then the workers the raylet started, which run in process groups of their own."""
    workers = descendants([process.pid])
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(grace)
            break
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@dataclass
class Nodes:
    address: str
    pids: list[int]  # the ``ray start`` processes


def warm_workers(ray) -> list[str]:
    """Start a worker with slomo imported on each node, and return the nodes' addresses.  A cold
    worker takes seconds to start, the tests' conversions a fraction of one: without this, the
    node whose worker happened to start first could take every task, and the tests that check
    both nodes did work would be measuring start-up races."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def imported() -> str:
        import slomo.api  # noqa: F401 - what a conversion task imports first

        return ray.util.get_node_ip_address()

    task = ray.remote(imported)
    refs = [task.options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"],
                                                                                         soft=False)).remote()
            for node in ray.nodes() if node["Alive"]]
    return sorted(ray.get(refs))


@pytest.fixture(scope="module")
def nodes():
    """The ``ray start`` processes of the head and the worker, both up, this process connected
    as the driver; the head's ``host:port`` is ``nodes.address``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        ray_command = str(Path(sys.executable).with_name("ray"))
        try:
            port = free_port(HEAD)
            free_port(WORKER)
        except OSError:
            pytest.skip("127.0.0.2 and 127.0.0.3 are not usable here (Linux routes all of 127/8)")
        temp = tempfile.mkdtemp(prefix="slomo-ray-")  # short: Ray's socket paths must fit 107 bytes
        common = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats", "--block"]
        nodes = []
        try:
            with open(Path(temp) / "head.log", "w") as log:
                nodes.append(subprocess.Popen(
                    [ray_command, "start", "--head", f"--node-ip-address={HEAD}", f"--port={port}",
                     "--include-dashboard=false", f"--temp-dir={temp}", *common],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            wait_for(lambda: port_open(HEAD, port), 90, "the head's port did not open")
            with open(Path(temp) / "worker.log", "w") as log:
                nodes.append(subprocess.Popen(
                    [ray_command, "start", f"--address={HEAD}:{port}", f"--node-ip-address={WORKER}",
                     *common], stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            ray = cluster.connect(f"{HEAD}:{port}")
            wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, 90, "two nodes did not join")
            assert warm_workers(ray) == [HEAD, WORKER]
            yield Nodes(f"{HEAD}:{port}", [node.pid for node in nodes])
        finally:
            import ray

            ray.shutdown()
            for node in reversed(nodes):
                stop(node)
            shutil.rmtree(temp, ignore_errors=True)


def run_cli(*args):
    """The command in this process (the connected driver): (exit code, stdout)."""
    from click.testing import CliRunner

    from slomo.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def test_folder_on_two_nodes_matches_a_local_run(nodes, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(4):
        write_clip(folder / f"clip{seed}.mp4", moving_frames(10, motion=(seed + 1, 1), seed=seed))
    (folder / "broken.mp4").write_bytes(b"not a video")
    code, out = run_cli(folder, "-m", "flow", "--ray", nodes.address, "-o", tmp_path / "out", "--json")
    records = json.loads(out)
    assert code == 1  # one input failed; the others still converted
    assert [f["input"] for f in records["failed"]] == [str(folder / "broken.mp4")]
    assert {r["node"] for r in records["converted"]} == {HEAD, WORKER}  # both nodes did work
    for record in records["converted"]:
        local = slomo.convert(record["input"], tmp_path / "local.mp4", model="flow", overwrite=True)
        assert packets(local.output) == packets(record["output"])


def test_chunks_on_two_nodes_match_a_one_piece_run(nodes, tmp_path):
    clip = two_shots(tmp_path / "clip.mp4", 28)
    one = slomo.convert(clip, tmp_path / "one.mp4", model="flow", factor=3)
    split = slomo.convert(clip, tmp_path / "split.mp4", model="flow", factor=3, chunk_seconds=0.25,
                          ray=nodes.address)
    assert {c["node"] for c in split.chunks} == {HEAD, WORKER} and len(split.chunks) == 9
    assert_same_video(one.output, split.output)


def running_tasks(nodes: Nodes) -> list[int]:
    """Ids of the workers of these nodes running a slomo task right now (their title says so)."""
    return [pid for pid, command in descendants(nodes.pids).items() if command.startswith(b"ray::_on_node")]


def test_a_killed_worker_s_task_is_retried(nodes, tmp_path):
    frames = moving_frames(40, size=(320, 192), motion=(2, 1))
    clip = write_clip(tmp_path / "clip.mp4", frames, options=ENCODE)
    request = {"model": "flow", "device": "cpu"}
    outcomes = cluster.convert_many([(str(clip), str(tmp_path / "out.mp4"))], request, nodes.address)
    results: list = []
    consumer = threading.Thread(target=lambda: results.extend(outcomes))  # submits, then waits
    consumer.start()
    wait_for(lambda: running_tasks(nodes), 120, "no task started")
    os.kill(running_tasks(nodes)[0], signal.SIGKILL)
    consumer.join(300)
    (_, result), = results
    assert isinstance(result, slomo.ConvertResult), result  # retried on a new worker
    local = slomo.convert(clip, tmp_path / "local.mp4", model="flow")
    assert packets(local.output) == packets(result.output)


def test_resume_after_sigkill_on_the_cluster(nodes, tmp_path):
    frames = moving_frames(70, size=(320, 192), motion=(2, 1))
    clip = write_clip(tmp_path / "clip.mp4", frames, options=ENCODE)
    target = tmp_path / "out.mp4"
    command = [sys.executable, "-m", "slomo.cli", str(clip), "-m", "flow", "-o", str(target),
               "--chunk-seconds", "0.2", "--resume", "--ray", nodes.address, "--json"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    work = tmp_path / ".out.mp4.slomo-work"
    wait_for(lambda: driver.poll() is not None or len(list(work.glob("*/chunk-*.json"))) >= 2, 240,
             "no chunk finished")
    driver.send_signal(signal.SIGKILL)
    assert driver.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    finished = len(list(work.glob("*/chunk-*.json")))
    assert not target.exists() and 2 <= finished < 10

    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["converted"][0]
    assert sum(c["reused"] for c in record["chunks"]) >= finished and len(record["chunks"]) == 10
    assert {c["node"] for c in record["chunks"] if not c["reused"]} <= {HEAD, WORKER}
    one = slomo.convert(clip, tmp_path / "one.mp4", model="flow")
    assert_same_video(one.output, str(target))
