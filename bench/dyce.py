"""DYCE scene speed at the default settings, in one run on this machine.

    python bench/dyce.py [--images 48] [--size 256] [--views-per-scene 4]

Annotated objects/s, images/s and scenes/s of `ovbench generate dyce` at its defaults (instance
map, depth, per-object amodal and visible masks, appearance renders, PNGs, annotations) with 1
and 2 workers; worker start-up is included, as a user sees it. More views a scene share a scene's
set-up (layout, meshes, uploads, the shadow map) among more images.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from ovbench.generate.dyce import DyceConfig, generate_dyce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--views-per-scene", type=int, default=DyceConfig.views_per_scene)
    args = parser.parse_args()
    train = args.images * 3 // 4
    config = DyceConfig(size=args.size, splits=(("train", train), ("test", args.images - train)),
                        views_per_scene=args.views_per_scene)
    scenes = sum(math.ceil(n / config.views_per_scene) for _, n in config.splits)
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            summary = generate_dyce(config, Path(tmp) / f"w{workers}", workers=workers, progress=False)
            objects = sum(c["annotations"] for c in summary.counts.values())
            print(f"dyce at {args.size}², {args.images} images ({scenes} scenes, {objects / args.images:.1f} "
                  f"annotated objects an image), {workers} worker{'s' if workers > 1 else ''}: "
                  f"{objects / summary.seconds:.1f} objects/s, {args.images / summary.seconds:.2f} images/s, "
                  f"{scenes / summary.seconds:.2f} scenes/s")


if __name__ == "__main__":
    main()
