"""Where OVD composites get their whole vehicles (bases) and their occluder cut-outs.

Bases: `builtin` (procedural vehicles rendered on a street), `coco:ANN.json:IMAGES` (whole
instances only, read through pycocotools), `dir:DIR` (images with `<name>.mask.png` beside them,
the category the file name up to the first `_`). Photo bases are framed by a square crop kept
inside the photo where it fits; what still falls outside mirrors the photo.
Occluders: `builtin` (rendered people-like figures, poles, signs, boxes, bins, bicycles, vehicles),
`coco:ANN.json:IMAGES` (instance cut-outs; those cut by the photo's border are left out unless
kept), `dir:DIR` (RGBA cut-outs).

Specs are small picklable records; `make_base` / `make_cutout` turn them into pixels in any process.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from ovbench.assets.occluders import OCCLUDER_KINDS, build_occluder, street
from ovbench.assets.procedural import build_vehicle
from ovbench.errors import InputError
from ovbench.formats.fileio import member
from ovbench.formats.masks import box_slices, decode
from ovbench.generate.framing import frame_crop, frame_image, frame_mask
from ovbench.generate.ovd.composite import Cutout, Ground
from ovbench.generate.street import CATEGORY_OF_TYPE, YFOV, sky_image, street_lighting
from ovbench.renderers import Camera, SceneObject, look_at, shared_renderer
from ovbench.seeding import rng_for

# Street photos show cars far more often than buses and trucks.
TYPE_WEIGHTS = {"sedan": 0.2, "hatchback": 0.15, "suv": 0.15, "pickup": 0.07, "van": 0.07,
                "bus": 0.05, "truck": 0.05, "coupe": 0.06, "wagon": 0.06, "minivan": 0.06,
                "citycar": 0.06, "minibus": 0.02}
BUILTIN_CATEGORIES = ("car", "bus", "truck")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class BaseSpec:
    kind: str                 # builtin | coco | dir
    index: int                # position among the bases (seeds its random choices)
    group: str                # the vehicle: test vehicles never appear in train
    image: str = ""           # coco / dir: image file
    mask: str = ""            # dir: mask file
    segmentation: object = None  # coco: the instance's segmentation
    category: str = "car"


@dataclass
class Base:
    rgb: np.ndarray           # uint8 S×S×3, the whole, unoccluded scene
    amodal: np.ndarray        # bool S×S, the vehicle
    category: str
    model_id: str
    source: str
    ground: Ground | None = None  # the camera over the ground, for rendered bases


@dataclass
class Listing:
    specs: list
    description: str
    rejected: Counter = field(default_factory=Counter)


def _split_source(spec: str, what: str) -> tuple[str, list[str]]:
    kind, _, rest = spec.partition(":")
    if kind == "builtin" and not rest:
        return kind, []
    if kind == "coco":
        ann, sep, images = rest.rpartition(":")
        if sep and ann and images:
            return kind, [ann, images]
    if kind == "dir" and rest:
        return kind, [rest]
    raise InputError(f"bad {what} source {spec!r}: use builtin, coco:ANN.json:IMAGES_DIR or dir:DIR")


# --------------------------------------------------------------------------- COCO input

REQUIRED = {"images": ("id", "file_name", "width", "height"),
            "annotations": ("id", "image_id", "category_id", "segmentation", "bbox"),
            "categories": ("id", "name")}


def load_coco(path: str):
    """pycocotools COCO after checking the fields ovbench reads; InputError naming what is missing."""
    from pycocotools.coco import COCO

    file = Path(path)
    if not file.is_file():
        raise InputError(f"COCO annotation file not found: {file}")
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise InputError(f"{file.name} is not valid JSON: {exc}") from exc
    for section, keys in REQUIRED.items():
        if section not in data:
            raise InputError(f"{file.name}: missing top-level field {section!r}")
        for record in data[section]:
            missing = [k for k in keys if k not in record]
            if missing:
                raise InputError(f"{file.name}: {section} record {record.get('id', '?')} lacks "
                                f"{', '.join(missing)}")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def _category_ids(coco, names: list[str], file: str) -> dict[int, str]:
    """Ids of the named categories the file has (a COCO subset may lack some); none is an error."""
    by_name = {c["name"]: c["id"] for c in coco.dataset["categories"]}
    found = {by_name[n]: n for n in names if n in by_name}
    if not found:
        raise InputError(f"{Path(file).name}: no category named {', '.join(names)} "
                        f"(it has {', '.join(sorted(by_name)[:12])})")
    return found


def _coco_instances(ann_file: str, images: str, categories: list[str], what: str,
                    reject) -> Listing:
    """Instances of the named categories that `reject(coco, ann, image)` (a reason or None) keeps."""
    coco = load_coco(ann_file)
    wanted = _category_ids(coco, categories, ann_file)
    rejected: Counter = Counter()
    specs = []
    for ann in sorted(coco.dataset["annotations"], key=lambda a: a["id"]):
        if ann["category_id"] not in wanted:
            continue
        image = coco.imgs[ann["image_id"]]
        reason = reject(coco, ann, image)
        if reason:
            rejected[reason] += 1
            continue
        specs.append(BaseSpec("coco", len(specs), f"coco-{ann['id']}",
                              image=str(member(Path(images), image["file_name"], Path(ann_file).name)),
                              segmentation=_rle_of(coco, ann), category=wanted[ann["category_id"]]))
    _check_images_exist(specs)
    if not specs:
        raise InputError(f"no {what} of {', '.join(categories)} in {Path(ann_file).name}: "
                        f"rejected {_describe(rejected)}")
    return Listing(specs, f"COCO instances of {', '.join(categories)} from {Path(ann_file).name}",
                   rejected)


def _touches_border(ann, image) -> bool:
    x, y, w, h = ann["bbox"]
    return x <= 0.5 or y <= 0.5 or x + w >= image["width"] - 0.5 or y + h >= image["height"] - 0.5


def coco_bases(ann_file: str, images: str, categories: list[str], min_size: int) -> Listing:
    """Whole instances: not crowd, not touching the border, no other instance overlapping, the
    longer box side at least `min_size` (which bounds how far a base is upscaled)."""

    def reject(coco, ann, image):
        if ann.get("iscrowd", 0):
            return "crowd"
        if _touches_border(ann, image):
            return "touching the border"
        if max(ann["bbox"][2:]) < min_size:
            return f"smaller than {min_size} px"
        if _overlapped(coco, ann):
            return "overlapped by another instance"
        return None

    return _coco_instances(ann_file, images, categories, "eligible base instance", reject)


def _rle_of(coco, ann) -> dict:
    rle = coco.annToRLE(ann)
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode() if isinstance(counts, bytes) else counts}


def _overlapped(coco, ann) -> bool:
    from pycocotools import mask as mask_utils

    mine = coco.annToRLE(ann)
    x, y, w, h = ann["bbox"]
    for other in coco.imgToAnns[ann["image_id"]]:
        if other["id"] == ann["id"]:
            continue
        ox, oy, ow, oh = other["bbox"]
        if ox > x + w or oy > y + h or ox + ow < x or oy + oh < y:
            continue
        if mask_utils.area(mask_utils.merge([mine, coco.annToRLE(other)], intersect=True)) > 0:
            return True
    return False


def _describe(rejected: Counter) -> str:
    return ", ".join(f"{n} {why}" for why, n in rejected.most_common()) or "none found"


def _check_images_exist(specs) -> None:
    for spec in specs:
        if not Path(spec.image).is_file():
            raise InputError(f"image not found: {spec.image}")


def coco_occluders(ann_file: str, images: str, categories: list[str], min_size: int,
                   keep_border: bool = False) -> Listing:
    """Instance cut-outs; one touching its photo's border is cut straight there, so it is left
    out unless `keep_border`."""

    def reject(coco, ann, image):
        if ann.get("iscrowd", 0):
            return "crowd"
        if min(ann["bbox"][2:]) < min_size:
            return f"smaller than {min_size} px"
        if not keep_border and _touches_border(ann, image):
            return "touching the border (--keep-border-occluders keeps them)"
        return None

    return _coco_instances(ann_file, images, categories, "occluder instance", reject)


# --------------------------------------------------------------------------- folders

def _category_of_file(path: Path) -> str:
    return path.stem.split("_")[0]


def _read_mask(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 0


def dir_bases(folder: str, categories: list[str], min_size: int) -> Listing:
    """Images named CATEGORY_anything of the base categories, each with its mask, whose vehicle's
    longer box side is at least `min_size`."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"base folder not found: {root}")
    specs, rejected = [], Counter()
    for image in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.name.endswith(".mask.png")):
        if _category_of_file(image) not in categories:
            rejected["not named for a base category (CATEGORY_NAME.png)"] += 1
            continue
        mask = image.with_name(image.stem + ".mask.png")
        if not mask.is_file():
            raise InputError(f"{image.name} has no mask beside it (expected {mask.name})")
        vehicle = _read_mask(str(mask))
        with Image.open(image) as photo:
            width, height = photo.size
        if vehicle.shape != (height, width):
            raise InputError(f"mask {mask.name} is {vehicle.shape[1]}×{vehicle.shape[0]} but "
                            f"{image.name} is {width}×{height}")
        if vehicle.any() and max(s.stop - s.start for s in box_slices(vehicle)) < min_size:
            rejected[f"smaller than {min_size} px"] += 1
            continue
        specs.append(BaseSpec("dir", len(specs), f"dir-{image.stem}", image=str(image), mask=str(mask),
                              category=_category_of_file(image)))
    if not specs:
        raise InputError(f"no images with masks of {', '.join(categories)} in {root}: "
                        f"rejected {_describe(rejected)}")
    return Listing(specs, f"image folder {root.name} ({len(specs)} images)", rejected)


