"""`ovbench import kins|cocoa ANN.json --images DIR --out DIR`: real amodal test sets as dataset folders.

Layouts read:
- kins: KINS (Qi et al. 2019), COCO-style, in both published key sets: the original release's
  `a_segm` / `i_segm` (amodal / visible polygons), `a_bbox`, `i_bbox`, `a_area`, `i_area`, `oco_id`
  (occlusion cluster) and `ico_id` (layer order within it), and the 2020 update's `segmentation` /
  `inmodal_seg`, `bbox` / `inmodal_bbox`, `area` / `inmodal_area`. Each annotation is read by the
  keys it has. Masks may be polygons or RLE.
- cocoa: COCOA (Zhu et al. 2017): one record per image with `regions` (amodal polygon
  `segmentation`, `name`, `order` with 1 = front-most, `isStuff`, and RLE `visible_mask` /
  `invisible_mask` when occluded) and `depth_constraint` ("a-b,…": region a in front of b).
  An occluded region's amodal mask is visible ∪ invisible (COCOA's own pixel masks), an unoccluded
  one's its polygon. Stuff regions are left out.

Each instance becomes one image record of a dataset folder of kind `real`, framed around its amodal
box the way ovd frames its photo bases (a seeded square 1.15–1.5 × the box's longer side, inside
the photo where it fits, mirrored where not; generate/framing.py), resized to `size`.
Records hold the amodal and visible masks, the source's occlusion order where it has one (COCOA's
`order`, KINS's `ico_id`; COCOA's depth constraints also name the regions in front, whose masks go
to the split's top-level `occluders`), and no appearance ground truth. Visible pixels outside the
amodal mask (annotation noise) are dropped; instances with fewer than MIN_VISIBLE visible pixels
once framed, crowd regions and other categories are left out and counted in the manifest.

The annotation file is untrusted: image file names must stay inside `images`, masks are decoded
only through pycocotools after their structure is checked, and anything malformed is one
InputError. The build is resumable and atomic like the generators' (formats/writer.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ovbench.errors import InputError
from ovbench.formats import dataset, writer
from ovbench.formats import masks as masks_lib
from ovbench.formats.fileio import fingerprint, member, write_json
from ovbench.generate import common
from ovbench.generate.framing import frame_crop, frame_image, frame_mask
from ovbench.seeding import rng_for

LAYOUTS = ("kins", "cocoa")
KIND = "real"
MIN_VISIBLE = 10               # visible pixels an instance keeps once framed (ovd's default too)
GROW = (1.15, 1.5)             # ovd's framing of photo bases: crop side over the box's longer side
PHOTOS_PER_TASK = 8
REJECTED = "rejected"          # parts subfolder: instances a worker left out, with the reason


@dataclass(frozen=True)
class Instance:
    """One object to import, its masks as compressed RLE at the photo's size (str counts)."""

    key: str                   # unique in the source: "kins-<ann id>", "cocoa-<image id>-<order>"
    image_id: int              # its image id in the output
    category: str
    amodal: dict
    visible: dict
    order: int | None
    occluders: tuple = ()      # COCOA: (category, amodal RLE, order) of each region in front of it


@dataclass(frozen=True)
class Photo:
    path: str                  # inside `images`, checked
    file_name: str             # as the annotation file names it
    source_id: object
    width: int
    height: int
    instances: tuple


# --------------------------------------------------------------------------- reading the file

