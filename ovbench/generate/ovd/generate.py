"""OVD-style composites: whole vehicles with occluders pasted over them (`ovbench generate ovd`).

"Visualizing the Invisible" built its Occluded Vehicle Dataset by pasting real occluders over
whole, unoccluded cars and harmonising colours; because each car was whole first, its amodal mask
and the appearance behind the occluders are exact. Here: bases (whole vehicles) are split between
train and test so test vehicles are unseen; each base makes `reuse` composites (cycled over the
split's images); occluders come from a bank of cut-outs built once per dataset.

Work is sharded by base: a worker makes a base, writes its appearance PNG, then each of its
composites (image PNG, then its record). Every random choice comes from (seed, item), so the
output does not depend on the worker count, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovbench.errors import InputError
from ovbench.formats import dataset, writer
from ovbench.formats import masks as masks_lib
from ovbench.formats.fileio import fingerprint
from ovbench.generate import common
from ovbench.generate.common import check_size
from ovbench.generate.ovd.composite import Cutout, composite, plan_occlusion
from ovbench.generate.ovd.harmonize import get_harmonizer
from ovbench.generate.ovd.sources import (
    BUILTIN_CATEGORIES,
    BaseSpec,
    list_bases,
    list_occluders,
    make_base,
    make_cutout,
)
from ovbench.generator_settings import OvdConfig
from ovbench.seeding import rng_for

BASES_PER_TASK = 4
CUTOUTS_PER_TASK = 16



@dataclass
class SplitPlan:
    name: str
    images: int
    first_id: int          # image ids are first_id .. first_id + images - 1
    bases: list            # BaseSpec


def _assign_bases(config: OvdConfig) -> tuple[list[SplitPlan], object]:
    """Bases per split: built-in bases are made per split; listed bases are shuffled by seed and
    divided in proportion to the split sizes (at least one each), so no base is in two splits."""
    total = sum(n for _, n in config.splits)
    needed = sum(math.ceil(n / config.reuse) for _, n in config.splits)
    listing = list_bases(config.base, needed, config.seed, list(config.base_categories),
                         config.min_base_size())
    specs = listing.specs
    if config.base.startswith("builtin"):
        shares = [math.ceil(n / config.reuse) for _, n in config.splits]
    else:
        if len(specs) < len(config.splits):
            raise InputError(f"{len(specs)} eligible bases cannot fill {len(config.splits)} splits "
                            "without sharing a vehicle")
        order = rng_for(config.seed, "base-split").permutation(len(specs))
        specs = [specs[i] for i in order]
        raw = [len(specs) * n / total for _, n in config.splits]
        shares = [max(1, int(r)) for r in raw]
        for i in np.argsort([s - r for s, r in zip(shares, raw)]):  # largest remainders first
            if sum(shares) >= len(specs):
                break
            shares[i] += 1
        while sum(shares) > len(specs):
            shares[int(np.argmax(shares))] -= 1
    plans, start, first_id = [], 0, 1
    for (name, images), share in zip(config.splits, shares):
        plans.append(SplitPlan(name, images, first_id, specs[start:start + share]))
        start += share
        first_id += images
    return plans, listing


# --------------------------------------------------------------------------- occluder bank

def _file_fingerprints(config: OvdConfig, base_listing, occluder_listing) -> dict:
    """Fingerprints of the files behind file sources, so that a resumed build refuses changed inputs."""
    prints = {}
    for key, spec, listing in (("base", config.base, base_listing), ("occluders", config.occluders, occluder_listing)):
        kind, _, rest = spec.partition(":")
        if kind != "builtin":
            files = [s.image for s in listing.specs] + [s.mask for s in listing.specs if s.mask]
            prints[f"{key}_fingerprint"] = fingerprint(files + ([rest.split(":")[0]] if kind == "coco" else []))
    return prints


def _bank_dir(root: Path) -> Path:
    return root / dataset.PARTS / "occluders"


def _make_cutouts(task: tuple) -> int:
    specs, seed, size, folder = task
    for spec in specs:
        png = folder / f"{spec.index:06d}.png"
        if png.exists():
            continue
        cutout = make_cutout(spec, seed, size)
        meta = folder / f"{spec.index:06d}.json"
        meta.write_text(json.dumps({"category": cutout.category, "source": cutout.source,
                                    "origin": cutout.origin, "height_m": cutout.height_m}))
        dataset.write_png(png, cutout.rgba)  # last: the PNG marks the cut-out as done
    return len(specs)


@common.per_run_cache(maxsize=2)
def load_bank(folder: Path) -> list[Cutout]:
    """The cut-outs of a finished bank, read once a run (a later build may make another bank at
    the same path)."""
    bank = []
    for png in sorted(folder.glob("*.png")):
        meta = json.loads(png.with_suffix(".json").read_text())
        bank.append(Cutout(dataset.read_png(png), meta["category"], meta["source"], meta["origin"],
                           meta["height_m"]))
    return bank


def _list_occluders(config: OvdConfig):
    total = sum(n for _, n in config.splits)
    count = config.occluder_bank or int(np.clip(total // 2, 64, 400))
    return list_occluders(config.occluders, count, list(config.occluder_categories),
                          config.occluder_min_size, config.keep_border_occluders)


def _build_bank(config: OvdConfig, listing, root: Path, workers: int, progress: bool,
                discard=None, executor: common.Executor = common.PROCESS_POOL) -> None:
    specs = listing.specs
    if config.occluder_bank and len(specs) > config.occluder_bank:
        keep = np.sort(rng_for(config.seed, "occluder-bank").choice(len(specs), config.occluder_bank,
                                                                    replace=False))
        specs = [specs[i] for i in keep]
    folder = _bank_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [(specs[i:i + CUTOUTS_PER_TASK], config.seed, config.size, folder)
             for i in range(0, len(specs), CUTOUTS_PER_TASK)]
    common.run_with_progress(_make_cutouts, tasks, workers=workers, total=len(specs), initial=0,
                             unit="cut-out", desc="occluders", progress=progress, advance=int, discard=discard,
                             executor=executor)


# --------------------------------------------------------------------------- composites

def _composites_of(plan: SplitPlan, base_position: int) -> list[int]:
    """Indices (within the split) of the images made from the base at `base_position`."""
    return list(range(base_position, plan.images, len(plan.bases)))


def _category_ids(config: OvdConfig) -> dict[str, int]:
    names = BUILTIN_CATEGORIES if config.base.startswith("builtin") else config.base_categories
    return {name: i + 1 for i, name in enumerate(names)}


def make_composite(base, bank: list[Cutout], config: OvdConfig, split: str, index: int,
                   image_id: int, appearance: str) -> tuple[np.ndarray, writer.Item]:
    """One composite image and its records; all random choices from (seed, split, index)."""
    rng = rng_for(config.seed, "composite", split, index)
    harmonize = get_harmonizer(config.harmonize)
    requested_count = int(rng.integers(1, config.max_occluders + 1))
    target = float(rng.uniform(*config.occlusion))
    placements = []
    for _ in range(5):  # a draw may find no placement that leaves enough visible; redraw
        placements = plan_occlusion(base.amodal, bank, requested_count, target, config.min_visible, rng,
                                    base.category, base.model_id, ground=base.ground)
        if placements:
            break
    for placement in placements:
        placement.rgb = harmonize(placement.rgb, placement.mask, base.rgb)
    image = composite(base.rgb, placements, keep=base.amodal)

    amodal = base.amodal
    covered = np.zeros_like(amodal)
    for placement in placements:
        covered |= placement.mask
    visible, invisible = amodal & ~covered, amodal & covered
    area = int(amodal.sum())
    vehicle_id = image_id * dataset.OBJECT_STRIDE
    occluders = []
    for j, placement in enumerate(placements):
        occluders.append({
            "id": vehicle_id + 1 + j, "image_id": image_id, "category": placement.cutout.category,
            "source": placement.cutout.source, "segmentation": masks_lib.encode(placement.mask),
            "bbox": masks_lib.bbox(placement.mask), "area": int(placement.mask.sum()),
            "order": len(placements) - j, "scale": round(placement.scale, 4),
        })
    annotation = {
        "id": vehicle_id, "image_id": image_id, "category_id": _category_ids(config)[base.category],
        "iscrowd": 0, "segmentation": masks_lib.encode(amodal), "bbox": masks_lib.bbox(amodal),
        "area": area, "inmodal_seg": masks_lib.encode(visible), "inmodal_bbox": masks_lib.bbox(visible),
        "visible_mask": masks_lib.encode(visible), "invisible_mask": masks_lib.encode(invisible),
        "occlude_rate": 1.0 - int(visible.sum()) / area,
        "occluders": [{"id": o["id"], "pixels": int((amodal & p.mask).sum())}
                      for o, p in zip(occluders, placements)],
        "order": len(placements) + 1, "model_id": base.model_id, "source": base.source,
    }
    record = {
        "id": image_id, "file_name": f"images/{image_id:06d}.png", "width": config.size,
        "height": config.size, "appearance": appearance, "requested_occlusion": round(target, 4),
        "requested_occluders": requested_count,
    }
    return image, writer.Item(split, record, [annotation], {"occluders": occluders})


def _write_composite(root: Path, image: np.ndarray, item: writer.Item) -> None:
    dataset.write_png(root / item.split / item.image["file_name"], image)
    writer.write_item(root, item)  # last: the record marks the composite done


def _make_split_bases(task: tuple) -> int:
    plan, positions, config, root = task
    bank = load_bank(_bank_dir(root))
    composites = []
    # PNG encoding (zlib releases the GIL) and writing run on a thread while the next base renders.
    with ThreadPoolExecutor(max_workers=1) as encoder:
        writes = []
        for position in positions:
            indices = [i for i in _composites_of(plan, position)
                       if not writer.item_done(root, plan.name, plan.first_id + i)]
            if not indices:
                continue
            spec: BaseSpec = plan.bases[position]
            base = make_base(spec, config.seed, config.size)
            appearance = f"appearance/base-{spec.index:06d}.png"
            if not (root / plan.name / appearance).exists():
                writes.append(encoder.submit(dataset.write_png, root / plan.name / appearance, base.rgb))
            for i in indices:
                image, item = make_composite(base, bank, config, plan.name, i, plan.first_id + i, appearance)
                composites.append(encoder.submit(_write_composite, root, image, item))
        for write in writes + composites:
            write.result()  # a failed write fails the task
    return len(composites)


def generate_ovd(config: OvdConfig, out: Path, workers: int = 1, resume: bool = False,
                 progress: bool = True, executor: common.Executor = common.PROCESS_POOL) -> writer.DatasetSummary:
    out = Path(out)
    check_size(config.size)
    if config.max_occluders < 1 or config.reuse < 1 or config.min_visible < 1:
        raise InputError("`max_occluders`, `reuse` and `min_visible` must be at least 1 (got "
                         f"{config.max_occluders}, {config.reuse}, {config.min_visible})")
    if config.occluder_bank is not None and config.occluder_bank < 1:
        raise InputError(f"`occluder_bank` must be at least 1 (or left out), got {config.occluder_bank}")
    get_harmonizer(config.harmonize)
    started = time.perf_counter()
    plans, base_listing = _assign_bases(config)
    occluder_listing = _list_occluders(config)
    record = {**config.record(), **_file_fingerprints(config, base_listing, occluder_listing)}
    fresh = writer.start_dataset(out, "ovd", record, resume)
    if fresh is None:
        splits = dataset.load_manifest(out)["splits"]
        return writer.DatasetSummary(out, splits, 0.0, writer.mean_occlusion(out, list(splits)), made=False)
    discard = (lambda: writer.discard_dataset(out)) if fresh else None
    _build_bank(config, occluder_listing, out, workers, progress, discard, executor)
    tasks = [(plan, list(range(i, min(i + BASES_PER_TASK, len(plan.bases)))), config, out)
             for plan in plans for i in range(0, len(plan.bases), BASES_PER_TASK)]
    done = sum(writer.item_done(out, p.name, p.first_id + i) for p in plans for i in range(p.images))
    common.run_with_progress(_make_split_bases, tasks, workers=workers, total=sum(p.images for p in plans),
                             initial=done, unit="img", desc="ovd", progress=progress, advance=int,
                             discard=discard, executor=executor)
    manifest = writer.finish_dataset(
        out, out.name, "ovd", record,
        [{"id": i, "name": n, "supercategory": "vehicle"} for n, i in _category_ids(config).items()],
        [p.name for p in plans],
        {"base": base_listing.description, "occluders": occluder_listing.description,
         "base_rejected": dict(base_listing.rejected),
         "occluders_rejected": dict(occluder_listing.rejected)},
    )
    return writer.DatasetSummary(out, manifest["splits"], time.perf_counter() - started,
                                  writer.mean_occlusion(out, [p.name for p in plans]),
                                  dict(base_listing.rejected))