def dir_occluders(folder: str) -> Listing:
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"occluder folder not found: {root}")
    specs = []
    for path in sorted(root.glob("*.png")):
        with Image.open(path) as image:
            if image.mode != "RGBA":
                raise InputError(f"occluder {path.name} has no alpha channel (RGBA PNG cut-outs needed)")
            alpha = np.asarray(image)[..., 3] >= 128
        if not alpha.any():
            raise InputError(f"occluder {path.name} is fully transparent")
        if alpha[0].all() and alpha[-1].all() and alpha[:, 0].all() and alpha[:, -1].all():
            raise InputError(f"occluder {path.name} fills its whole frame: not a cut-out "
                            "(the object must be smaller than the image, on a transparent background)")
        specs.append(BaseSpec("dir", len(specs), f"dir-{path.stem}", image=str(path),
                              category=_category_of_file(path)))
    if not specs:
        raise InputError(f"no RGBA PNG cut-outs in {root}")
    return Listing(specs, f"cut-out folder {root.name} ({len(specs)} files)")


# --------------------------------------------------------------------------- listings

def list_bases(source: str, count_hint: int, seed: int, categories: list[str], min_size: int) -> Listing:
    kind, args = _split_source(source, "base")
    if kind == "builtin":
        types = list(TYPE_WEIGHTS)
        rng = rng_for(seed, "base-types")
        chosen = rng.choice(len(types), size=count_hint, p=list(TYPE_WEIGHTS.values()))
        specs = [BaseSpec("builtin", k, f"{types[t]}-{k:05d}", category=CATEGORY_OF_TYPE[types[t]])
                 for k, t in enumerate(chosen)]
        return Listing(specs, "procedural vehicles rendered on procedural streets")
    if kind == "coco":
        return coco_bases(*args, categories, min_size)
    return dir_bases(*args, categories, min_size)


