"""`ovbench show DIR -o sheet.png`: a contact sheet for a quick look at a dataset.

One row per image: the input, the visible part of each object in blue, the invisible part in red,
and the ground-truth appearance (ovd: the scene without occluders; dyce: each object alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ovbench import dataset
from ovbench.errors import UserError
from ovbench.masks import decode

BLUE, RED = np.array([40, 90, 255]), np.array([255, 40, 40])


def _tint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32)
    out[mask] = 0.45 * out[mask] + 0.55 * colour
    return out.astype(np.uint8)


def _appearance(split_dir: Path, image: dict, annotations: list, shape) -> np.ndarray:
    """The appearance ground truth as one RGB picture (dyce: the objects alone, back to front)."""
    names = image.get("appearance")
    if isinstance(names, str):
        return dataset.read_png(split_dir / names)[..., :3]
    canvas = np.zeros(shape, np.uint8)
    for ann in sorted(annotations, key=lambda a: -a.get("order", 0)):
        rgba = dataset.read_png(split_dir / names[str(ann["id"])])
        alpha = rgba[..., 3:] / 255.0
        canvas = (canvas * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)
    return canvas


def contact_sheet(root: Path, split: str | None = None, count: int = 8, seed: int = 0) -> Image.Image:
    manifest = dataset.load_manifest(root)
    split = split or next(iter(manifest["splits"]))
    if split not in manifest["splits"]:
        raise UserError(f"{root} has no split {split!r} (it has {', '.join(manifest['splits'])})")
    split_dir = Path(root) / split
    document = json.loads((split_dir / "annotations.json").read_text())
    by_image: dict = {}
    for ann in document["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = document["images"]
    chosen = sorted(np.random.default_rng(seed).choice(len(images), min(count, len(images)),
                                                       replace=False))
    rows = []
    for index in chosen:
        image = images[index]
        rgb = dataset.read_png(split_dir / image["file_name"])[..., :3]
        annotations = by_image.get(image["id"], [])
        visible = np.zeros(rgb.shape[:2], bool)
        invisible = np.zeros(rgb.shape[:2], bool)
        for ann in annotations:
            visible |= decode(ann["visible_mask"])
            invisible |= decode(ann["invisible_mask"])
        rows.append(np.concatenate([rgb, _tint(rgb, visible, BLUE), _tint(rgb, invisible, RED),
                                    _appearance(split_dir, image, annotations, rgb.shape)], axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    header = Image.new("RGB", (sheet.width, 16), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for k, title in enumerate(("input", "visible", "invisible", "appearance")):
        draw.text((k * sheet.width // 4 + 4, 2), title, fill=(0, 0, 0))
    full = Image.new("RGB", (sheet.width, sheet.height + 16))
    full.paste(header, (0, 0))
    full.paste(sheet, (0, 16))
    return full
