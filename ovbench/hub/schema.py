"""The Hub form of ovbench data: `datasets` features per kind, and records ↔ rows.

One row per image. Every field of the folder's COCO records has a column (so a row converts back
to the exact record); a few columns are added for people using the Hub copy directly: category
names and the masks as 1-bit PNG images. File fields hold the file's bytes unchanged, with the
file's name inside the dataset folder as the image's `path`.

Pool: one row per silhouette (1-bit PNG) with its model, view and box.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from datasets import Features, Image, List, Value
from PIL import Image as PILImage

from ovbench.formats import masks as masks_lib

RLE = {"size": List(Value("int32")), "counts": Value("string")}
BOX = List(Value("int32"), length=4)
PIXELS = List({"id": Value("int64"), "pixels": Value("int64")})


@dataclass(frozen=True)
class Field:
    key: str             # in the COCO record
    column: str          # in the Hub row
    feature: object
    file: bool = False   # the record names a file; the row holds its bytes (and name as `path`)


def _fields(*triples) -> tuple[Field, ...]:
    return tuple(Field(*triple) for triple in triples)


IMAGE_FIELDS = {
    "ovd": _fields(("id", "image_id", Value("int64")), ("file_name", "image", Image(), True),
                   ("width", "width", Value("int32")), ("height", "height", Value("int32")),
                   ("appearance", "appearance", Image(), True),
                   ("requested_occlusion", "requested_occlusion", Value("float64")),
                   ("requested_occluders", "requested_occluders", Value("int32"))),
    "dyce": _fields(("id", "image_id", Value("int64")), ("file_name", "image", Image(), True),
                    ("width", "width", Value("int32")), ("height", "height", Value("int32")),
                    ("depth_file", "depth", Image(), True), ("instances_file", "instances", Image(), True),
                    ("objects", "scene_objects", List(Value("int64"))),
                    ("occlusion_graph", "occlusion_graph",
                     List({"front": Value("int64"), "back": Value("int64"), "pixels": Value("int64")})),
                    ("depth_order", "depth_order", List(Value("int64"))), ("scene", "scene", Value("string"))),
    # imported real photos: the photo each record was framed from and the crop (x0, y0, side)
    "real": _fields(("id", "image_id", Value("int64")), ("file_name", "image", Image(), True),
                    ("width", "width", Value("int32")), ("height", "height", Value("int32")),
                    ("source_image", "source_image", Value("string")),
                    ("crop", "crop", List(Value("int32"), length=3))),
}
_OBJECT_COMMON = (
    ("id", "id", Value("int64")), ("image_id", "image_id", Value("int64")),
    ("category_id", "category_id", Value("int32")), ("iscrowd", "iscrowd", Value("int32")),
    ("segmentation", "segmentation", RLE), ("bbox", "bbox", BOX), ("area", "area", Value("int64")),
    ("inmodal_seg", "inmodal_seg", RLE), ("inmodal_bbox", "inmodal_bbox", BOX),
    ("visible_mask", "visible_mask", RLE), ("invisible_mask", "invisible_mask", RLE),
    ("occlude_rate", "occlude_rate", Value("float64")), ("occluders", "occluders", PIXELS),
    ("order", "order", Value("int32")), ("model_id", "model_id", Value("string")),
    ("source", "source", Value("string")),
)
OBJECT_FIELDS = {"ovd": _fields(*_OBJECT_COMMON), "real": _fields(*_OBJECT_COMMON),
                 "dyce": _fields(*_OBJECT_COMMON, ("depth", "depth", Value("float64")))}
_OCCLUDER_COMMON = (
    ("id", "id", Value("int64")), ("image_id", "image_id", Value("int64")),
    ("category", "category", Value("string")), ("source", "source", Value("string")),
    ("segmentation", "segmentation", RLE), ("bbox", "bbox", BOX), ("area", "area", Value("int64")),
    ("order", "order", Value("int32")),
)
OCCLUDER_FIELDS = {"ovd": _fields(*_OCCLUDER_COMMON, ("scale", "scale", Value("float64"))),
                   "dyce": _fields(*_OCCLUDER_COMMON), "real": _fields(*_OCCLUDER_COMMON)}
# Columns added for readers of the Hub copy; dropped when rows become records again.
OBJECT_EXTRAS = {"category": Value("string"), "amodal_image": Image(), "visible_image": Image()}
DYCE_OBJECT_APPEARANCE = "appearance"   # dyce: the object's own RGBA render (image record's `appearance`)

POOL_FEATURES = Features({
    "silhouette": Image(), "model_id": Value("string"), "source": Value("string"),
    "view": Value("int16"), "azimuth": Value("float32"), "elevation": Value("float32"),
    "distance": Value("float32"), "bbox": BOX,
})
POOL_COLUMNS = ("model_id", "source", "view", "azimuth", "elevation", "distance", "bbox")


class SchemaError(ValueError):
    """A record holds a field the Hub schema has no column for."""


def features(kind: str) -> Features:
    objects = {f.column: f.feature for f in OBJECT_FIELDS[kind]} | OBJECT_EXTRAS
    if kind == "dyce":
        objects[DYCE_OBJECT_APPEARANCE] = Image()
    return Features({f.column: f.feature for f in IMAGE_FIELDS[kind]}
                    | {"objects": List(objects),
                       "occluders": List({f.column: f.feature for f in OCCLUDER_FIELDS[kind]})})


def mask_png(mask: np.ndarray) -> bytes:
    """A boolean mask as a 1-bit PNG."""
    buffer = io.BytesIO()
    PILImage.fromarray(mask).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def mask_from_png(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("1"), dtype=bool)


def _columns(record: dict, fields: tuple[Field, ...], read, where: str) -> dict:
    unknown = sorted(set(record) - {f.key for f in fields})
    if unknown:
        raise SchemaError(f"{where}: no Hub column for field(s) {', '.join(unknown)}")
    return {f.column: ({"bytes": read(record[f.key]), "path": record[f.key]} if f.file else record[f.key])
            for f in fields}


def _record(row: dict, fields: tuple[Field, ...]) -> dict:
    return {f.key: row[f.column]["path"] if f.file else row[f.column] for f in fields}


def to_row(kind: str, image: dict, annotations: list, occluders: list, category_names: dict,
           read) -> dict:
    """One image's records as a Hub row; `read(name)` returns the bytes of a file of the split."""
    where = f"image {image.get('id')}"
    image = dict(image)
    appearance = image.pop("appearance") if kind == "dyce" else None
    row = _columns(image, IMAGE_FIELDS[kind], read, where)
    row["objects"] = []
    for ann in annotations:
        obj = _columns(ann, OBJECT_FIELDS[kind], read, f"{where} annotation {ann.get('id')}")
        obj.update(category=category_names[ann["category_id"]],
                   amodal_image={"bytes": mask_png(masks_lib.decode(ann["segmentation"])), "path": None},
                   visible_image={"bytes": mask_png(masks_lib.decode(ann["visible_mask"])), "path": None})
        if kind == "dyce":
            name = appearance.get(str(ann["id"]))
            obj[DYCE_OBJECT_APPEARANCE] = {"bytes": read(name), "path": name} if name else None
        row["objects"].append(obj)
    row["occluders"] = [_columns(o, OCCLUDER_FIELDS[kind], read, f"{where} occluder {o.get('id')}")
                        for o in occluders]
    return row


def from_row(kind: str, row: dict) -> tuple[dict, list, list, dict]:
    """A Hub row (images undecoded) back to (image record, annotations, occluders, files by name)."""
    image = _record(row, IMAGE_FIELDS[kind])
    files = {row[f.column]["path"]: row[f.column]["bytes"] for f in IMAGE_FIELDS[kind] if f.file}
    annotations = [_record(obj, OBJECT_FIELDS[kind]) for obj in row["objects"]]
    if kind == "dyce":
        renders = {str(obj["id"]): obj[DYCE_OBJECT_APPEARANCE] for obj in row["objects"]
                   if obj[DYCE_OBJECT_APPEARANCE] is not None}
        image["appearance"] = {key: value["path"] for key, value in renders.items()}
        files.update({value["path"]: value["bytes"] for value in renders.values()})
    occluders = [_record(o, OCCLUDER_FIELDS[kind]) for o in row["occluders"]]
    return image, annotations, occluders, files

