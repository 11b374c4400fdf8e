"""`ovbench convert DIR --to cocoa|kins2020 -o OUT`: the annotation layouts of other amodal datasets.

- cocoa: COCOA's original layout (Zhu et al. 2017): one record per image with `regions` (every
  object, occluders included: amodal polygon `segmentation`, `name`, `area`, `isStuff`,
  `occlude_rate`, `order` with 1 = front-most, and RLE `visible_mask` / `invisible_mask` when
  occluded) and `depth_constraint` ("a-b,…": region a is in front of region b where they overlap).
- kins2020: KINS's COCO-style keys: amodal `segmentation` (polygons), `bbox`, `area`, and visible
  `inmodal_seg` (polygons), `inmodal_bbox`, `inmodal_area`.

Polygons trace the outer boundary of each connected part (holes are not kept: both formats use
plain polygons); the RLE fields are exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from skimage import measure

from ovbench import dataset
from ovbench.errors import UserError
from ovbench.fileio import write_json
from ovbench.masks import bbox, decode, encode

FORMATS = ("cocoa", "kins2020")


def polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer boundaries of the mask's parts as COCO polygons [x1, y1, x2, y2, ...], largest first."""
    padded = np.pad(mask.astype(np.uint8), 1)
    contours = measure.find_contours(padded, 0.5)
    result = []
    for contour in contours:
        if len(contour) < 3:
            continue
        points = contour[:, ::-1] - 1.0 + 0.5  # (row, col) → (x, y); undo the pad; pixel centres
        points = np.clip(points, 0, [mask.shape[1], mask.shape[0]])
        result.append((abs(_signed_area(points)), [round(float(v), 2) for v in points.ravel()]))
    return [poly for _, poly in sorted(result, key=lambda item: -item[0]) if len(poly) >= 6]


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
    occluders = [o for o in document.get("occluders", []) if o["image_id"] == image_id]
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
            outline = polygons(obj["amodal"])
            region = {"segmentation": outline[0] if outline else [], "name": obj["name"],
                      "area": area, "isStuff": 0, "occlude_rate": rate, "order": k}
            if rate > 0:
                region["visible_mask"] = encode(obj["visible"])
                region["invisible_mask"] = encode(obj["amodal"] & ~obj["visible"])
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
            "iscrowd": 0, "segmentation": polygons(amodal), "bbox": bbox(amodal),
            "area": int(amodal.sum()), "inmodal_seg": polygons(visible),
            "inmodal_bbox": bbox(visible), "inmodal_area": int(visible.sum()),
        })
    images = [{k: image[k] for k in ("id", "file_name", "width", "height")}
              for image in document["images"]]
    return {"images": images, "annotations": annotations, "categories": document["categories"]}


def convert(root: Path, to: str, out: Path) -> list[Path]:
    """Write OUT/<split>.json in the chosen layout for each split; returns the files."""
    if to not in FORMATS:
        raise UserError(f"unknown format {to!r}; choose from {', '.join(FORMATS)}")
    manifest = dataset.load_manifest(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in manifest["splits"]:
        document = json.loads((Path(root) / split / "annotations.json").read_text())
        converted = to_cocoa(document) if to == "cocoa" else to_kins2020(document)
        path = out / f"{split}.json"
        write_json(path, converted)
        written.append(path)
    return written
