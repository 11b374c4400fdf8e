"""The process pool that runs every generator's shard tasks: kept between runs, run from the
caller's folder, dropped after a failure."""

import os
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from ovbench.generate.common import run_tasks


def read_here(name: str) -> tuple[int, str]:
    """(worker pid, the text of `name` read relative to the worker's folder), slowly enough that
    both workers take tasks."""
    time.sleep(0.2)
    return os.getpid(), Path(name).read_text()


def fail_on(name: str) -> int:
    """The worker's pid; task "bad" fails, task "die" ends its worker process."""
    if name == "bad":
        raise ValueError("task bad failed")
    if name == "die":
        os._exit(3)
    time.sleep(0.05)
    return os.getpid()


def test_pool_is_kept_between_runs_and_runs_from_the_callers_folder(tmp_path, monkeypatch):
    pids = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "note.txt").write_text(folder)
        monkeypatch.chdir(tmp_path / folder)
        results = list(run_tasks(read_here, ["note.txt"] * 6, workers=2))
        assert [text for _, text in results] == [folder] * 6
        pids.append({pid for pid, _ in results})
    assert len(pids[0]) == 2 and os.getpid() not in pids[0]
    assert pids[1] == pids[0]  # the same two workers


def test_a_failed_task_fails_its_run_alone_and_the_workers_stay():
    before = set(run_tasks(fail_on, ["ok"] * 8, workers=2))
    assert len(before) == 2
    ok = run_tasks(fail_on, ["ok"] * 8, workers=2)  # a second run open at the same time
    first = next(ok)
    with pytest.raises(ValueError, match="task bad failed"):
        list(run_tasks(fail_on, ["ok", "bad", "ok", "ok"], workers=2))
    assert len([first, *ok]) == 8  # the other run was not disturbed
    assert set(run_tasks(fail_on, ["ok"] * 8, workers=2)) == before


def test_a_worker_that_dies_breaks_its_run_and_the_next_run_gets_new_workers():
    before = set(run_tasks(fail_on, ["ok"] * 8, workers=2))
    with pytest.raises(BrokenProcessPool):
        list(run_tasks(fail_on, ["ok", "die", "ok", "ok"], workers=2))
    after = set(run_tasks(fail_on, ["ok"] * 8, workers=2))
    assert len(after) == 2 and not after & before
