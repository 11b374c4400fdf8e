"""OVD composite speed against the bare PNG cost of its outputs, in one run on this machine.

    python bench/ovd.py [--images 500] [--full]

Generates the same set with 1 and 2 workers, end to end (occluder bank, bases, composites,
annotation files, checksums), then PNG-encodes every image and appearance PNG of it again with the
same encoder settings, on 1 core and on 2 (two threads: zlib releases the GIL). The ratio compares
like with like: 2 workers against encoding on 2 cores. The paper's size (33,100 train + 1,000 test,
a bank of 400 cut-outs) is projected from the 2-worker run with the bank's share at the paper's
proportion; --full generates it. The floor is the ratio with the 2-D work free: base renders
shared by `reuse` composites, and the PNGs. Last, the same composites from photo bases (a folder
of the rendered bases, written untimed), where no base is rendered: OVD's bases were photos.
"""

from __future__ import annotations

import argparse
import io
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from ovbench.formats.dataset import PNG_LEVEL
from ovbench.generate.common import close_pools
from ovbench.generate.ovd.generate import (
    OvdConfig,
    _bank_dir,
    _build_bank,
    _list_occluders,
    generate_ovd,
    load_bank,
    make_composite,
)
from ovbench.generate.ovd.sources import list_bases, make_base

PAPER_IMAGES, PAPER_BANK = 34100, 400


def encode_png(array: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.tell()


def png_seconds(root: Path, threads: int) -> tuple[float, int]:
    """Seconds to PNG-encode every PNG of the set again (decoded beforehand, not timed)."""
    arrays = [np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png")) if ".parts" not in p.parts]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(encode_png, arrays))
    return time.perf_counter() - started, len(arrays)


def write_photo_bases(folder: Path, count: int, size: int) -> Path:
    """`count` rendered bases as a folder source (car_K.png with car_K.mask.png), made untimed."""
    folder.mkdir()
    for spec in list_bases("builtin", count, 1, [], 0).specs:
        base = make_base(spec, 1, size)
        Image.fromarray(base.rgb).save(folder / f"car_{spec.index:05d}.png")
        Image.fromarray(base.amodal.astype(np.uint8) * 255).save(folder / f"car_{spec.index:05d}.mask.png")
    return folder


def stages(config: OvdConfig, bank_root: Path, bases: int = 20) -> dict:
    """Seconds per base render, per composite's 2-D stage (placement, harmonisation, shadows,
    paste, masks, RLEs) and per PNG, on one core."""
    bank = load_bank(_bank_dir(bank_root))
    specs = list_bases("builtin", bases, 0, [], 0).specs
    make_base(specs[0], 0, config.size)  # warm the renderer
    started = time.perf_counter()
    made = [make_base(spec, 0, config.size) for spec in specs]
    render = (time.perf_counter() - started) / len(made)
    images, started = [], time.perf_counter()
    for b, base in enumerate(made):
        for i in range(config.reuse):
            images.append(make_composite(base, bank, config, "bench", b * config.reuse + i, 1, "a.png")[0])
    compose = (time.perf_counter() - started) / len(images)
    started = time.perf_counter()
    for image in images:
        encode_png(image)
    return {"render": render, "compose": compose, "png": (time.perf_counter() - started) / len(images)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--reuse", type=int, default=2)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    train = args.images * 4 // 5
    config = OvdConfig(splits=(("train", train), ("test", args.images - train)), reuse=args.reuse)
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {}
        for workers in (1, 2):
            seconds[workers] = generate_ovd(config, Path(tmp) / f"w{workers}", workers=workers,
                                            progress=False).seconds
        encode = {threads: png_seconds(Path(tmp) / "w2", threads) for threads in (1, 2)}
        files = encode[1][1]
        print(f"ovd, {args.images} composites at {config.size}² (reuse {args.reuse}), PNG level {PNG_LEVEL}: "
              f"1 worker {args.images / seconds[1]:.1f}/s, 2 workers {args.images / seconds[2]:.1f}/s "
              f"(×{seconds[1] / seconds[2]:.2f})")
        print(f"PNG-encoding its {files} PNGs alone: {encode[1][0]:.2f} s on 1 core, {encode[2][0]:.2f} s on 2; "
              f"1 worker costs {seconds[1] / encode[1][0]:.2f}× the 1-core encoding")
        print(f"generating costs {seconds[2] / encode[2][0]:.2f}× the bare encoding (2 workers against "
              "encoding on 2 cores)")
        bank_root = Path(tmp) / "bank"
        listing = _list_occluders(config)
        started = time.perf_counter()
        _build_bank(config, listing, bank_root, 2, False)
        bank = time.perf_counter() - started
        per_cutout = bank / len(listing.specs)
        part = stages(config, bank_root)
        print(f"one core, per item: base render {part['render'] * 1e3:.1f} ms, 2-D composite "
              f"{part['compose'] * 1e3:.1f} ms, PNG of the image {part['png'] * 1e3:.1f} ms; occluder bank "
              f"{per_cutout * 2e3:.1f} ms per cut-out ({len(listing.specs)} here)")
        png = encode[1][0] / args.images  # PNG-encoding per composite (its image, its share of the base's)
        floor = (part["render"] / config.reuse + png) / png
        print(f"rendering alone sets a floor of {floor:.2f}× (base render {part['render'] * 1e3:.1f} ms over "
              f"reuse {config.reuse} against {png * 1e3:.1f} ms of PNG per composite, one core)")
        photos = write_photo_bases(Path(tmp) / "photos", math.ceil(args.images / args.reuse), config.size)
        photo_config = replace(config, base=f"dir:{photos}")
        close_pools()  # started workers, as the built-in bases' 2-worker run had
        photo_seconds = generate_ovd(photo_config, Path(tmp) / "from-photos", workers=2, progress=False).seconds
        photo_encode, _ = png_seconds(Path(tmp) / "from-photos", 2)
        print(f"photo bases (a folder of whole vehicles with masks, as OVD's were photos): 2 workers "
              f"{args.images / photo_seconds:.1f}/s, generating costs {photo_seconds / photo_encode:.2f}× "
              "the bare encoding")
        steady = (seconds[2] - bank) / args.images
        projected = steady * PAPER_IMAGES + per_cutout * PAPER_BANK
        print(f"projected paper size ({PAPER_IMAGES:,}, bank {PAPER_BANK}) on 2 workers: {projected / 60:.1f} min")
        if args.full:
            full = OvdConfig(splits=(("train", 33100), ("test", 1000)), reuse=args.reuse)
            summary = generate_ovd(full, Path(tmp) / "full", workers=2, progress=False)
            print(f"paper size: {PAPER_IMAGES:,} composites in {summary.seconds / 60:.1f} min on 2 workers "
                  f"({PAPER_IMAGES / summary.seconds:.1f}/s)")


if __name__ == "__main__":
    main()
