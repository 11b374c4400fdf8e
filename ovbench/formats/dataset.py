"""The dataset folder shared by ovd and dyce (and read by training, evaluation and publishing).

    <root>/manifest.json                 name, kind, version, seed, config, counts, sha256 of every file
    <root>/<split>/images/<id>.png       the input (occluded) image
    <root>/<split>/appearance/...png     ground-truth appearance (names in the image records)
    <root>/<split>/annotations.json      COCO-style, readable by pycocotools.coco.COCO unchanged

A folder with a manifest is complete; one with `<root>/.parts/` is a build in progress
(ovbench.generate.common builds it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ovbench.errors import InputError
from ovbench.formats.fileio import atomic_path

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


def load_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        if (Path(root) / PARTS).exists():
            raise InputError(f"{root} is unfinished (its run was interrupted); finish it with `resume`")
        raise InputError(f"{root} is not an ovbench dataset (no {MANIFEST})")
    return json.loads(path.read_text())
