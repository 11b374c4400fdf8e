"""Generation throughput by executor and worker count, in one run on this machine.

    python bench/scale.py [--images 200] [--workers 1,2] [--address HOST:PORT]

Builds the same OVD set (built-in bases and occluders, end to end) on the process pool and on Ray
(a local Ray instance of that many CPUs, or the cluster at --address), and prints composites/s
for each. Ray is started before the clock starts: what is timed is the build, not Ray's start-up.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ovbench.generate.common import Executor, start_executor
from ovbench.generate.ovd.generate import OvdConfig, generate_ovd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--address", default=None)
    args = parser.parse_args()
    train = args.images * 4 // 5
    config = OvdConfig(splits=(("train", train), ("test", args.images - train)))
    executors = {"process pool": Executor(), "Ray": Executor("ray", args.address)}
    rates: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in map(int, args.workers.split(",")):
            for name, executor in executors.items():
                start_executor(executor, workers)
                out = Path(tmp) / f"{name}-{workers}".replace(" ", "-")
                seconds = generate_ovd(config, out, workers=workers, progress=False, executor=executor).seconds
                rates[name, workers] = args.images / seconds
                print(f"{name:12s} {workers} worker(s): {rates[name, workers]:6.1f} composites/s", flush=True)
    first = min(w for _, w in rates)
    for name in executors:
        line = ", ".join(f"{w} workers ×{rates[name, w] / rates[name, first]:.2f}" for n, w in rates if n == name)
        print(f"{name}: {line} (against {first})")
    print("Ray against the process pool: " + ", ".join(
        f"{w} workers ×{rates['Ray', w] / rates['process pool', w]:.2f}" for n, w in rates if n == "Ray"))


if __name__ == "__main__":
    main()
