"""DYCE scene speed, in one run on this machine.

    python bench/dyce.py [--scenes 40]

Scenes/s for 5-object scenes at 256² (instance map, depth, per-object amodal and visible masks,
per-object appearance renders, PNGs, annotations), one view per scene, with 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ovbench.generate.dyce import DyceConfig, generate_dyce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    args = parser.parse_args()
    config = DyceConfig(objects=(5, 5), views_per_scene=1, models=40,
                        splits=(("train", args.scenes * 4 // 5), ("test", args.scenes - args.scenes * 4 // 5)))
    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for workers in (1, 2):
            summary = generate_dyce(config, Path(tmp) / f"w{workers}", workers=workers, progress=False)
            rates[workers] = args.scenes / summary.seconds
    print(f"dyce, {args.scenes} scenes of 5 objects at 256²: 1 worker {rates[1]:.1f} scenes/s, "
          f"2 workers {rates[2]:.1f} scenes/s (×{rates[2] / rates[1]:.2f})")


if __name__ == "__main__":
    main()
