"""The dataset folder shared by ovd and dyce (and read by training, evaluation and publishing).

    <root>/manifest.json                 name, kind, version, seed, config, counts, sha256 of every file
    <root>/<split>/images/<id>.png       the input (occluded) image
    <root>/<split>/appearance/...png     ground-truth appearance (names in the image records)
    <root>/<split>/annotations.json      COCO-style, readable by pycocotools.coco.COCO unchanged

Building is resumable: workers write each item's files, then its record under `<root>/.parts/`
(the record last, atomically, so a record means the item is complete). `finish` assembles the
annotation files in id order, hashes every file and writes manifest.json last: a folder with a
manifest is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from ovbench import __version__
from ovbench.errors import UserError
from ovbench.fileio import atomic_path, remove_stale_temporaries, write_json

MANIFEST = "manifest.json"
PARTS = ".parts"
PNG_LEVEL = 3  # zlib level: within ~3% of level 6's size at under half its time on renders
# Ids: image ids are unique across splits; object ids are image_id * OBJECT_STRIDE + k.
OBJECT_STRIDE = 1000


def write_png(path: Path, array: np.ndarray) -> None:
    """Atomic PNG write (uint8 H×W, H×W×3 or H×W×4; 16-bit depth maps as uint16 H×W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=PNG_LEVEL)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Item:
    """One image's records: the COCO image, its annotations, and extra top-level lists."""

    split: str
    image: dict
    annotations: list
    extra: dict  # e.g. {"occluders": [...]} for ovd


@dataclass
class DatasetSummary:
    """What a generator made: counts per split, time, mean occlusion, rejected inputs."""

    path: Path
    counts: dict
    seconds: float
    mean_occlusion: float = 0.0
    rejected: dict = field(default_factory=dict)


def mean_occlusion(root: Path, splits: list[str]) -> float:
    rates = []
    for split in splits:
        document = json.loads((Path(root) / split / "annotations.json").read_text())
        rates += [a["occlude_rate"] for a in document["annotations"]]
    return float(np.mean(rates)) if rates else 0.0


def _item_path(root: Path, split: str, image_id: int) -> Path:
    return root / PARTS / split / f"{image_id:08d}.json"


def write_item(root: Path, item: Item) -> None:
    """Record a finished item (its files must already be written)."""
    path = _item_path(root, item.split, item.image["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"image": item.image, "annotations": item.annotations, "extra": item.extra})


def item_done(root: Path, split: str, image_id: int) -> bool:
    return _item_path(root, split, image_id).exists()


def start(root: Path, kind: str, config: dict, resume: bool) -> bool:
    """Prepare `root` for building; False when it already holds the finished dataset (resume)."""
    root = Path(root)
    manifest = root / MANIFEST
    if manifest.exists():
        if not resume:
            raise UserError(f"{root} already holds a dataset; pass --resume to keep it, or delete it")
        saved = json.loads(manifest.read_text())
        if saved.get("config") != config:
            raise UserError(f"{root} was made with other settings; delete it or change --out")
        return False
    parts = root / PARTS
    config = {**config, "kind": kind}
    if parts.exists():
        if not resume:
            raise UserError(f"an interrupted run left {parts}; rerun with --resume to finish it, "
                            "or delete that folder to start over")
        saved = json.loads((parts / "config.json").read_text())
        changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        if changed:
            raise UserError(f"--resume with different settings ({', '.join(changed)}) than the "
                            f"interrupted run in {root}; use the same settings or delete it")
        for folder in [parts, *parts.iterdir(), *root.glob("*/*")]:
            if folder.is_dir():
                remove_stale_temporaries(folder)
    elif root.exists() and any(root.iterdir()):
        raise UserError(f"{root} exists and is not an ovbench dataset; choose another --out")
    else:
        try:
            parts.mkdir(parents=True)
        except OSError as exc:
            raise UserError(f"cannot create {root}: {exc.strerror}") from exc
        write_json(parts / "config.json", config)
    return True


def finish(root: Path, name: str, kind: str, config: dict, categories: list, splits: list[str],
           sources: dict) -> dict:
    """Assemble annotations.json per split, hash every file, write manifest.json; returns it."""
    root = Path(root)
    counts = {}
    for split in splits:
        images, annotations, extra = [], [], {}
        for path in sorted((root / PARTS / split).glob("*.json")):
            record = json.loads(path.read_text())
            images.append(record["image"])
            annotations.extend(record["annotations"])
            for key, values in record["extra"].items():
                extra.setdefault(key, []).extend(values)
        document = {
            "info": {"description": f"ovbench {kind} dataset, split {split}",
                     "version": __version__},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": categories, **extra,
        }
        (root / split).mkdir(parents=True, exist_ok=True)
        write_json(root / split / "annotations.json", document)
        counts[split] = {"images": len(images), "annotations": len(annotations)}
    files = {path.relative_to(root).as_posix(): sha256(path)
             for path in sorted(root.rglob("*"))
             if path.is_file() and PARTS not in path.relative_to(root).parts and path.name != MANIFEST}
    manifest = {
        "name": name, "kind": kind, "ovbench_version": __version__, "seed": config.get("seed"),
        "config": config, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "splits": counts, "sources": sources, "files": files,
    }
    write_json(root / MANIFEST, manifest)
    shutil.rmtree(root / PARTS)
    return manifest


def discard(root: Path) -> None:
    """Remove an unfinished build (its parts, and the folder if nothing else is left in it)."""
    root = Path(root)
    shutil.rmtree(root / PARTS, ignore_errors=True)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def load_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        if (Path(root) / PARTS).exists():
            raise UserError(f"{root} is unfinished (its run was interrupted); finish it with --resume")
        raise UserError(f"{root} is not an ovbench dataset (no {MANIFEST})")
    return json.loads(path.read_text())
