"""What every generator shares: the executor, its progress bar and the image-size rule (the
resumable dataset writing they share is formats/writer.py).

Tasks run on a spawn process pool (or in-process for one worker), or on a Ray cluster (the same
tasks; every node must see the output folder at the same path), results yielded as they finish.
Spawn, not fork: an OpenGL context must never be inherited by a child.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import secrets
import socket
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

from ovbench.errors import GLUnavailable, InputError


def check_size(size: int, smallest: int = 32) -> None:
    """Image sides are multiples of 8, so that every model's down- and up-sampling meets again."""
    if size < smallest or size % 8:
        raise InputError(f"`size` must be a multiple of 8 and at least {smallest}, got {size}")


EXECUTORS = ("process", "ray")
RAY_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Executor:
    """Where shard tasks run: `process`, a spawn pool on this machine, or `ray`, the Ray cluster
    whose head is at `address` (HOST:PORT), or without one a local Ray instance for the run."""

    kind: str = "process"
    address: str | None = None

    def __post_init__(self):
        if self.kind not in EXECUTORS:
            raise InputError(f"`executor` must be {' or '.join(EXECUTORS)}, got {self.kind!r}")
        if self.address is not None:
            if self.kind != "ray":
                raise InputError("`address` is the Ray cluster's; it needs `executor` ray")
            host, _, port = self.address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InputError(f"bad `address` {self.address!r}: use HOST:PORT of the Ray head, "
                                 "e.g. 10.0.0.5:6379")


PROCESS_POOL = Executor()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("`executor` ray needs Ray: pip install 'ovbench[ray]'") from None
    return ray


_ray_connection = None  # what this process joined Ray for: (executor, workers), kept for later runs


def _connect_ray(ray, executor: Executor, workers: int) -> None:
    """Join the cluster at the executor's address (checked first, so that a wrong one fails in
    seconds), or start a local instance of `workers` CPUs. One connection serves every run of the
    process (a build runs several); Ray set up by the caller is used as it is."""
    global _ray_connection
    wanted = (executor, workers if executor.address is None else None)
    if ray.is_initialized() and _ray_connection in (None, wanted):
        return
    if ray.is_initialized():
        ray.shutdown()
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if executor.address is None:
        ray.init(num_cpus=workers, include_dashboard=False, **quiet)
    else:
        host, _, port = executor.address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
            ray.init(address=executor.address, **quiet)
        except (OSError, ConnectionError) as exc:
            raise InputError(f"no Ray cluster answers at `address` {executor.address} ({exc}); start its "
                             f"head with: ray start --head --port {port}") from None
    _ray_connection = wanted


def start_executor(executor: Executor, workers: int) -> None:
    """Make the executor ready (join Ray), so that a missing Ray or a wrong address fails before
    any task runs."""
    if executor.kind == "ray":
        _connect_ray(_import_ray(), executor, workers)


_per_run_caches: list = []
_current_run = {"run": None}


def per_run_cache(maxsize: int) -> Callable:
    """functools.lru_cache whose entries last one run (one `run_tasks`) in a process: workers, the
    process pool's and Ray's, are kept between runs, and a later run may find other files at the
    same paths (a bank made again, a model file edited)."""

    def decorate(fn: Callable) -> Callable:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _per_run_caches.append(cached)
        return cached

    return decorate


def _enter_run(run: str) -> None:
    if _current_run["run"] != run:
        for cache in _per_run_caches:
            cache.cache_clear()
        _current_run["run"] = run


def _in_run(folder: str, run: str, fn: Callable, task):
    """fn(task) run from the driver's working folder (so that relative paths mean the same), with
    the per-run caches of run `run`."""
    os.chdir(folder)
    _enter_run(run)
    return fn(task)


def _run_on_ray(fn: Callable, tasks: Iterator, workers: int, executor: Executor, run: str) -> Iterator:
    start_executor(executor, workers)
    ray = _import_ray()
    remote = ray.remote(num_cpus=1)(_in_run)
    folder, pending = os.getcwd(), []

    def finished():
        nonlocal pending
        done, pending = ray.wait(pending, num_returns=1)
        try:
            return ray.get(done)
        except ray.exceptions.RayTaskError as exc:  # the task's own error, not Ray's wrapping of it
            raise exc.cause if isinstance(exc.cause, Exception) else exc from None

    try:
        for task in tasks:
            pending.append(remote.remote(folder, run, fn, task))
            if len(pending) >= 2 * workers:
                yield from finished()
        while pending:
            yield from finished()
    finally:
        for ref in pending:  # on an error (or the consumer stopping early) queued tasks are dropped
            ray.cancel(ref, force=True)
        if pending:  # and waited for, as the process pool does, so that nothing writes after this
            ray.wait(pending, num_returns=len(pending), timeout=60)


def run_tasks(fn: Callable, tasks: Iterable, workers: int = 1, executor: Executor = PROCESS_POOL) -> Iterator:
    """Yield fn(task) for every task, in completion order; at most 2×workers tasks in flight."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tasks, run = iter(tasks), secrets.token_hex(8)
    if executor.kind == "ray":
        yield from _run_on_ray(fn, tasks, workers, executor, run)
        return
    if workers == 1:
        _enter_run(run)
        for task in tasks:
            yield fn(task)
        return
    pool, folder, pending = _process_pool(workers), os.getcwd(), set()
    try:
        for task in tasks:
            pending.add(pool.submit(_in_run, folder, run, fn, task))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    except (KeyboardInterrupt, BrokenProcessPool):
        _drop_pool(workers, pool)  # its workers are gone or going: a later run starts new ones
        raise
    finally:
        # An error or the consumer stopping early: this run's queued tasks are dropped and its
        # running ones waited for, so that nothing of it writes afterwards.
        for future in pending:
            future.cancel()
        wait(pending)


_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """The process's spawn pool of `workers`, kept between runs: its workers keep their imports
    and OpenGL context (seconds a run at small sizes), e.g. from an ovd build's occluder bank to
    its bases, or across the default suite's stages. Workers also keep the environment variables
    and sys.path they started with; `close_pools` starts afresh."""
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ProcessPoolExecutor(max_workers=workers,
                                                  mp_context=multiprocessing.get_context("spawn"))
        return _pools[workers]


def _drop_pool(workers: int, pool: ProcessPoolExecutor) -> None:
    with _pools_lock:
        if _pools.get(workers) is pool:
            del _pools[workers]
    pool.shutdown(wait=True, cancel_futures=True)


def close_pools() -> None:
    """Shut down the kept worker pools (their processes and OpenGL contexts)."""
    for workers, pool in list(_pools.items()):
        _drop_pool(workers, pool)


def run_with_progress(fn: Callable, tasks: list, *, workers: int, total: int, initial: int, unit: str,
                      desc: str, progress: bool, advance: Callable, discard: Callable | None,
                      executor: Executor = PROCESS_POOL) -> None:
    """Run every task under a progress bar; `advance(result)` says how far each result moves it.
    Without a usable executor or renderer, `discard` (given for a fresh build) removes what was
    started."""
    try:
        start_executor(executor, workers)
    except InputError:
        if discard is not None:
            discard()
        raise
    try:
        with tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=not progress) as bar:
            for result in run_tasks(fn, tasks, workers, executor):
                bar.update(advance(result))
    except GLUnavailable:
        if discard is not None:  # nothing could be rendered: leave nothing behind
            discard()
        raise
