"""OVD composite speed, in one run on this machine.

    python bench/ovd.py [--images 500] [--full]

Prints composites/s with 1 and 2 workers (built-in bases and occluders, end to end: occluder bank,
bases, composites, annotation files, checksums), and the bare cost of PNG-encoding the same
outputs (every image and appearance PNG of the set, same encoder settings) as a ratio. With
--full, the paper's size (33,100 train + 1,000 test) with 2 workers.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ovbench.formats.dataset import PNG_LEVEL
from ovbench.generate.ovd.generate import OvdConfig, _bank_dir, generate_ovd, load_bank, make_composite
from ovbench.generate.ovd.sources import list_bases, make_base


def encode_png(array: np.ndarray) -> None:
    Image.fromarray(array).save(io.BytesIO(), format="PNG", compress_level=PNG_LEVEL)


def compositing_stage(config: OvdConfig, bank_root: Path, bases: int = 20, per_base: int = 10):
    """Seconds per composite for the 2-D stage alone (placement, harmonisation, paste, masks,
    RLEs, PNG of the input image) and for PNG-encoding that image alone, given rendered bases."""
    bank = load_bank(_bank_dir(bank_root))
    specs = list_bases("builtin", bases, 0, [], 0).specs
    made = [make_base(spec, 0, config.size) for spec in specs]
    images, started = [], time.perf_counter()
    for b, base in enumerate(made):
        for i in range(per_base):
            image, _ = make_composite(base, bank, config, "bench", b * per_base + i, 1, "a.png")
            encode_png(image)
            images.append(image)
    stage = (time.perf_counter() - started) / len(images)
    started = time.perf_counter()
    for image in images:
        encode_png(image)
    return stage, (time.perf_counter() - started) / len(images), len(made)


def png_seconds(root: Path) -> tuple[float, int]:
    """Seconds to PNG-encode every image of the set again (decoded beforehand, not timed)."""
    arrays = [np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))]
    started = time.perf_counter()
    for array in arrays:
        encode_png(array)
    return time.perf_counter() - started, len(arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--reuse", type=int, default=2)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    train = args.images * 4 // 5
    config = OvdConfig(splits=(("train", train), ("test", args.images - train)), reuse=args.reuse)
    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            summary = generate_ovd(config, out, workers=workers, progress=False)
            rates[workers] = args.images / summary.seconds
        encode, files = png_seconds(Path(tmp) / "w1")
        png_rate = args.images / encode
        print(f"ovd, {args.images} composites at 256² (reuse {args.reuse}): "
              f"1 worker {rates[1]:.1f}/s, 2 workers {rates[2]:.1f}/s (×{rates[2] / rates[1]:.2f})")
        print(f"PNG-encoding its {files} PNGs alone: {png_rate:.1f} composites/s on 1 core → "
              f"generating costs {png_rate / rates[1]:.2f}× the bare encoding (1 worker)")
        # Keep one bank: build a throwaway set whose .parts survive (interrupting before finish
        # is not needed: the bank is rebuilt from the same seed into a fresh folder).
        from ovbench.generate.ovd.generate import _build_bank, _list_occluders
        bank_root = Path(tmp) / "bank"
        _build_bank(config, _list_occluders(config), bank_root, 1, False)
        stage, png, _ = compositing_stage(config, bank_root)
        print(f"2-D compositing stage alone (given rendered bases): {1 / stage:.1f} composites/s, "
              f"{stage / png:.2f}× the bare PNG encoding of its image ({1 / png:.1f}/s)")
        print(f"projected paper size (34,100) on 2 workers: {34100 / rates[2] / 60:.1f} min")
        if args.full:
            full = OvdConfig(splits=(("train", 33100), ("test", 1000)), reuse=args.reuse)
            summary = generate_ovd(full, Path(tmp) / "full", workers=2, progress=False)
            print(f"paper size: 34,100 composites in {summary.seconds / 60:.1f} min on 2 workers "
                  f"({34100 / summary.seconds:.1f}/s)")


if __name__ == "__main__":
    main()