def _read(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise InputError(f"{path.name} is not a COCO-style annotation file (no images and annotations lists)")
    return data


def _rle(segmentation, height: int, width: int, where: str) -> dict:
    """Polygons, uncompressed or compressed RLE → compressed RLE with str counts, via pycocotools,
    after checking the structure (pycocotools trusts what it is given)."""
    if isinstance(segmentation, list):
        polygons = segmentation if segmentation and isinstance(segmentation[0], list) else [segmentation]
        polygons = [p for p in polygons if p]
        for polygon in polygons:
            if len(polygon) < 6 or len(polygon) % 2 or not all(isinstance(v, (int, float)) for v in polygon):
                raise InputError(f"{where}: a polygon must be a list of at least 3 x, y pairs of numbers")
        if not polygons:
            return masks_lib.encode(np.zeros((height, width), bool))
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if [int(s) for s in segmentation["size"]] != [height, width]:
            raise InputError(f"{where}: mask size {segmentation['size']} differs from its image's "
                             f"{height}×{width}")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
                raise InputError(f"{where}: uncompressed RLE counts do not cover its image")
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(counts, str):
            rle = {"size": [height, width], "counts": counts.encode("ascii", "replace")}
            if int(mask_utils.area(rle)) > height * width:
                raise InputError(f"{where}: RLE counts do not fit its image")
        else:
            raise InputError(f"{where}: RLE counts must be a string or a list of integers")
    else:
        raise InputError(f"{where}: a mask must be polygons or an RLE dict with size and counts")
    counts = rle["counts"]
    return {"size": [height, width], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _images_by_id(data: dict, name: str) -> dict:
    images = {}
    for image in data["images"]:
        try:
            images[image["id"]] = (str(image["file_name"]), int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{name}: an image record lacks id, file_name, width or height "
                             f"({str(image)[:80]})") from None
        if images[image["id"]][1] < 1 or images[image["id"]][2] < 1:
            raise InputError(f"{name}: image {image['id']} has no pixels")
    return images


KINS_KEYS = {"original": ("a_segm", "i_segm"), "2020": ("segmentation", "inmodal_seg")}


def _kins(data: dict, name: str, wanted, rejected: Counter) -> tuple[dict, dict]:
    """(photo id → [(key, category, amodal, visible, order, occluders)], category names kept)."""
    try:
        categories = {c["id"]: str(c["name"]).strip() for c in data.get("categories", [])}
    except (KeyError, TypeError):
        raise InputError(f"{name}: a category record lacks id or name") from None
    images = _images_by_id(data, name)
    found: dict = {}
    for ann in data["annotations"]:
        where = f"{name}: annotation {ann.get('id', '?') if isinstance(ann, dict) else '?'}"
        if not isinstance(ann, dict) or not {"id", "image_id", "category_id"} <= ann.keys():
            raise InputError(f"{where} lacks id, image_id or category_id")
        keys = next((k for k in KINS_KEYS.values() if k[0] in ann and k[1] in ann), None)
        if keys is None:
            raise InputError(f"{where} has neither KINS's a_segm/i_segm nor its 2020 segmentation/"
                             "inmodal_seg keys: not a KINS file")
        if ann["image_id"] not in images:
            raise InputError(f"{where} names image {ann['image_id']}, which the file does not list")
        category = categories.get(ann["category_id"])
        if category is None:
            raise InputError(f"{where} has category {ann['category_id']}, which the file does not list")
        if ann.get("iscrowd", 0):
            rejected["crowd"] += 1
            continue
        if wanted is not None and category not in wanted:
            continue
        _, height, width = images[ann["image_id"]]
        order = ann.get("ico_id") if keys == KINS_KEYS["original"] else None
        found.setdefault(ann["image_id"], []).append(
            (f"kins-{ann['id']}", category, _rle(ann[keys[0]], height, width, where),
             _rle(ann[keys[1]], height, width, where), order if isinstance(order, int) else None, ()))
    return found, images


def _depth_pairs(text, where: str) -> set[tuple[int, int]]:
    pairs = set()
    if not text:
        return pairs
    if not isinstance(text, str):
        raise InputError(f"{where}: depth_constraint must be a string such as '1-2,1-3'")
    for part in text.split(","):
        front, _, back = part.strip().partition("-")
        if not (front.isdigit() and back.isdigit()):
            raise InputError(f"{where}: bad depth_constraint entry {part!r} (use FRONT-BACK)")
        pairs.add((int(front), int(back)))
    return pairs


def _cocoa(data: dict, name: str, wanted, rejected: Counter) -> tuple[dict, dict]:
    images = _images_by_id(data, name)
    found: dict = {}
    for record in data["annotations"]:
        if not isinstance(record, dict) or not isinstance(record.get("regions"), list) \
                or "image_id" not in record:
            raise InputError(f"{name}: an annotation record lacks image_id or regions: not a COCOA file")
        if record["image_id"] not in images:
            raise InputError(f"{name}: record {record.get('id', '?')} names image {record['image_id']}, "
                             "which the file does not list")
        _, height, width = images[record["image_id"]]
        regions = {}
        for position, region in enumerate(record["regions"], start=1):
            if not isinstance(region, dict) or "segmentation" not in region or "name" not in region:
                raise InputError(f"{name}: a region of image {record['image_id']} lacks segmentation or name")
            order = region.get("order", position)
            where = f"{name}: image {record['image_id']} region {order}"
            if not isinstance(order, int) or order in regions:
                raise InputError(f"{where}: `order` must be a distinct integer per region")
            if "visible_mask" in region and "invisible_mask" in region:
                visible = _rle(region["visible_mask"], height, width, where)
                hidden = _rle(region["invisible_mask"], height, width, where)
                amodal = mask_utils.merge([_coco_rle(visible), _coco_rle(hidden)])
                amodal = {"size": [height, width], "counts": amodal["counts"].decode("ascii")}
            else:
                amodal = _rle(region["segmentation"], height, width, where)
                visible = _rle(region["visible_mask"], height, width, where) if "visible_mask" in region else amodal
            regions[order] = (str(region["name"]).strip(), amodal, visible, bool(region.get("isStuff", 0)))
        pairs = _depth_pairs(record.get("depth_constraint"), f"{name}: image {record['image_id']}")
        for order, (category, amodal, visible, stuff) in sorted(regions.items()):
            if stuff:
                rejected["stuff (isStuff)"] += 1
                continue
            if wanted is not None and category not in wanted:
                continue
            in_front = tuple((regions[a][0], regions[a][1], a) for a, b in sorted(pairs)
                             if b == order and a in regions)
            found.setdefault(record["image_id"], []).append(
                (f"cocoa-{record['image_id']}-{order}", category, amodal, visible, order, in_front))
    return found, images


def _coco_rle(rle: dict) -> dict:
    return {"size": rle["size"], "counts": rle["counts"].encode("ascii")}


def _read_photo(photo: Photo) -> np.ndarray:
    try:
        with Image.open(photo.path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"image not found: {photo.file_name} (in `images`)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{photo.file_name} is not a readable image ({exc})") from None
    if rgb.shape[:2] != (photo.height, photo.width):
        raise InputError(f"{photo.file_name} is {rgb.shape[1]}×{rgb.shape[0]} but the annotation file "
                         f"says {photo.width}×{photo.height}")
    return rgb


def _record(instance: Instance, rgb: np.ndarray, config: dict, category_ids: dict, photo: Photo):
    """(image, item) for one instance, or (None, reason) when it is left out."""
    amodal = masks_lib.decode(instance.amodal)
    if not amodal.any():
        return None, "empty amodal mask"
    size = config["size"]
    x0, y0, side = frame_crop(amodal, rng_for(config["seed"], "import", instance.key), GROW)
    amodal_f = frame_mask(amodal, x0, y0, side, size)
    visible_f = frame_mask(masks_lib.decode(instance.visible) & amodal, x0, y0, side, size) & amodal_f
    if visible_f.sum() < MIN_VISIBLE:
        return None, f"fewer than {MIN_VISIBLE} visible pixels once framed"
    image_id = instance.image_id
    object_id = image_id * dataset.OBJECT_STRIDE
    occluders, entries = [], []
    for k, (category, rle, order) in enumerate(instance.occluders, start=1):
        mask = frame_mask(masks_lib.decode(rle), x0, y0, side, size)
        occluders.append({"id": object_id + k, "image_id": image_id, "category": category,
                          "source": config["layout"], "segmentation": masks_lib.encode(mask),
                          "bbox": masks_lib.bbox(mask), "area": int(mask.sum()), "order": order})
        entries.append({"id": object_id + k, "pixels": int((amodal_f & mask).sum())})
    area = int(amodal_f.sum())
    annotation = {
        "id": object_id, "image_id": image_id, "category_id": category_ids[instance.category], "iscrowd": 0,
        "segmentation": masks_lib.encode(amodal_f), "bbox": masks_lib.bbox(amodal_f), "area": area,
        "inmodal_seg": masks_lib.encode(visible_f), "inmodal_bbox": masks_lib.bbox(visible_f),
        "visible_mask": masks_lib.encode(visible_f), "invisible_mask": masks_lib.encode(amodal_f & ~visible_f),
        "occlude_rate": 1.0 - int(visible_f.sum()) / area, "occluders": entries, "order": instance.order,
        "model_id": instance.key, "source": config["layout"],
    }
    image = {"id": image_id, "file_name": f"images/{image_id:06d}.png", "width": size, "height": size,
             "source_image": photo.file_name, "crop": [int(x0), int(y0), int(side)]}
    return (frame_image(rgb, x0, y0, side, size), image, annotation, occluders), None


def _import_photos(task: tuple) -> int:
    """Frame every instance of a few photos; each record (or rejection) written when complete."""
    photos, config, category_ids, root = task
    split = config["split"]
    done = 0
    for photo in photos:
        pending = [i for i in photo.instances if not writer.item_done(root, split, i.image_id)
                   and not (root / dataset.PARTS / REJECTED / f"{i.image_id:08d}.json").exists()]
        if not pending:
            done += len(photo.instances)
            continue
        rgb = _read_photo(photo)
        done += len(photo.instances) - len(pending)
        for instance in pending:
            made, reason = _record(instance, rgb, config, category_ids, photo)
            if made is None:
                write_json(root / dataset.PARTS / REJECTED / f"{instance.image_id:08d}.json", {"reason": reason})
            else:
                pixels, image, annotation, occluders = made
                dataset.write_png(root / split / image["file_name"], pixels)
                writer.write_item(root, writer.Item(split, image, [annotation], {"occluders": occluders}))
            done += 1
    return done


# --------------------------------------------------------------------------- the build

def list_photos(layout: str, annotations: Path, images: Path, categories: list[str] | None,
                rejected: Counter) -> tuple[list[Photo], list[str]]:
    """The photos to read and their instances (output ids from 1, in file order), every file name
    checked to stay inside `images` before anything is read; and the category names kept."""
    data = _read(annotations)
    wanted = set(categories) if categories else None
    read = _kins if layout == "kins" else _cocoa
    found, image_records = read(data, annotations.name, wanted, rejected)
    names = sorted({entry[1] for entries in found.values() for entry in entries})
    if not names:
        raise InputError(f"{annotations.name}: no instance to import"
                         + (f" of {', '.join(sorted(wanted))}" if wanted else ""))
    photos, next_id = [], 1
    for source_id in sorted(found, key=str):
        file_name, height, width = image_records[source_id]
        path = member(images, file_name, f"{annotations.name} (images must stay inside `images`)")
        instances = []
        for key, category, amodal, visible, order, in_front in found[source_id]:
            instances.append(Instance(key, next_id, category, amodal, visible, order, in_front))
            next_id += 1
        photos.append(Photo(str(path), file_name, source_id, width, height, tuple(instances)))
    return photos, names


def import_dataset(layout: str, annotations: Path, images: Path, out: Path, categories: list[str] | None = None,
                   size: int = 256, split: str = "test", seed: int = 0, workers: int = 1, resume: bool = False,
                   progress: bool = True):
    """Build the `real` dataset folder `out` from a KINS or COCOA annotation file; a summary."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    common.check_size(size)
    dataset.check_split_name(split)
    annotations, images, out = Path(annotations), Path(images), Path(out)
    if not images.is_dir():
        raise InputError(f"`images` folder not found: {images}")
    started = time.perf_counter()
    rejected: Counter = Counter()
    photos, names = list_photos(layout, annotations, images, categories, rejected)
    category_ids = {name: k for k, name in enumerate(names, start=1)}
    config = {"layout": layout, "annotations": annotations.name, "categories": sorted(categories or []) or None,
              "size": size, "split": split, "seed": seed, "min_visible": MIN_VISIBLE, "grow": list(GROW),
              "fingerprint": fingerprint([annotations] + [p.path for p in photos])}
    fresh = writer.start_dataset(out, KIND, config, resume)
    if fresh is None:
        return writer.DatasetSummary(out, dataset.load_manifest(out)["splits"], 0.0, made=False)
    total = sum(len(p.instances) for p in photos)
    tasks = [(photos[i:i + PHOTOS_PER_TASK], config, category_ids, out)
             for i in range(0, len(photos), PHOTOS_PER_TASK)]
    common.run_with_progress(_import_photos, tasks, workers=workers, total=total, initial=0, unit="obj",
                             desc=f"import {layout}", progress=progress, advance=int,
                             discard=(lambda: writer.discard_dataset(out)) if fresh else None)
    for path in (out / dataset.PARTS / REJECTED).glob("*.json"):
        rejected[json.loads(path.read_text())["reason"]] += 1
    if not (out / dataset.PARTS / split).is_dir():
        writer.discard_dataset(out)
        raise InputError(f"none of the {total} instances of {annotations.name} could be imported "
                         f"({', '.join(f'{n} {why}' for why, n in rejected.items())})")
    manifest = writer.finish_dataset(
        out, out.name, KIND, config, [{"id": k, "name": n} for n, k in category_ids.items()], [split],
        {"annotations": f"{layout} annotations {annotations.name}", "photos": len(photos),
         "rejected": dict(rejected)})
    return writer.DatasetSummary(out, manifest["splits"], time.perf_counter() - started,
                                 writer.mean_occlusion(out, [split]), dict(rejected))
