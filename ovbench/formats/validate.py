"""`ovbench validate DIR`: every invariant of the dataset format, checked from the files alone.

Deliberately shares no helpers with the generators: masks are decoded with pycocotools directly,
images read with PIL, and every rule is recomputed from those.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ovbench.errors import InputError
from ovbench.formats.dataset import SPLIT_NAME, files_of
from ovbench.formats.fileio import member

REQUIRED_ANNOTATION = ("id", "image_id", "category_id", "iscrowd", "segmentation", "bbox", "area",
                       "inmodal_seg", "inmodal_bbox", "visible_mask", "invisible_mask",
                       "occlude_rate", "occluders", "order")


def _mask(rle: dict) -> np.ndarray:
    counts = rle["counts"]
    return mask_utils.decode({"size": rle["size"],
                              "counts": counts.encode() if isinstance(counts, str) else counts}
                             ).astype(bool)


def _box(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


class Unreadable(Exception):
    """A file a rule needs cannot be read: reported as 'FILE: rule'."""

    def __init__(self, name: str, rule: str):
        super().__init__(f"{name}: {rule}")
        self.name, self.rule = name, rule


def _image(path: Path, split_dir: Path) -> np.ndarray:
    name = f"{split_dir.name}/{path.relative_to(split_dir).as_posix()}"
    if not path.is_file():
        raise Unreadable(name, "file missing")
    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise Unreadable(name, f"not a readable image ({exc})") from None


class Report:
    def __init__(self, limit: int = 50):
        self.problems: list[str] = []
        self.limit = limit
        self.count = 0

    def fail(self, where: str, rule: str, detail: str = "") -> None:
        self.count += 1
        if len(self.problems) < self.limit:
            self.problems.append(f"{where}: {rule}" + (f" ({detail})" if detail else ""))


def check_checksums(root: Path, manifest: dict, report: Report) -> None:
    """Every file listed with its sha256, and nothing else beside manifest.json."""
    listed = manifest.get("files", {})
    for name, expected in listed.items():
        try:
            path = member(root, name)
        except InputError:
            report.fail(name, "unsafe file name in manifest.json (leads outside the folder)")
            continue
        if not path.is_file():
            report.fail(name, "listed in manifest.json but missing")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            report.fail(name, "sha256 differs from manifest.json")
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and name != "manifest.json" and name not in listed:
            report.fail(name, "not listed in manifest.json")


def _check_annotation(split_dir: Path, where: str, ann: dict, image: dict, pixels: np.ndarray,
                      appearance, occluder_masks: dict, other_amodal: dict, min_visible: int,
                      report: Report) -> None:
    missing = [k for k in REQUIRED_ANNOTATION if k not in ann]
    if missing:
        report.fail(where, "annotation lacks fields", ", ".join(missing))
        return
    amodal, visible = _mask(ann["segmentation"]), _mask(ann["visible_mask"])
    invisible, inmodal = _mask(ann["invisible_mask"]), _mask(ann["inmodal_seg"])
    if amodal.shape != (image["height"], image["width"]):
        report.fail(where, "mask size differs from the image", f"{amodal.shape}")
        return
    if not np.array_equal(visible, inmodal):
        report.fail(where, "inmodal_seg differs from visible_mask")
    if (visible & ~amodal).any():
        report.fail(where, "visible not inside amodal", f"{int((visible & ~amodal).sum())} px")
    if not np.array_equal(invisible, amodal & ~visible):
        report.fail(where, "invisible != amodal − visible")
    area = int(amodal.sum())
    if ann["area"] != area or ann["bbox"] != _box(amodal):
        report.fail(where, "area/bbox do not match the amodal mask")
    if ann["inmodal_bbox"] != _box(visible):
        report.fail(where, "inmodal_bbox does not match the visible mask")
    if area and abs(ann["occlude_rate"] - (1 - visible.sum() / area)) > 1e-9:
        report.fail(where, "occlude_rate does not match the masks",
                    f"{ann['occlude_rate']} vs {1 - visible.sum() / area}")
    if visible.sum() < min_visible:
        report.fail(where, f"fewer than {min_visible} visible pixels", str(int(visible.sum())))
    cover = np.zeros_like(amodal)
    for entry in ann["occluders"]:
        mask = occluder_masks.get(entry["id"], other_amodal.get(entry["id"]))
        if mask is None:
            report.fail(where, "lists an occluder that does not exist", str(entry["id"]))
            continue
        cover |= mask
    # An imported photo's (`source_image`) hidden part was drawn by annotators, not computed from
    # its occluders: what hides it need not be annotated.
    if "source_image" not in image and (invisible & ~cover).any():
        report.fail(where, "invisible pixels not covered by any listed occluder",
                    f"{int((invisible & ~cover).sum())} px")
    if appearance is not None and appearance.ndim == 3 and appearance.shape[2] == 3:
        if not np.array_equal(appearance[visible], pixels[visible][:, :3]):
            report.fail(where, "appearance differs from the input image on visible pixels")


def validate(root: Path, limit: int = 50) -> Report:
    """Check a dataset folder; the report lists 'FILE: rule (detail)' for each violation."""
    root = Path(root)
    report = Report(limit)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        report.fail("manifest.json", "missing (not a dataset, or an unfinished run)")
        return report
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.fail("manifest.json", "not readable JSON", str(exc))
        return report
    if not isinstance(manifest, dict) or not all(isinstance(manifest.get(k, {}), dict) for k in ("splits", "files")):
        report.fail("manifest.json", "not an ovbench manifest (splits and files must be mappings)")
        return report
    check_checksums(root, manifest, report)
    min_visible = int(manifest.get("config", {}).get("min_visible", 0))
    models_by_split = {}
    for split in manifest.get("splits", {}):
        if not isinstance(split, str) or not SPLIT_NAME.fullmatch(split):
            report.fail("manifest.json", "unsafe split name", repr(split))
            continue
        split_dir = root / split
        ann_path = split_dir / "annotations.json"
        where_file = f"{split}/annotations.json"
        if not ann_path.is_file():
            report.fail(where_file, "missing")
            continue
        try:
            coco = COCO()
            coco.dataset = json.loads(ann_path.read_text())
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
        except Exception as exc:  # any failure here means pycocotools cannot read the file
            report.fail(where_file, "not readable by pycocotools", f"{type(exc).__name__}: {exc}")
            continue
        if manifest["splits"][split]["images"] != len(coco.imgs):
            report.fail(where_file, "image count differs from manifest.json")
        occluders = {o["id"]: _mask(o["segmentation"]) for o in coco.dataset.get("occluders", [])}
        models_by_split[split] = {a.get("model_id") for a in coco.dataset["annotations"]}
        for image_id, image in coco.imgs.items():
            try:
                _check_image(split_dir, where_file, image, coco.imgToAnns[image_id], occluders, min_visible,
                             report)
            except Unreadable as exc:
                report.fail(exc.name, exc.rule)
            except InputError as exc:  # a file name leading out of the folder
                report.fail(where_file, "unsafe file name", str(exc))
    splits = list(models_by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            shared_models = (models_by_split[a] & models_by_split[b]) - {None}
            if shared_models:
                report.fail(f"{a}/{b}", "splits share vehicle models",
                            ", ".join(sorted(shared_models)[:5]))
    return report


def _check_image(split_dir: Path, where_file: str, image: dict, anns: list, occluders: dict, min_visible: int,
                 report: Report) -> None:
    for name in files_of(image):
        member(split_dir, name)
    pixels = _image(split_dir / image["file_name"], split_dir)
    amodal_of = {a["id"]: _mask(a["segmentation"]) for a in anns}
    appearance_names = image.get("appearance")
    shared = _image(split_dir / appearance_names, split_dir) if isinstance(appearance_names, str) else None
    if image.get("instances_file"):
        _check_scene(split_dir, f"{split_dir.name}/{image['file_name']}", image, anns, amodal_of,
                     occluders, min_visible, report)
    for ann in anns:
        where = f"{where_file} annotation {ann['id']}"
        appearance = shared
        if isinstance(appearance_names, dict):
            appearance = _check_object_appearance(split_dir, where, ann, appearance_names,
                                                  amodal_of[ann["id"]], pixels, report)
        _check_annotation(split_dir, where, ann, image, pixels, appearance, occluders,
                          amodal_of, min_visible, report)


def _check_scene(split_dir: Path, where: str, image: dict, anns: list, amodal_of: dict,
                 occluders: dict, min_visible: int, report: Report) -> None:
    """dyce: visible masks are the instance map's objects (so no pixel is visible twice, and
    their union is its foreground, less objects too small to annotate); the occlusion graph
    agrees with what is visible."""
    instances = _image(split_dir / image["instances_file"], split_dir).astype(np.int64)
    index = {object_id: k + 1 for k, object_id in enumerate(image["objects"])}
    covered = np.zeros(instances.shape, np.int64)
    for ann in anns:
        visible = _mask(ann["visible_mask"])
        covered += visible
        if not np.array_equal(visible, instances == index.get(ann["id"], -1)):
            report.fail(where, "visible mask differs from the instance map", f"annotation {ann['id']}")
    if (covered > 1).any():
        report.fail(where, "a pixel is visible in two objects")
    rest = (instances > 0) & (covered == 0)
    for k in np.unique(instances[rest]):
        if (instances == k).sum() >= min_visible:
            report.fail(where, "instance-map object with enough visible pixels is not annotated", str(k))
    for edge in image.get("occlusion_graph", []):
        front = amodal_of.get(edge["front"], occluders.get(edge["front"]))
        back = amodal_of.get(edge["back"], occluders.get(edge["back"]))
        if front is None or back is None:
            report.fail(where, "occlusion graph names an unknown object", str(edge))
            continue
        shared = front & back
        if int(shared.sum()) != edge["pixels"]:
            report.fail(where, "occlusion graph pixel count differs from the masks", str(edge))
        if 2 * int((shared & (instances == index[edge["back"]])).sum()) > int(shared.sum()):
            report.fail(where, "occlusion graph says front, but the back object shows on most shared pixels",
                        str(edge))


def _check_object_appearance(split_dir: Path, where: str, ann: dict, names: dict, amodal: np.ndarray,
                             pixels: np.ndarray, report: Report):
    """dyce: the object's RGBA render alone; its alpha must equal the amodal mask. Returns RGB."""
    name = names.get(str(ann["id"]))
    if name is None or not (split_dir / name).is_file():
        report.fail(where, "appearance file missing", str(name))
        return None
    rgba = _image(split_dir / name, split_dir)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or not np.array_equal(rgba[..., 3] > 0, amodal):
        report.fail(where, "appearance alpha differs from the amodal mask")
    return rgba[..., :3]