def list_occluders(source: str, count_hint: int, categories: list[str], min_size: int,
                   keep_border: bool = False) -> Listing:
    kind, args = _split_source(source, "occluder")
    if kind == "builtin":
        specs = [BaseSpec("builtin", j, f"{OCCLUDER_KINDS[j % len(OCCLUDER_KINDS)]}-{j:05d}",
                          category=OCCLUDER_KINDS[j % len(OCCLUDER_KINDS)]) for j in range(count_hint)]
        return Listing(specs, f"rendered occluders ({', '.join(OCCLUDER_KINDS)})")
    if kind == "coco":
        return coco_occluders(*args, categories, min_size, keep_border)
    return dir_occluders(*args)


# --------------------------------------------------------------------------- pixels

def render_builtin_base(spec: BaseSpec, seed: int, size: int) -> Base:
    """A procedural vehicle on a street seen like a street photo, whole and fully in frame."""
    rng = rng_for(seed, "base", spec.index)
    kind = spec.group.rsplit("-", 1)[0]
    vehicle = build_vehicle(kind, rng)
    renderer = shared_renderer(size)
    centre = vehicle.bounds.mean(axis=0)
    radius = float(np.linalg.norm(vehicle.extents) / 2)
    for _ in range(20):
        road_angle = rng.uniform(0, np.pi)
        yaw = road_angle + rng.choice([0.0, np.pi]) + rng.normal(0, 0.08)
        pose = trimesh.transformations.rotation_matrix(yaw, (0, 0, 1))
        height = rng.uniform(1.2, 2.0)  # dash-cam to eye height
        distance = radius / math.sin(YFOV / 2) * rng.uniform(1.05, 1.4)
        horizontal = math.sqrt(max(distance ** 2 - (height - centre[2]) ** 2, 1.0))
        azimuth = rng.uniform(0, 2 * np.pi)
        eye = np.array([horizontal * math.cos(azimuth), horizontal * math.sin(azimuth), height])
        target = np.array([0.0, 0.0, centre[2]]) + rng.normal(0, 0.05 * radius, 3)
        camera = Camera(look_at(eye, target), yfov=YFOV)
        scenery = street(rng, road_angle, eye[:2], radius)
        sky = sky_image(size, rng)
        renderer.set_scene([SceneObject(vehicle, pose), SceneObject(scenery)], street_lighting(rng),
                           background=tuple(sky[-1, 0] / 255.0))
        ids, _ = renderer.instances(camera)
        amodal, _ = renderer.solo(camera, 0)
        inside = not (amodal[0].any() or amodal[-1].any() or amodal[:, 0].any() or amodal[:, -1].any())
        if inside and amodal.sum() >= 64 and np.array_equal(ids == 1, amodal):
            break
    else:
        raise RuntimeError(f"could not frame base {spec.group} whole after 20 tries")
    image = renderer.rgb(camera)
    grain = 1.0 + np.float32(0.025) * rng.standard_normal((size, size, 1), dtype=np.float32)
    road, background = ids == 2, ids == 0
    image[road] = np.clip(np.round(image[road] * grain[road]), 0, 255).astype(np.uint8)
    image[background] = np.clip(np.round(sky[background]), 0, 255).astype(np.uint8)
    return Base(image, amodal, spec.category, spec.group, "builtin", Ground(camera.pose, camera.yfov, size))


