"""`ovbench convert DIR --to cocoa|kins2020 -o OUT`: the annotation layouts of other amodal datasets.

- cocoa: COCOA's original layout (Zhu et al. 2017): one record per image with `regions` (every
  object, occluders included: amodal polygon `segmentation`, `name`, `area`, `isStuff`,
  `occlude_rate`, `order` with 1 = front-most, and RLE `visible_mask` / `invisible_mask` when
  occluded) and `depth_constraint` ("a-b,…": region a is in front of region b where they overlap).
  COCOA has one polygon per region: an object of several parts gets one outline that visits every
  part through zero-width bridges (each drawn there and back, so they cover nothing).
- kins2020: KINS's COCO-style keys: amodal `segmentation` (one polygon per part), `bbox`, `area`,
  and visible `inmodal_seg` (polygons), `inmodal_bbox`, `inmodal_area`.

Polygons trace the outer boundary of each part (4-connected), along pixel edges with convex
corners cut; they cannot hold holes, so holes are filled. The exact masks travel beside them as
RLE: kins2020 adds `segmentation_rle` (amodal) and `inmodal_seg_rle` (visible), keys its
readers ignore; an occluded COCOA region's `visible_mask` and `invisible_mask` are exact (their
union is the amodal mask), and an unoccluded one, which has neither, adds `segmentation_rle`.
COCOA's own occluded regions keep exactly COCOA's keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import measure

from ovbench.errors import InputError
from ovbench.formats import dataset
from ovbench.formats.fileio import write_json
from ovbench.formats.masks import bbox, decode, encode

FORMATS = ("cocoa", "kins2020")


def polygons(mask: np.ndarray) -> list[list[float]]:
    """The outer boundary of each part of the mask as a COCO polygon [x1, y1, x2, y2, ...] (pixel
    (i, j) spans x in [j, j+1]), largest part first; holes are filled."""
    labels, _ = ndimage.label(mask)  # 4-connected parts, as the contours below separate them
    outlines = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        part = ndimage.binary_fill_holes(labels[box] == k)
        # The iso-line between pixel centres runs along pixel edges; the pad closes it.
        contour = max(measure.find_contours(np.pad(part, 1).astype(np.uint8), 0.5),
                      key=lambda c: abs(_signed_area(c)))
        points = contour[:, ::-1] - 0.5 + (box[1].start, box[0].start)  # (row, col) → (x, y), unpadded
        outlines.append((abs(_signed_area(points)), [round(float(v), 2) for v in points.ravel()]))
    return [outline for _, outline in sorted(outlines, key=lambda item: -item[0])]


def single_outline(parts: list[list[float]]) -> list[float]:
    """Several part outlines as one polygon: from the first part's start a bridge runs to each
    other part, around it and back. A bridge is drawn there and back, so under the even-odd and
    the non-zero rule alike it covers nothing, and every part keeps its pixels."""
    if not parts:
        return []
    start = parts[0][:2]
    joined = list(parts[0]) + start
    for part in parts[1:]:
        joined += part + part[:2] + start
    return joined


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _objects(document: dict, image_id: int, names: dict) -> list[dict]:
    """Every object of an image as (name, amodal, visible, order), front-most first."""
    objects = []
    for ann in document["annotations"]:
        if ann["image_id"] == image_id:
            objects.append({"name": names[ann["category_id"]], "amodal": decode(ann["segmentation"]),
                            "visible": decode(ann["visible_mask"]), "order": ann["order"]})
    # dyce lists objects too small to annotate as occluders without an order: left out here too.
    occluders = [o for o in document.get("occluders", [])
                 if o["image_id"] == image_id and o["order"] is not None]
    occluders.sort(key=lambda o: o["order"])
    in_front = None
    for occluder in occluders:  # occluders are whole in the frame; later ones hide earlier ones
        amodal = decode(occluder["segmentation"])
        visible = amodal if in_front is None else amodal & ~in_front
        objects.append({"name": occluder["category"], "amodal": amodal, "visible": visible,
                        "order": occluder["order"]})
        in_front = amodal if in_front is None else in_front | amodal
    return sorted(objects, key=lambda o: o["order"])


def to_cocoa(document: dict) -> dict:
    names = {c["id"]: c["name"] for c in document["categories"]}
    records = []
    for image in document["images"]:
        objects = _objects(document, image["id"], names)
        regions, constraints = [], []
        for k, obj in enumerate(objects, start=1):
            area = int(obj["amodal"].sum())
            rate = 1.0 - int(obj["visible"].sum()) / area if area else 0.0
            region = {"segmentation": single_outline(polygons(obj["amodal"])), "name": obj["name"],
                      "area": area, "isStuff": 0, "occlude_rate": rate, "order": k}
            if rate > 0:  # exact already: the amodal mask is the union of these two
                region["visible_mask"] = encode(obj["visible"])
                region["invisible_mask"] = encode(obj["amodal"] & ~obj["visible"])
            else:
                region["segmentation_rle"] = encode(obj["amodal"])
            regions.append(region)
        for a in range(len(objects)):
            for b in range(a + 1, len(objects)):
                if (objects[a]["amodal"] & objects[b]["amodal"]).any():
                    constraints.append(f"{a + 1}-{b + 1}")
        records.append({"image_id": image["id"], "id": image["id"], "size": len(regions),
                        "regions": regions, "depth_constraint": ",".join(constraints)})
    images = [{k: image[k] for k in ("id", "file_name", "width", "height")}
              for image in document["images"]]
    return {"images": images, "annotations": records}


def to_kins2020(document: dict) -> dict:
    annotations = []
    for ann in document["annotations"]:
        amodal, visible = decode(ann["segmentation"]), decode(ann["visible_mask"])
        annotations.append({
            "id": ann["id"], "image_id": ann["image_id"], "category_id": ann["category_id"],
            "iscrowd": 0, "segmentation": polygons(amodal), "segmentation_rle": ann["segmentation"],
            "bbox": bbox(amodal), "area": int(amodal.sum()), "inmodal_seg": polygons(visible),
            "inmodal_seg_rle": ann["visible_mask"], "inmodal_bbox": bbox(visible),
            "inmodal_area": int(visible.sum()),
        })
    images = [{k: image[k] for k in ("id", "file_name", "width", "height")}
              for image in document["images"]]
    return {"images": images, "annotations": annotations, "categories": document["categories"]}


def convert(root: Path, to: str, out: Path) -> list[Path]:
    """Write OUT/<split>.json in the chosen layout for each split; returns the files."""
    if to not in FORMATS:
        raise InputError(f"unknown format {to!r}; choose from {', '.join(FORMATS)}")
    manifest = dataset.load_manifest(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in manifest["splits"]:
        document = dataset.load_annotations(root, split)
        converted = to_cocoa(document) if to == "cocoa" else to_kins2020(document)
        path = out / f"{split}.json"
        write_json(path, converted)
        written.append(path)
    return written
