import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from ovbench.cli import main


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def error_line(self) -> str:
        """The single stderr line of a user error (progress bars aside)."""
        lines = [line for line in self.err.splitlines() if line.startswith("ovbench: error:")]
        assert len(lines) == 1, self.err
        return lines[0]


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    """Each test runs in its own folder: the defaults runs/, leaderboards/ and ovbench-data/ of the
    working folder (a user's, or `make demo`'s) are never read or written by the tests."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys):
    """Run `ovbench ARGS...` in this process; returns exit code, stdout, stderr."""

    def run(*args) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ovbench", *map(str, args)], env=full_env,
                          capture_output=True, text=True, **kwargs)


def box_with_nose(extents=(4.0, 1.6, 1.2)) -> trimesh.Trimesh:
    """A long box with a small tall block at its +X end, so front and up can be told apart."""
    body = trimesh.creation.box(extents=extents)
    nose = trimesh.creation.box(extents=(0.4, 0.4, extents[2]))
    nose.apply_translation((extents[0] / 2 - 0.2, 0, extents[2] * 0.75))
    return trimesh.util.concatenate([body, nose])


def posed_for(mesh: trimesh.Trimesh, up: str, front: str) -> trimesh.Trimesh:
    """The inverse of ovbench's orientation: express a +Z-up/+X-front mesh in another convention."""
    axes = {"x": 0, "y": 1, "z": 2}

    def vec(spec):
        v = np.zeros(3)
        v[axes[spec[1]]] = -1.0 if spec[0] == "-" else 1.0
        return v

    f, u = vec(front), vec(up)
    matrix = np.eye(4)
    matrix[:3, :3] = np.column_stack([f, np.cross(u, f), u])  # native x→front, y→left, z→up
    mesh = mesh.copy()
    mesh.apply_transform(matrix)
    return mesh


@pytest.fixture(scope="session")
def small_ovd(tmp_path_factory):
    """A tiny built-in OVD set (64 px) shared by the evaluation and training tests."""
    out = tmp_path_factory.mktemp("data") / "ovd"
    assert main(["generate", "ovd", "--splits", "train=8,test=6", "--size", "64",
                 "--occluder-bank", "16", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def small_pool(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "pool.h5"
    assert main(["generate", "pool", "--models", "7", "--views", "8", "--size", "64",
                 "--workers", "1", "--quiet", "--out", str(out)]) == 0
    return out


SMALL_DYCE = ["--splits", "train=8,test=4", "--size", "96", "--objects", "3:5", "--models", "20"]


@pytest.fixture(scope="session")
def small_dyce(tmp_path_factory):
    """A tiny DYCE set (96 px, 3-5 objects a scene) shared by the dyce and publishing tests."""
    out = tmp_path_factory.mktemp("data") / "dyce"
    assert main(["generate", "dyce", *SMALL_DYCE, "--workers", "1", "--quiet", "--out", str(out)]) == 0
    return out


def run_and_kill(args, folder: Path, pattern: str, count: int, timeout: float = 60.0) -> None:
    """Start `ovbench ARGS` and SIGKILL it once `count` files match `pattern` under `folder`."""
    proc = subprocess.Popen([sys.executable, "-m", "ovbench", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while len(list(folder.glob(pattern))) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
