"""The speed benchmarks the README names for generation and rendering, at a tiny size: they run
and print their lines (the figures themselves are for a person to read, never asserted). A minute
and more together, so `slow`: `pytest -m slow tests/test_bench.py`."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(name: str, *args) -> str:
    result = subprocess.run([sys.executable, str(BENCH / name), *map(str, args)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_ovd_bench_prints_its_ratios():
    out = run_bench("ovd.py", "--images", 12)
    for line in ("generating costs", "rendering alone sets a floor of", "photo bases", "projected paper size"):
        assert line in out, out


def test_dyce_bench_prints_objects_a_second():
    out = run_bench("dyce.py", "--images", "4,6", "--size", 64, "--views-per-scene", 2)
    lines = [line for line in out.splitlines() if "objects/s" in line]
    assert len(lines) == 4, out
    for line, (images, workers) in zip(lines, [(4, "1 worker:"), (4, "2 workers:"), (6, "1 worker:"),
                                               (6, "2 workers:")]):
        assert f"{images} images" in line and workers in line, out


def test_render_bench_prints_every_pass_for_both_renderers():
    out = run_bench("render.py", "--repeats", 1)
    assert out.count("(pyrender / ovbench)") == 2, out
    assert sum(line.strip().startswith(("new scene", "instance map", "solo masks", "lit pass"))
               for line in out.splitlines()) == 8, out
