"""Conversions on a Ray cluster: one task per file, or per chunk of a long file.

``pip install "slomo[ray]"``.  A task runs :func:`slomo.api.convert` (or one chunk of it) on
whichever node Ray picks and reports that node's IP address.  Inputs and outputs are paths, so
every node must see them at the same place: a shared filesystem (NFS, a mounted bucket) on a real
cluster.  A task asks for one CPU, and one GPU when its model will run on CUDA; Ray retries a
task whose worker or node died (``max_retries``), while a conversion error (a bad file) is
reported at once and does not stop the other tasks.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace

from . import api, interpolator, outputs
from .errors import ClusterError, MediaError, SlomoError, UsageError

#: How often Ray re-runs a task whose worker process or node died.
MAX_RETRIES = 3


def connect(address: str):
    """The ``ray`` module, connected to the cluster at ``address``: ``host:port`` of its head,
    ``ray://host:10001`` (Ray Client), ``auto`` (``RAY_ADDRESS``, else the cluster started on
    this machine) or ``local`` (start one here).  The workers get this process's ``SLOMO_HOME``."""
    try:
        import ray
    except ImportError:
        raise UsageError("running on a Ray cluster needs Ray: pip install 'slomo[ray]'") from None
    if not ray.is_initialized():
        _check_reachable(address)
        env = {name: os.environ[name] for name in ("SLOMO_HOME",) if name in os.environ}
        try:
            ray.init(address=address, runtime_env={"env_vars": env} if env else None,
                     log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot connect to the Ray cluster at {address!r} "
                               f"({str(exc).splitlines()[0]})") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail at once on a ``host:port`` nothing listens on (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        reason = exc.strerror or exc
        raise ClusterError(f"cannot connect to the Ray cluster at {address!r} ({reason})") from None


def gpus_per_task(spec: interpolator.ModelSpec, device: str) -> float:
    """One GPU for a model with weights on ``cuda``/``auto``; none for the classical models and
    the CPU.  ``auto`` asks for a GPU only where the cluster has one.  (Untested: no GPU here.)"""
    if not spec.weights or not (device == "auto" or device.startswith("cuda")):
        return 0
    if device == "auto":
        import ray

        return 1 if ray.cluster_resources().get("GPU", 0) else 0
    return 1


def _on_node(task: Callable, *args):
    """Run ``task`` on a worker and say where: ``(result, node IP)``."""
    import ray

    return task(*args), ray.util.get_node_ip_address()


def executor(address: str, num_gpus: float | Callable[[], float] = 0):
    """A :data:`slomo.chunks.Executor` running each task on the cluster with one CPU (and
    ``num_gpus``, or what that function says once connected); outcomes arrive as tasks finish.
    Tasks are spread over the nodes (Ray's default packs them on the driver's node first, which
    kept every chunk of a short clip on the head once ``flow`` got fast).  Closing the iterator
    cancels the tasks not yet finished."""
    def run(task: Callable, items: list) -> Iterator[tuple[object, object, str | None]]:
        ray = connect(address)
        gpus = num_gpus() if callable(num_gpus) else num_gpus
        remote = ray.remote(_on_node).options(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES,
                                              scheduling_strategy="SPREAD")
        refs = {remote.remote(task, *item): item for item in items}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                outcome, node = _outcome(ray, ready[0])
                yield refs[ready[0]], outcome, node
        finally:
            for ref in pending:
                ray.cancel(ref)

    return run


def _outcome(ray, ref) -> tuple[object, str | None]:
    """A task's ``(value, node)``; its own exception as raised on the worker, or a lost worker or
    node (after the retries) as :class:`ClusterError`, with no node."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        return exc.cause, None
    except ray.exceptions.RayError as exc:
        return ClusterError(f"the Ray task was lost ({str(exc).splitlines()[0]})"), None


def convert_file(src: str, dst: str | None, request: dict) -> api.ConvertResult:
    """A worker's task: one whole file, converted there."""
    return api.convert(src, dst, **{**request, "ray": None})


def returned(outcome: api.ConvertResult | Exception) -> api.ConvertResult:
    """The result of :func:`convert_many`'s outcome, or its error raised here."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def convert_many(pairs: list[tuple[str, str | None]], request: dict, address: str
                 ) -> Iterator[tuple[str, api.ConvertResult | Exception]]:
    """Convert every ``(source, output)`` on the cluster, one task each; yield ``(source, result
    or the error that failed it)`` as each finishes, so one bad file does not stop the others."""
    try:
        spec = interpolator.get_spec(request.get("model", interpolator.DEFAULT_MODEL))
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    try:
        connect(address)
    except SlomoError as exc:  # Ray missing or the cluster unreachable: every file fails with it
        yield from ((src, exc) for src, _ in pairs)
        return
    run = executor(address, lambda: gpus_per_task(spec, request.get("device", "auto")))
    given = {os.path.abspath(src): src for src, _ in pairs}  # workers start elsewhere: absolute paths
    tasks = [(os.path.abspath(src), os.path.abspath(dst) if dst else None, request) for src, dst in pairs]
    for item, outcome, node in run(convert_file, tasks):
        if isinstance(outcome, api.ConvertResult):
            outcome = replace(outcome, input=given[item[0]], node=node)
        yield given[item[0]], outcome


def batch_outcomes(jobs: list[outputs.Job], written: outputs.Batch, options: dict
                   ) -> Iterator[tuple[str, api.ConvertResult | Exception]]:
    """:func:`slomo.api.convert_many`'s ``(input, result or error)`` pairs with every file a task on
    the cluster at ``options["ray"]``: each output is planned here first, so the batch's rules
    (never an input, never an earlier output, no overwrite unless asked) hold as they do locally."""
    request = {k: v for k, v in options.items() if k not in ("ray", "chunk_seconds", "jobs", "resume")}
    fps = options.get("fps")
    rate = api.parse_rate(fps) if fps is not None else None
    factor = options.get("factor") or (2 if rate is None else None)
    pairs: list[tuple[str, str | None]] = []
    for job in jobs:
        try:
            if job.problem:
                raise MediaError(job.problem)
            target = outputs.plan(job.src, job.output, factor=factor, fps=rate,
                                  slowmo=options.get("slowmo", False),
                                  overwrite=options.get("overwrite", False), batch=written)
        except SlomoError as exc:
            yield job.src, exc
            continue
        pairs.append((job.src, str(target.path)))
    for src, outcome in convert_many(pairs, request, options["ray"]):
        if isinstance(outcome, api.ConvertResult):
            written.wrote(outcome.output, src)
        yield src, outcome

