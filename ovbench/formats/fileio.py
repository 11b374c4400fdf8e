"""Atomic writes (a killed run never leaves a half-written file under its final name) and input
fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath

from ovbench.errors import InputError


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


def write_json(path: Path, data, indent: int | None = 2) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, sort_keys=True) + "\n")


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries left by a killed run (their final files were never renamed into place)."""
    for tmp in Path(folder).glob(".*.tmp-*"):
        tmp.unlink()


def check_writable(path: Path) -> None:
    """Create `path`'s folder if needed; InputError if it cannot be created or written."""
    folder = Path(path).absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK):
        raise InputError(f"output folder is not writable: {folder}")


def fingerprint(paths) -> str:
    """A short digest of input files' names, sizes and modification times: a resumed build refuses
    another source, or one whose files changed, without reading every byte."""
    digest = hashlib.sha256()
    for path in sorted({Path(p) for p in paths}):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def member(root: Path, name: str, where: str = "the data") -> Path:
    """`root / name` for a name that comes from data (an annotation file, a manifest, a Hub row):
    relative, without `..`, and not leading out of `root` through a symbolic link. Anything else
    is refused before a byte is read or written."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise InputError(f"unsafe file name {name!r} in {where}: not a plain relative path")
    parts = PurePosixPath(name).parts
    if not parts or parts[-1] == ".":
        raise InputError(f"unsafe file name {name!r} in {where}: it names no file")
    if PurePosixPath(name).is_absolute() or ".." in parts or re.fullmatch(r"[A-Za-z]:", parts[0]):
        raise InputError(f"unsafe file name {name!r} in {where}: it leads outside {root}")
    path = Path(root) / name
    try:
        resolved, base = path.resolve(), Path(root).resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic-link loop
        raise InputError(f"unsafe file name {name!r} in {where}: {exc}") from None
    if resolved != base and base not in resolved.parents:
        raise InputError(f"unsafe file name {name!r} in {where}: a symbolic link leads outside {root}")
    return path
