"""What every generator shares: the executor, the resumable build folder and its progress.

Builds are resumable. Workers write each item's files, then its record under a parts folder (the
record last, atomically, so a record means the item is complete); a killed run resumes where it
stopped, and only with the settings it started with. `finish_dataset` assembles the annotation
files in id order, hashes every file and writes manifest.json last.

Tasks run on a spawn process pool (or in-process for one worker), or on a Ray cluster (the same
tasks; every node must see the output folder at the same path), results yielded as they finish.
Spawn, not fork: an OpenGL context must never be inherited by a child.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from ovbench import __version__
from ovbench.errors import GLUnavailable, InputError
from ovbench.formats.dataset import MANIFEST, PARTS, sha256
from ovbench.formats.fileio import remove_stale_temporaries, write_json

CONFIG = "config.json"


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


def _in_folder(folder: str, fn: Callable, task):
    """fn(task) run from the driver's working folder, so that relative paths mean the same."""
    os.chdir(folder)
    return fn(task)


def _run_on_ray(fn: Callable, tasks: Iterator, workers: int, executor: Executor) -> Iterator:
    start_executor(executor, workers)
    ray = _import_ray()
    remote = ray.remote(num_cpus=1)(_in_folder)
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
            pending.append(remote.remote(folder, fn, task))
            if len(pending) >= 2 * workers:
                yield from finished()
        while pending:
            yield from finished()
    finally:
        for ref in pending:  # on an error (or the consumer stopping early) queued tasks are dropped
            ray.cancel(ref)


def run_tasks(fn: Callable, tasks: Iterable, workers: int = 1, executor: Executor = PROCESS_POOL) -> Iterator:
    """Yield fn(task) for every task, in completion order; at most 2×workers tasks in flight."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tasks = iter(tasks)
    if executor.kind == "ray":
        yield from _run_on_ray(fn, tasks, workers, executor)
        return
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


def prepare_parts(parts: Path, record: dict, resume: bool) -> bool:
    """Create the parts folder of a build, or reopen it to resume with the same settings;
    returns whether the build is fresh."""
    if parts.exists():
        if not resume:
            raise InputError(f"an interrupted run left {parts}; pass `resume` to finish it, "
                            "or delete that folder to start over")
        config_file = parts / CONFIG
        saved = json.loads(config_file.read_text()) if config_file.exists() else {}
        changed = sorted(k for k in set(saved) | set(record) if saved.get(k) != record.get(k))
        if changed:
            raise InputError(f"`resume` with different settings ({', '.join(changed)}) than the "
                            f"interrupted run in {parts}; use the same settings or delete it")
        for folder in [parts, *parts.rglob("*")]:
            if folder.is_dir():
                remove_stale_temporaries(folder)
        return False
    try:
        parts.mkdir(parents=True)
    except OSError as exc:
        raise InputError(f"cannot create {parts}: {exc.strerror}") from exc
    write_json(parts / CONFIG, record)
    return True


# --------------------------------------------------------------------------- dataset folders

@dataclass(frozen=True)
class Item:
    """One image's records: the COCO image, its annotations, and extra top-level lists."""

    split: str
    image: dict
    annotations: list
    extra: dict  # e.g. {"occluders": [...]} for ovd


@dataclass
class DatasetSummary:
    """What a generator made: counts per split, time, mean occlusion, rejected inputs; `made` is
    False when the folder already held the finished dataset."""

    path: Path
    counts: dict
    seconds: float
    mean_occlusion: float = 0.0
    rejected: dict = field(default_factory=dict)
    made: bool = True


def mean_occlusion(root: Path, splits: list[str]) -> float:
    rates = []
    for split in splits:
        document = json.loads((Path(root) / split / "annotations.json").read_text())
        rates += [a["occlude_rate"] for a in document["annotations"]]
    return float(np.mean(rates)) if rates else 0.0


def _item_path(root: Path, split: str, image_id: int) -> Path:
    return root / PARTS / split / f"{image_id:08d}.json"


def write_item(root: Path, item: Item) -> None:
    """Record a finished item (its files must already be written)."""
    path = _item_path(root, item.split, item.image["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"image": item.image, "annotations": item.annotations, "extra": item.extra})


def item_done(root: Path, split: str, image_id: int) -> bool:
    return _item_path(root, split, image_id).exists()


def start_dataset(root: Path, kind: str, config: dict, resume: bool) -> bool | None:
    """Prepare `root` for building. Returns whether the build is fresh, or None when `root`
    already holds the finished dataset (resume)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is a file, not a folder: choose another `out`")
    manifest = root / MANIFEST
    if manifest.exists():
        if not resume:
            raise InputError(f"{root} already holds a dataset; pass `resume` to keep it, or delete it")
        saved = json.loads(manifest.read_text())
        if saved.get("config") != config:
            raise InputError(f"{root} was made with other settings; delete it or change `out`")
        return None
    if not (root / PARTS).exists() and root.exists() and any(root.iterdir()):
        raise InputError(f"{root} exists and is not an ovbench dataset; choose another `out`")
    fresh = prepare_parts(root / PARTS, {**config, "kind": kind}, resume)
    if not fresh:
        for folder in root.glob("*/*"):  # the items' own files: images/, appearance/ ...
            if folder.is_dir():
                remove_stale_temporaries(folder)
    return fresh


def finish_dataset(root: Path, name: str, kind: str, config: dict, categories: list, splits: list[str],
                   sources: dict) -> dict:
    """Assemble annotations.json per split, hash every file, write manifest.json; returns it."""
    root = Path(root)
    counts = {}
    for split in splits:
        images, annotations, extra = [], [], {}
        for path in sorted((root / PARTS / split).glob("*.json")):
            record = json.loads(path.read_text())
            images.append(record["image"])
            annotations.extend(record["annotations"])
            for key, values in record["extra"].items():
                extra.setdefault(key, []).extend(values)
        document = {
            "info": {"description": f"ovbench {kind} dataset, split {split}",
                     "version": __version__},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": categories, **extra,
        }
        (root / split).mkdir(parents=True, exist_ok=True)
        write_json(root / split / "annotations.json", document)
        counts[split] = {"images": len(images), "annotations": len(annotations)}
    files = {path.relative_to(root).as_posix(): sha256(path)
             for path in sorted(root.rglob("*"))
             if path.is_file() and PARTS not in path.relative_to(root).parts and path.name != MANIFEST}
    manifest = {
        "name": name, "kind": kind, "ovbench_version": __version__, "seed": config.get("seed"),
        "config": config, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "splits": counts, "sources": sources, "files": files,
    }
    write_json(root / MANIFEST, manifest)
    shutil.rmtree(root / PARTS)
    return manifest


def discard_dataset(root: Path) -> None:
    """Remove an unfinished build (its parts, and the folder if nothing else is left in it)."""
    root = Path(root)
    shutil.rmtree(root / PARTS, ignore_errors=True)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
