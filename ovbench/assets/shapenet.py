"""ShapeNetCore reader: v1 (`<synset>/<id>/model.obj`) and v2 (`<synset>/<id>/models/model_normalized.obj`).

ShapeNet models are normalised to a unit diagonal, not metres; they are scaled to a typical length
for the synset. Axes: both versions have +Y up; v1 faces +X, v2 faces -Z.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ovbench.errors import InputError

from .meshes import Orientation

V1 = Orientation(up="+y", front="+x")
V2 = Orientation(up="+y", front="-z")
V1_FILE = "model.obj"
V2_FILE = "models/model_normalized.obj"

# Used when the root has no taxonomy.json: ShapeNetCore's vehicle synsets named as its
# taxonomy.json names them, then WordNet ids some roots use and a name of ovbench's own.
BUILTIN_TAXONOMY = [
    {"synsetId": "02958343", "name": "car,auto,automobile,machine,motorcar"},
    {"synsetId": "02924116", "name": "bus,autobus,coach,charabanc,double-decker,jitney,motorbus,"
                                     "motorcoach,omnibus,passenger vehi"},
    {"synsetId": "03790512", "name": "motorcycle,bike"},
    {"synsetId": "04468005", "name": "train,railroad train"},
    {"synsetId": "02834778", "name": "bicycle,bike,wheel,cycle"},
    {"synsetId": "04490091", "name": "truck,motortruck"},
    {"synsetId": "02958343", "name": "pickup"},  # ShapeNetCore keeps pickups among its cars
]
LISTED_FILES = 4  # files named in a skip reason
# Rough real lengths (m) used to bring normalised models to metres.
TYPICAL_LENGTH = {"02958343": 4.5, "02924116": 11.0, "03790512": 2.1, "02834778": 1.8,
                  "04490091": 7.0}


@dataclass(frozen=True)
class ShapeNetModel:
    model_id: str
    path: Path
    orientation: Orientation
    length: float


def _taxonomy(root: Path) -> list[dict]:
    """The root's taxonomy.json entries, or the built-in table when it has none."""
    path = root / "taxonomy.json"
    if not path.is_file():
        return BUILTIN_TAXONOMY
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _taxonomy_names(root: Path) -> dict[str, str]:
    """Lower-case name → synset id (every comma-separated name of an entry; the first entry wins)."""
    entries = _taxonomy(root)
    names = {}
    for entry in entries:
        for name in str(entry.get("name", "")).split(","):
            names.setdefault(name.strip().lower(), entry["synsetId"])
    return names


def resolve_synset(root: Path, synset: str) -> str:
    """A synset id from an id (`02958343`) or a name (`car`)."""
    if synset.isdigit():
        return synset
    names = _taxonomy_names(root)
    key = synset.strip().lower()
    if key not in names:
        close = sorted(n for n in names if key in n)[:8]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        table = (f"{root}/taxonomy.json" if (root / "taxonomy.json").is_file()
                 else f"the built-in synset names ({root} has no taxonomy.json)")
        raise InputError(f"synset name {synset!r} not in {table}{hint}")
    return names[key]


def _model_file(folder: Path) -> tuple[Path, Orientation] | None:
    if (folder / V1_FILE).is_file():
        return folder / V1_FILE, V1
    if (folder / V2_FILE).is_file():
        return folder / V2_FILE, V2
    found = sorted(folder.rglob("*.obj"))  # some v2 folders keep the OBJ elsewhere
    if found:
        return found[0], V2 if "models" in found[0].parts else V1
    return None


def _skip_reason(folder: Path) -> str:
    """Why a model folder without an OBJ is skipped: what is missing, and what it holds instead."""
    held = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    if not held:
        return "empty model folder"
    missing = Path(V2_FILE).name if (folder / "models").is_dir() else V1_FILE
    more = f", … {len(held) - LISTED_FILES} more" if len(held) > LISTED_FILES else ""
    return f"no {missing} (has: {', '.join(held[:LISTED_FILES])}{more})"


def list_models(root: Path, synset: str = "car") -> tuple[list[ShapeNetModel], dict[str, str]]:
    """The synset's models, sorted by id, and {id: reason} for the model folders skipped."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"ShapeNet root not found: {root} (expected ShapeNetCore v1 or v2 there)")
    synset_id = resolve_synset(root, synset)
    folder = root / synset_id
    if not folder.is_dir():
        raise InputError(f"synset {synset_id} ({synset}) not found under {root}")
    length = TYPICAL_LENGTH.get(synset_id, 4.5)
    models, skipped = [], {}
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        found = _model_file(model_dir)
        if found is None:
            skipped[model_dir.name] = _skip_reason(model_dir)
            continue
        models.append(ShapeNetModel(model_dir.name, found[0], found[1], length))
    if not models:
        raise InputError(f"synset {synset_id} under {root} has no models "
                        f"({len(skipped)} model folders without an OBJ)")
    return models, skipped
