"""Writing dataset folders (formats/dataset.py) resumably, for generators and importers alike.

Workers write each item's files, then its record under the parts folder (the record last,
atomically, so a record means the item is complete); a killed run resumes where it stopped, and
only with the settings it started with. `finish_dataset` assembles the annotation files in id
order, hashes every file and writes manifest.json last.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ovbench import __version__
from ovbench.errors import InputError
from ovbench.formats.dataset import MANIFEST, PARTS, sha256
from ovbench.formats.fileio import remove_stale_temporaries, write_json

CONFIG = "config.json"


def prepare_parts(parts: Path, record: dict, resume: bool) -> bool:
    """Create the parts folder of a build, or reopen it to resume with the same settings;
    returns whether the build is fresh."""
    if parts.exists():
        if not resume:
            raise InputError(f"an interrupted run left {parts}; pass `resume` to finish it, "
                            "or delete that folder to start over")
        config_file = parts / CONFIG
        if not config_file.exists():  # killed between creating the folder and writing its settings
            write_json(config_file, record)
        saved = json.loads(config_file.read_text())
        changed = sorted(k for k in set(saved) | set(record) if saved.get(k) != record.get(k))
        if changed:
            raise InputError(f"`resume` with different settings ({', '.join(changed)}) than the "
                            f"interrupted run in {parts}; use the same settings or delete it")
        for folder in [parts, *parts.rglob("*")]:
            if folder.is_dir():
                remove_stale_temporaries(folder)
        return False
    try:
        parts.mkdir(parents=True)
    except OSError as exc:
        raise InputError(f"cannot create {parts}: {exc.strerror}") from exc
    write_json(parts / CONFIG, record)
    return True


@dataclass(frozen=True)
class Item:
    """One image's records: the COCO image, its annotations, and extra top-level lists."""

    split: str
    image: dict
    annotations: list
    extra: dict  # e.g. {"occluders": [...]} for ovd


@dataclass
class DatasetSummary:
    """What a generator made: counts per split, time, mean occlusion, rejected inputs; `made` is
    False when the folder already held the finished dataset."""

    path: Path
    counts: dict
    seconds: float
    mean_occlusion: float = 0.0
    rejected: dict = field(default_factory=dict)
    made: bool = True


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
    # Compact: item files are read back once, by finish_dataset (indented JSON is encoded in Python).
    write_json(path, {"image": item.image, "annotations": item.annotations, "extra": item.extra}, indent=None)


def item_done(root: Path, split: str, image_id: int) -> bool:
    return _item_path(root, split, image_id).exists()


def start_dataset(root: Path, kind: str, config: dict, resume: bool) -> bool | None:
    """Prepare `root` for building. Returns whether the build is fresh, or None when `root`
    already holds the finished dataset (resume)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is a file, not a folder: choose another `out`")
    manifest = root / MANIFEST
    if manifest.exists():
        if not resume:
            raise InputError(f"{root} already holds a dataset; pass `resume` to keep it, or delete it")
        saved = json.loads(manifest.read_text())
        if saved.get("config") != config:
            raise InputError(f"{root} was made with other settings; delete it or change `out`")
        shutil.rmtree(root / PARTS, ignore_errors=True)  # a run killed after its manifest, before this
        return None
    if not (root / PARTS).exists() and root.exists() and any(root.iterdir()):
        raise InputError(f"{root} exists and is not an ovbench dataset; choose another `out`")
    fresh = prepare_parts(root / PARTS, {**config, "kind": kind}, resume)
    if not fresh:
        for folder in [root, *root.glob("*"), *root.glob("*/*")]:  # annotation files, images/, appearance/ ...
            if folder.is_dir():
                remove_stale_temporaries(folder)
    return fresh


def finish_dataset(root: Path, name: str, kind: str, config: dict, categories: list, splits: list[str],
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
        write_annotations(root / split / "annotations.json", document)
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


ANNOTATION_INDENTS = (None, 2)  # how ovbench writes annotations.json now, and how it did before


def write_annotations(path: Path, document: dict, indent: int | None = ANNOTATION_INDENTS[0]) -> None:
    """A split's annotations.json: compact, as COCO's own files are (indented JSON goes through
    Python's slow encoder: seconds for a few thousand images). Datasets made before were
    indented by 2; the Hub's rebuild writes whichever the manifest's checksum names."""
    write_json(path, document, indent=indent)


def discard_dataset(root: Path) -> None:
    """Remove an unfinished build (its parts, and the folder if nothing else is left in it)."""
    root = Path(root)
    shutil.rmtree(root / PARTS, ignore_errors=True)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