def _read_rgb(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def make_base(spec: BaseSpec, seed: int, size: int) -> Base:
    if spec.kind == "builtin":
        return render_builtin_base(spec, seed, size)
    rgb = _read_rgb(spec.image)
    if spec.kind == "coco":
        mask = decode(spec.segmentation)
        if mask.shape != rgb.shape[:2]:
            raise InputError(f"{Path(spec.image).name} is {rgb.shape[1]}×{rgb.shape[0]} but its "
                            f"annotation says {mask.shape[1]}×{mask.shape[0]}")
        source = "coco"
    else:
        mask = _read_mask(spec.mask)
        source = "dir"
    if not mask.any():
        raise InputError(f"the vehicle mask of {Path(spec.image).name} is empty")
    square = frame_crop(mask, rng_for(seed, "base", spec.index))
    image, amodal = frame_image(rgb, *square, size), frame_mask(mask, *square, size)
    return Base(image, amodal, spec.category, spec.group, source)


def render_builtin_cutout(spec: BaseSpec, seed: int, size: int) -> Cutout:
    """One rendered occluder, lit like a street scene, cropped to its exact silhouette."""
    rng = rng_for(seed, "occluder", spec.index)
    mesh = build_occluder(spec.category, rng)
    renderer = shared_renderer(size)
    renderer.set_scene([SceneObject(mesh)], street_lighting(rng), background=(0.5, 0.5, 0.5))
    centre = mesh.bounds.mean(axis=0)
    radius = float(np.linalg.norm(mesh.extents) / 2)
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.25)
    distance = radius / math.sin(YFOV / 2) * 1.02
    eye = centre + distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                        math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
    camera = Camera(look_at(eye, centre), yfov=YFOV)
    mask, _ = renderer.solo(camera, 0)
    rgb = renderer.rgb(camera)
    window = box_slices(mask)
    rgba = np.dstack([rgb[window], mask[window].astype(np.uint8) * 255])
    return Cutout(rgba, spec.category, "builtin", spec.group, round(float(mesh.extents[2]), 4))


def make_cutout(spec: BaseSpec, seed: int, size: int) -> Cutout:
    if spec.kind == "builtin":
        return render_builtin_cutout(spec, seed, size)
    if spec.kind == "dir":
        with Image.open(spec.image) as image:
            rgba = np.asarray(image.convert("RGBA"))
        window = box_slices(rgba[..., 3] >= 128)
        return Cutout(np.ascontiguousarray(rgba[window]), spec.category, "dir", spec.group)
    rgb = _read_rgb(spec.image)
    mask = decode(spec.segmentation)
    window = box_slices(mask)
    rgba = np.dstack([rgb[window], mask[window].astype(np.uint8) * 255])
    # Keep cut-outs at most twice the frame: they are only ever scaled down to the vehicle.
    scale = min(1.0, 2 * size / max(rgba.shape[:2]))
    if scale < 1.0:
        h, w = rgba.shape[:2]
        rgba = np.asarray(Image.fromarray(rgba).resize((max(1, round(w * scale)),
                                                        max(1, round(h * scale))), Image.BILINEAR))
    return Cutout(rgba, spec.category, "coco", spec.group)
