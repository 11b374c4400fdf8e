"""Atomic writes: a killed run never leaves a half-written file under its final name."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ovbench.errors import UserError


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries left by a killed run (their final files were never renamed into place)."""
    for tmp in Path(folder).glob(".*.tmp-*"):
        tmp.unlink()


def check_writable(path: Path) -> None:
    """Create `path`'s folder if needed; UserError if it cannot be created or written."""
    folder = Path(path).absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder is not writable: {folder}")
