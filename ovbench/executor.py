"""Run independent tasks on a spawn process pool (or in-process for one worker), yielding results
as they finish. Spawn, not fork: an OpenGL context must never be inherited by a child."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator


def run_tasks(fn: Callable, tasks: Iterable, workers: int = 1) -> Iterator:
    """Yield fn(task) for every task, in completion order; at most 2×workers tasks in flight."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tasks = iter(tasks)
    if workers == 1:
        for task in tasks:
            yield fn(task)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        pending = set()
        for task in tasks:
            pending.add(pool.submit(fn, task))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        # On an error (or the consumer stopping early) queued tasks are dropped, not run.
        pool.shutdown(wait=True, cancel_futures=True)
