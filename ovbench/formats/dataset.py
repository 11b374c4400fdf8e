"""The dataset folder shared by ovd and dyce (and read by training, evaluation and publishing).

    <root>/manifest.json                 name, kind, version, seed, config, counts, sha256 of every file
    <root>/<split>/images/<id>.png       the input (occluded) image
    <root>/<split>/appearance/...png     ground-truth appearance (names in the image records)
    <root>/<split>/annotations.json      COCO-style, readable by pycocotools.coco.COCO unchanged

A folder with a manifest is complete; one with `<root>/.parts/` is a build in progress
(formats/writer.py writes it).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ovbench.errors import InputError
from ovbench.formats.fileio import atomic_path, member

MANIFEST = "manifest.json"
PARTS = ".parts"
# zlib level, measured on OVD composites at 256² (ms per PNG, KiB): 1: 3.4, 55.8; 3: 5.6, 52.8;
# 6: 12.7, 52.2; 9: 39.1, 50.1. Level 1 is 6% larger than 3 at 60% of its time.
PNG_LEVEL = 1
# Ids: image ids are unique across splits; object ids are image_id * OBJECT_STRIDE + k.
OBJECT_STRIDE = 1000


def write_png(path: Path, array: np.ndarray) -> None:
    """Atomic PNG write (uint8 H×W, H×W×3 or H×W×4; 16-bit depth maps as uint16 H×W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=PNG_LEVEL)


def read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except FileNotFoundError:
        raise InputError(f"{path} is missing") from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for truncated or foreign files
        raise InputError(f"{path} is not a readable image ({exc})") from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_split_name(name, what: str = "split name") -> str:
    """Split (and Hub config) names become folder names: letters, digits, `_` and `-` only."""
    if not isinstance(name, str) or not SPLIT_NAME.fullmatch(name):
        raise InputError(f"bad {what} {name!r}: use letters, digits, _ and - (e.g. train, test)")
    return name


def check_plain_name(name, what: str) -> str:
    """A name that becomes one folder (a dataset's name: leaderboards/<name>/): no separators, not
    `.` or `..`."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0:"):
        raise InputError(f"bad {what} {name!r}: it must name one folder")
    return name


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a readable {what} (truncated or not JSON: {exc})") from None


def load_manifest(root: Path) -> dict:
    """The manifest of a finished dataset folder, its split names and file names checked as safe."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        if (Path(root) / PARTS).exists():
            raise InputError(f"{root} is unfinished (its run was interrupted); finish it with `resume`")
        raise InputError(f"{root} is not an ovbench dataset (no {MANIFEST})")
    manifest = _read_json(path, "manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict) \
            or not isinstance(manifest.get("files", {}), dict):
        raise InputError(f"{path} is not an ovbench manifest (no splits, or files not a mapping)")
    check_plain_name(manifest.get("name"), "dataset name in manifest.json")
    for split in manifest["splits"]:
        check_split_name(split)
    for name in manifest.get("files", {}):
        member(Path(root), name, "manifest.json")
    return manifest


def files_of(image: dict) -> list[str]:
    """The names of the files an image record points to, relative to its split folder."""
    names = [image.get("file_name"), image.get("instances_file"), image.get("depth_file")]
    appearance = image.get("appearance")
    names += list(appearance.values()) if isinstance(appearance, dict) else [appearance]
    return [name for name in names if name is not None]


def load_annotations(root: Path, split: str) -> dict:
    """A split's annotations.json, every file name in it checked to stay inside the split folder."""
    split_dir = Path(root) / check_split_name(split)
    document = _read_json(split_dir / "annotations.json", "annotation file")
    if not isinstance(document, dict) or not isinstance(document.get("images"), list) \
            or not isinstance(document.get("annotations"), list):
        raise InputError(f"{split_dir / 'annotations.json'} is not a COCO-style annotation file")
    for image in document["images"]:
        if not isinstance(image, dict):
            raise InputError(f"{split_dir / 'annotations.json'} has an image record that is not an object")
        for name in files_of(image):
            member(split_dir, name, f"{split}/annotations.json")
    return document


def verify_files(root: Path, manifest: dict, split: str, document: dict) -> None:
    """Every file a split's records read is the one the manifest lists (same sha256): a deleted,
    damaged or swapped file is refused by name before any work."""
    listed = manifest.get("files", {})
    names = [f"{split}/annotations.json"] + [f"{split}/{n}" for image in document["images"] for n in files_of(image)]
    for name in names:
        if name not in listed:
            raise InputError(f"{root}/{name} is not listed in {MANIFEST}: the folder was changed after it was made")
        path = Path(root) / name
        if not path.is_file():
            raise InputError(f"{path} is missing (listed in {MANIFEST})")
        if sha256(path) != listed[name]:
            raise InputError(f"{path} differs from the file {MANIFEST} lists (damaged or replaced); "
                             "regenerate the dataset or restore the file")


def refuse_inside_dataset(path: Path, what: str = "output") -> None:
    """Commands never write into a dataset folder they did not make (it would no longer validate)."""
    for folder in [Path(path).resolve(), *Path(path).resolve().parents]:
        if (folder / MANIFEST).is_file() or (folder / PARTS).is_dir():
            raise InputError(f"{what} {path} is inside the dataset folder {folder}; write it elsewhere")
