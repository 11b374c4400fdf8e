"""Reading a dataset folder as instances for models: one item per annotated object.

Each item: the input image, the object's visible and amodal masks, its visible box, its occlusion
rate and its appearance ground truth — ovd: the scene without occluders; dyce: the input with the
object's own render (alpha = amodal mask) painted over it, i.e. the object de-occluded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ovbench.errors import InputError
from ovbench.formats import dataset
from ovbench.formats.masks import bbox, decode

NEEDED = ("id", "image_id", "segmentation", "visible_mask", "occlude_rate")


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image[..., :3])).permute(2, 0, 1).float() / 255.0


def holdout_images(image_ids, share: float) -> set:
    """The images kept out for validation: a fixed share of a split, the same for every seed and
    model (so that every run selects its checkpoint on the same images), at least one."""
    ids = sorted(image_ids)
    if share <= 0 or not ids:
        return set()
    order = np.random.default_rng(20190721).permutation(len(ids))
    count = min(len(ids) - 1, max(1, round(share * len(ids))))
    return {ids[k] for k in order[:count]}


class AmodalSplit(torch.utils.data.Dataset):
    """A split's annotated objects as model items. `holdout` and `part` carve it: "fit" (the
    split less its validation images), "validation", or "all"."""

    def __init__(self, root: Path, split: str = "test", size: int | None = None, holdout: float = 0.0,
                 part: str = "all", verify: bool = False):
        self.root = Path(root)
        manifest = dataset.load_manifest(self.root)
        if split not in manifest["splits"]:
            raise InputError(f"{root} has no split {split!r} (it has {', '.join(manifest['splits'])})")
        if part not in ("all", "fit", "validation"):
            raise ValueError(f"part must be all, fit or validation, got {part!r}")
        self.manifest, self.split, self.size = manifest, split, size
        self.split_dir = self.root / split
        document = dataset.load_annotations(self.root, split)
        if verify:
            dataset.verify_files(self.root, manifest, split, document)
        if part != "all" and holdout > 0:
            kept_out = holdout_images([image["id"] for image in document["images"]], holdout)
            keep = (lambda i: i in kept_out) if part == "validation" else (lambda i: i not in kept_out)
            document = {**document, "images": [i for i in document["images"] if keep(i["id"])],
                        "annotations": [a for a in document["annotations"] if keep(a["image_id"])]}
            self.name = f"{split} ({part}, {holdout:g} held out)"
        else:
            self.name = split
        self.images = {image["id"]: image for image in document["images"]}
        # Imported real photos have none; their items' `appearance` is then the input itself.
        self.has_appearance = all(image.get("appearance") for image in document["images"])
        self.items = []
        for ann in document["annotations"]:
            missing = [k for k in NEEDED if k not in ann]
            if missing:
                raise InputError(f"{split}/annotations.json annotation {ann.get('id', '?')} lacks "
                                f"{', '.join(missing)}: not an amodal dataset ovbench can use")
            self.items.append(ann)
        self.pairs = self._occlusion_pairs(document)

    @staticmethod
    def _occlusion_pairs(document) -> dict:
        """image id → [(front annotation id, back annotation id)] between annotated objects."""
        ids = {a["id"] for a in document["annotations"]}
        pairs: dict = {}
        for ann in document["annotations"]:
            for entry in ann.get("occluders", []):
                if entry["id"] in ids:
                    pairs.setdefault(ann["image_id"], []).append((entry["id"], ann["id"]))
        return pairs

    def __len__(self) -> int:
        return len(self.items)

    def _appearance(self, image: dict, ann: dict, pixels: np.ndarray) -> np.ndarray:
        names = image.get("appearance")
        if isinstance(names, str):
            return dataset.read_png(self.split_dir / names)[..., :3]
        if isinstance(names, dict) and str(ann["id"]) in names:
            rgba = dataset.read_png(self.split_dir / names[str(ann["id"])])
            alpha = rgba[..., 3:4] > 0
            return np.where(alpha, rgba[..., :3], pixels[..., :3])
        return pixels[..., :3]

    def __getitem__(self, index: int) -> dict:
        ann = self.items[index]
        image = self.images[ann["image_id"]]
        pixels = dataset.read_png(self.split_dir / image["file_name"])
        amodal, visible = decode(ann["segmentation"]), decode(ann["visible_mask"])
        item = {
            "image": _to_tensor(pixels),
            "appearance": _to_tensor(self._appearance(image, ann, pixels)),
            "amodal": torch.from_numpy(amodal)[None].float(),
            "visible": torch.from_numpy(visible)[None].float(),
            "box": torch.tensor(bbox(visible), dtype=torch.float32),
            "occlude_rate": float(ann["occlude_rate"]),
            "annotation_id": int(ann["id"]), "image_id": int(ann["image_id"]),
        }
        if self.size and self.size != pixels.shape[0]:
            item = resize_item(item, self.size, pixels.shape[0])
        return item


def resize_item(item: dict, size: int, original: int) -> dict:
    """Images bilinear, masks nearest, boxes scaled."""
    item = dict(item)
    for key in ("image", "appearance"):
        item[key] = F.interpolate(item[key][None], size=(size, size), mode="bilinear",
                                  align_corners=False, antialias=True)[0].clamp(0, 1)
    for key in ("amodal", "visible"):
        item[key] = F.interpolate(item[key][None], size=(size, size), mode="nearest")[0]
    item["box"] = item["box"] * (size / original)
    return item
