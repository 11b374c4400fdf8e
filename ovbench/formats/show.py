"""`ovbench show DIR|POOL.h5 -o sheet.png`: a contact sheet for a quick look at a dataset or a pool.

Dataset: one row per image: the input, the visible part of each object in blue, the invisible part
in red, and the ground-truth appearance (ovd: the scene without occluders; dyce: each object alone).
Pool: one row per model, its id and a dozen of its views spread over the view grid, so that a
wrong up or front axis shows at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ovbench.errors import InputError
from ovbench.formats import dataset
from ovbench.formats.masks import decode
from ovbench.formats.poolfile import SilhouettePool

BLUE, RED = np.array([40, 90, 255]), np.array([255, 40, 40])
POOL_COLUMNS = 12       # views per model
POOL_TILE = 96          # pixels: silhouettes are shown at most this large
LABEL_WIDTH = 150       # pixels: the model id left of its row


def sheet(path: Path, split: str | None = None, count: int = 8, seed: int = 0) -> Image.Image:
    """A pool file's views (`count` models) or a dataset folder's contact sheet (`count` images)."""
    if count < 1:
        raise InputError(f"`count` must be at least 1, got {count}")
    if Path(path).suffix != ".h5":
        return contact_sheet(path, split, count, seed)
    if split is not None:
        raise InputError(f"{path} is a silhouette pool: it has no splits (drop `split`)")
    return pool_sheet(path, count, seed)


def _chosen(total: int, count: int, seed: int) -> list[int]:
    """`count` of `total` indices picked by seed, in order."""
    return sorted(np.random.default_rng(seed).choice(total, min(count, total), replace=False))


def pool_sheet(path: Path, count: int = 8, seed: int = 0) -> Image.Image:
    """One row per model (`count` of them, picked by seed, in file order): its id, then up to
    POOL_COLUMNS of its views evenly spread over its view grid, white on black tiles."""
    with SilhouettePool(path) as pool:
        models = list(dict.fromkeys(pool.model_id))  # in file order
        most_views = int(np.unique(pool.model_id, return_counts=True)[1].max())
        columns, tile = min(POOL_COLUMNS, most_views), min(pool.width, POOL_TILE)
        rows = []
        for k in _chosen(len(models), count, seed):
            views = np.flatnonzero(pool.model_id == models[k])
            picked = views[np.unique(np.linspace(0, len(views) - 1, columns).round().astype(int))]
            row = Image.new("L", (LABEL_WIDTH + columns * (tile + 2), tile + 2), 60)
            ImageDraw.Draw(row).text((4, 4), models[k][:24], fill=255)
            for column, index in enumerate(picked):
                silhouette = Image.fromarray(pool[int(index)].astype(np.uint8) * 255).resize((tile, tile))
                row.paste(silhouette, (LABEL_WIDTH + column * (tile + 2), 1))
            rows.append(np.asarray(row))
    return Image.fromarray(np.concatenate(rows)).convert("RGB")


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
    if names is None:  # imported real photos: no appearance ground truth, a black panel
        return canvas
    for ann in sorted(annotations, key=lambda a: -a.get("order", 0)):
        rgba = dataset.read_png(split_dir / names[str(ann["id"])])
        alpha = rgba[..., 3:] / 255.0
        canvas = (canvas * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)
    return canvas


def contact_sheet(root: Path, split: str | None = None, count: int = 8, seed: int = 0) -> Image.Image:
    manifest = dataset.load_manifest(root)
    split = split or next(iter(manifest["splits"]))
    if split not in manifest["splits"]:
        raise InputError(f"{root} has no split {split!r} (it has {', '.join(manifest['splits'])})")
    split_dir = Path(root) / split
    document = dataset.load_annotations(root, split)
    by_image: dict = {}
    for ann in document["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = document["images"]
    rows = []
    for index in _chosen(len(images), count, seed):
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
