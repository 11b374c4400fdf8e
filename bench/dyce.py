"""DYCE scene speed at the default settings, in one run on this machine.

    python bench/dyce.py [--images 80,320] [--size 256] [--views-per-scene 4]

Annotated objects/s, images/s and scenes/s of `ovbench generate dyce` at its defaults (instance
map, depth, per-object amodal and visible masks, appearance renders, PNGs, annotations) with 1
and 2 workers, for each run size in `--images`: 80 is the default dataset's, 320 a longer run.
Worker start-up is included, as a user sees it: each worker imports, makes its GL context and
builds the vehicle models and figures its scenes use, which a short run mostly consists of. More
views a scene share a scene's set-up (layout, meshes, uploads, the shadow map) among more images.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from ovbench.generate.dyce import DyceConfig, generate_dyce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="80,320", help="run sizes, comma-separated")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--views-per-scene", type=int, default=DyceConfig.views_per_scene)
    args = parser.parse_args()
    sizes = [int(n) for n in args.images.split(",") if n.strip().isdigit()]
    if len(sizes) != len(args.images.split(",")) or any(n < 2 for n in sizes):
        parser.error("--images: give run sizes of at least 2 images (a train and a test split), e.g. 80,320")
    for images in sizes:
        train = images * 3 // 4
        config = DyceConfig(size=args.size, splits=(("train", train), ("test", images - train)),
                            views_per_scene=args.views_per_scene)
        scenes = sum(math.ceil(n / config.views_per_scene) for _, n in config.splits)
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, 2):
                summary = generate_dyce(config, Path(tmp) / f"w{workers}", workers=workers, progress=False)
                objects = sum(c["annotations"] for c in summary.counts.values())
                print(f"dyce at {args.size}², {images} images ({scenes} scenes, {objects / images:.1f} "
                      f"annotated objects an image), {workers} worker{'s' if workers > 1 else ''}: "
                      f"{objects / summary.seconds:.1f} objects/s, {images / summary.seconds:.2f} images/s, "
                      f"{scenes / summary.seconds:.2f} scenes/s")


if __name__ == "__main__":
    main()
