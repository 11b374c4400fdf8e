"""Vehicle sources behind `--source procedural|shapenet:ROOT|meshes:DIR`, as picklable model refs.

Every generator lists its vehicles with `list_source` and loads them with `load_model`, so file
meshes are oriented and scaled the same way everywhere; `orientation_doubts` are the warnings
for file meshes that look wrongly turned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import trimesh

from ovbench.errors import InputError
from ovbench.formats.fileio import fingerprint
from ovbench.seeding import rng_for

from . import shapenet
from .meshes import Orientation, default_orientation, find_meshes, load_mesh, orientation_doubt
from .procedural import VEHICLE_TYPES, build_vehicle


@dataclass(frozen=True)
class ModelRef:
    """One vehicle model: enough to build or load it in any process."""

    model_id: str
    source: str                       # procedural | shapenet:<synset> | meshes
    path: str | None = None           # mesh file, for file sources
    orientation: Orientation | None = None
    length: float | None = None       # scale to this length in metres (normalised sources)
    seed: int = 0                     # procedural seed


@dataclass(frozen=True)
class SourceListing:
    models: list[ModelRef]
    skipped: dict[str, str]           # model id → why it was skipped while listing
    description: str                  # what was used, without absolute paths


def source_fingerprint(listing: SourceListing) -> dict:
    """{"source_fingerprint": digest} of a file source's meshes (fileio.fingerprint); {} for
    procedural vehicles, which the settings alone define."""
    paths = [ref.path for ref in listing.models if ref.path]
    return {"source_fingerprint": fingerprint(paths)} if paths else {}


def _choose(items: list, count: int | None, seed: int) -> list:
    """`count` items chosen by seed and kept in sorted order; all of them if count is None."""
    if count is None or count >= len(items):
        return items
    picked = rng_for(seed, "choose-models").choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(picked)]


def list_source(spec: str, models: int | None, seed: int, synset: str = "car",
                orientation: Orientation | None = None) -> SourceListing:
    kind, _, location = spec.partition(":")
    if models is not None and models < 1:
        raise InputError(f"`models` must be at least 1, got {models}")
    if kind == "procedural":
        if synset not in ("car", "02958343"):  # the car synset by name or id
            raise InputError(f"`synset` {synset!r} applies to ShapeNet sources; the procedural source makes cars")
        count = 401 if models is None else models
        refs = [ModelRef(f"{VEHICLE_TYPES[i % len(VEHICLE_TYPES)]}-{i:04d}", "procedural", seed=seed)
                for i in range(count)]
        return SourceListing(refs, {}, f"procedural vehicles ({', '.join(VEHICLE_TYPES)})")
    if kind == "shapenet" and location:
        found, skipped = shapenet.list_models(Path(location), synset)
        synset_id = shapenet.resolve_synset(Path(location), synset)
        refs = [ModelRef(m.model_id, f"shapenet:{synset_id}", str(m.path),
                         orientation or m.orientation, m.length) for m in found]
        return SourceListing(_choose(refs, models, seed), skipped,
                             f"ShapeNetCore synset {synset_id} ({len(found)} models)")
    if kind == "meshes" and location:
        folder = Path(location)
        refs = [ModelRef(p.relative_to(folder).as_posix(), "meshes", str(p),
                         orientation or default_orientation(p)) for p in find_meshes(folder)]
        return SourceListing(_choose(refs, models, seed), {},
                             f"mesh folder {folder.name} ({len(refs)} files)")
    raise InputError(f"bad source {spec!r}: use procedural, shapenet:ROOT or meshes:DIR")


def load_model(ref: ModelRef, with_materials: bool = True) -> trimesh.Trimesh:
    """Build or load the model in the shared convention; MeshError if its file is unusable."""
    if ref.source == "procedural":
        index = int(ref.model_id.rsplit("-", 1)[1])
        kind = VEHICLE_TYPES[index % len(VEHICLE_TYPES)]
        return build_vehicle(kind, rng_for(ref.seed, "vehicle", index))
    return load_mesh(Path(ref.path), ref.orientation, ref.length, with_materials=with_materials)


def orientation_doubts(ref: ModelRef, mesh: trimesh.Trimesh) -> dict[str, str]:
    """{model id: why it looks wrongly turned} for a file mesh that does; {} otherwise (procedural
    vehicles are built upright)."""
    doubt = orientation_doubt(mesh, ref.orientation) if ref.path else None
    return {ref.model_id: doubt} if doubt else {}


def warn_orientation_doubts(doubts: dict[str, str]) -> None:
    """One stderr line per doubtful model, after the progress bar."""
    for model_id, doubt in sorted(doubts.items()):
        print(f"ovbench: warning: {model_id}: {doubt}", file=sys.stderr)
