"""`--executor ray`: the process pool's shard tasks on a real Ray cluster (a head and a second
node on loopback, started and stopped here), the same bytes as the process pool."""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_and_kill, run_subprocess

OVD = ("--splits", "train=6,test=3", "--size", 96, "--occluder-bank", 24, "--quiet")
POOL = ("--models", 3, "--views", 8, "--size", 64, "--quiet")
RAY = str(Path(sys.executable).with_name("ray"))
# A loopback address Ray keeps as it is (it swaps 127.0.0.1 for the machine's outward address).
LOOPBACK = "127.0.0.2"
COUNT_NODES = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
               "print(sum(node['Alive'] for node in ray.nodes()))")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _node(env: dict, *args) -> subprocess.Popen:
    """A Ray node in the foreground (--block): stopping this process stops the node's processes,
    and only them (`ray stop` would stop every Ray on the machine)."""
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", LOOPBACK,
                             "--disable-usage-stats", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_nodes(address: str, count: int, nodes: list, env: dict, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert all(node.poll() is None for node in nodes), "a Ray node exited while starting"
        counted = subprocess.run([sys.executable, "-c", COUNT_NODES, address], env=env,
                                 capture_output=True, text=True, timeout=timeout)
        if counted.returncode == 0 and int(counted.stdout.split()[-1]) >= count:
            return
        assert time.monotonic() < deadline, f"the Ray cluster at {address} did not reach {count} nodes"
        time.sleep(1.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(HOST:PORT, environment) of a two-node Ray cluster on loopback, one CPU per node, with a
    token of its own that nodes and drivers read from the environment (not the user's ~/.ray)."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = _free_port()
    address = f"{LOOPBACK}:{port}"
    nodes = [_node(env, "--head", "--port", str(port), "--temp-dir", str(tmp_path_factory.mktemp("ray")),
                   "--include-dashboard", "false")]
    try:
        nodes.append(_node(env, "--address", address))
        _wait_for_nodes(address, 2, nodes, env)
        yield address, env
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()


@pytest.fixture(scope="module")
def process_pool_sets(tmp_path_factory):
    """The ovd set and the pool file made by the process pool, to compare against."""
    from ovbench.cli import main

    root = tmp_path_factory.mktemp("local")
    assert main(["generate", "ovd", *map(str, OVD), "--workers", "2", "--out", str(root / "ovd")]) == 0
    assert main(["generate", "pool", *map(str, POOL), "--workers", "2", "--out", str(root / "pool.h5")]) == 0
    return root


def _files(root: Path) -> dict:
    """Every file's bytes, the manifest less its creation time."""
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    manifest = json.loads(files.pop("manifest.json"))
    manifest.pop("created")
    return {**files, "manifest.json": manifest}


def _on_cluster(cluster, *args, cwd: Path):
    address, env = cluster
    return run_subprocess(*args, "--workers", 2, "--executor", "ray", "--address", address, env=env, cwd=cwd,
                          timeout=600)


def test_ovd_and_pool_on_a_cluster_match_the_process_pool(cluster, process_pool_sets, tmp_path):
    # A relative --out: the workers resolve it from the driver's folder.
    result = _on_cluster(cluster, "generate", "ovd", *OVD, "--out", "ovd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _files(tmp_path / "ovd") == _files(process_pool_sets / "ovd")
    result = _on_cluster(cluster, "generate", "pool", *POOL, "--out", "pool.h5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pool.h5").read_bytes() == (process_pool_sets / "pool.h5").read_bytes()


def test_an_interrupted_build_finishes_on_the_cluster_keeping_what_was_done(cluster, process_pool_sets,
                                                                             tmp_path):
    out = tmp_path / "ovd"
    args = ["generate", "ovd", *OVD, "--out", out]
    run_and_kill([*args, "--workers", 1], out, ".parts/train/*.json", 3)   # killed among the composites
    done = {f"train/images/{int(p.stem):06d}.png" for p in (out / ".parts" / "train").glob("*.json")}
    assert done and not (out / "manifest.json").exists()
    written = {name: (out / name).stat().st_mtime_ns for name in done}
    result = _on_cluster(cluster, *args, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {name: (out / name).stat().st_mtime_ns for name in done} == written  # not made again
    assert _files(out) == _files(process_pool_sets / "ovd")


def test_a_local_ray_for_the_run_without_an_address(process_pool_sets, tmp_path):
    result = run_subprocess("generate", "pool", *POOL, "--workers", 2, "--executor", "ray", "--out", "pool.h5",
                            env={"HOME": str(tmp_path)}, cwd=tmp_path, timeout=600)  # Ray writes its token under HOME
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pool.h5").read_bytes() == (process_pool_sets / "pool.h5").read_bytes()


def test_no_cluster_at_the_address_is_one_line(tmp_path, cli):
    result = cli("generate", "ovd", *OVD, "--executor", "ray", "--address", f"{LOOPBACK}:{_free_port()}",
                 "--out", tmp_path / "set")
    assert result.code == 2
    assert f"no Ray cluster answers at --address {LOOPBACK}:" in result.error_line()
    assert not (tmp_path / "set").exists()   # nothing left behind to resume


def test_without_ray_installed_is_one_line(tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as it does where it is not installed
    result = cli("generate", "pool", *POOL, "--executor", "ray", "--out", tmp_path / "pool.h5")
    assert result.code == 2
    assert "pip install 'ovbench[ray]'" in result.error_line()
