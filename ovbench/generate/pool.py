"""The 3D silhouette pool: vehicle models rendered from many viewpoints into one HDF5 file.

"Visualizing the Invisible" fed its object discriminator 401 ShapeNet cars × 80 views = 32,080
silhouettes. Work is sharded one model per shard: each shard is rendered by a worker and written
atomically under `<out>.parts/`, so a killed run resumes where it stopped; the shards are then
assembled in model order, so the file does not depend on the worker count. The file format,
its reader and writer are in `ovbench.formats.poolfile`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ovbench import __version__
from ovbench.assets.sources import (
    ModelRef,
    list_source,
    load_model,
    orientation_doubts,
    source_fingerprint,
    warn_orientation_doubts,
)
from ovbench.errors import InputError, MeshError
from ovbench.formats import masks as masks_lib
from ovbench.formats import writer
from ovbench.formats.fileio import atomic_path, check_writable
from ovbench.formats.poolfile import PoolWriter, SilhouettePool
from ovbench.generate import common
from ovbench.generate.common import check_size
from ovbench.generator_settings import PoolConfig
from ovbench.renderers import Camera, SceneObject, look_at, shared_renderer
from ovbench.seeding import rng_for

ELEVATION_RANGE = (0.0, 40.0)      # degrees above the horizon, street-level to raised views
DISTANCE_JITTER = (1.05, 1.35)     # × the distance at which the bounding sphere just fits
YFOV_DEGREES = 35.0


@dataclass(frozen=True)
class View:
    index: int
    azimuth: float     # degrees, 0 = looking at the front (+X side)
    elevation: float   # degrees
    distance: float    # metres from the bounding-box centre


@dataclass
class PoolSummary:
    path: Path
    silhouettes: int
    models: int
    skipped: dict           # model id → reason
    empty_views: int
    seconds: float
    doubts: dict = dataclasses.field(default_factory=dict)  # model id → why its axes look wrong


def view_grid(count: int) -> list[tuple[float, float]]:
    """`count` (azimuth, elevation) pairs on a grid: up to 5 elevation rings, azimuths evenly spaced."""
    rings = max(1, min(5, count // 16))
    per_ring = math.ceil(count / rings)
    elevations = np.linspace(*ELEVATION_RANGE, rings) if rings > 1 else [np.mean(ELEVATION_RANGE)]
    return [(360.0 * (i % per_ring) / per_ring, float(elevations[i // per_ring]))
            for i in range(count)]


def plan_views(ref: ModelRef, radius: float, config: PoolConfig) -> list[View]:
    fit = radius / math.sin(math.radians(YFOV_DEGREES) / 2)
    jitter = rng_for(config.seed, "views", ref.source, ref.model_id).uniform(
        *DISTANCE_JITTER, size=config.views)
    return [View(i, az, el, float(fit * j))
            for i, ((az, el), j) in enumerate(zip(view_grid(config.views), jitter))]


def camera_for(view: View, target: np.ndarray) -> Camera:
    az, el = math.radians(view.azimuth), math.radians(view.elevation)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return Camera(look_at(target + view.distance * direction, target), yfov=math.radians(YFOV_DEGREES))


def render_silhouettes(mesh, views: list[View], size: int) -> np.ndarray:
    """Exact silhouettes (V×size×size bool) of a mesh from each view, aimed at its box centre."""
    renderer = shared_renderer(size)
    renderer.set_scene([SceneObject(mesh)])
    target = mesh.bounds.mean(axis=0)
    return np.stack([renderer.solo(camera_for(view, target), 0)[0] for view in views])


def _shard_path(parts: Path, index: int) -> Path:
    return parts / f"shard-{index:06d}.npz"


def _render_shard(task: tuple) -> tuple[int, int, str]:
    """Render one model's views into its shard file; returns (index, silhouettes, skip reason)."""
    index, ref, config, parts = task
    try:
        mesh = load_model(ref, with_materials=False)
        views = plan_views(ref, float(np.linalg.norm(mesh.extents) / 2), config)
        masks = render_silhouettes(mesh, views, config.size)
    except MeshError as exc:
        views, masks, reason = [], np.zeros((0, config.size, config.size), bool), str(exc)
        doubt = ""
    else:
        reason = ""
        doubt = orientation_doubts(ref, mesh).get(ref.model_id, "")
    keep = masks.any(axis=(1, 2))
    if len(views) and not keep.any():
        reason = f"{ref.model_id}: every view rendered empty"
    views = [v for v, k in zip(views, keep) if k]
    masks = masks[keep]
    with atomic_path(_shard_path(parts, index)) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            masks=np.packbits(masks, axis=-1),
            view=np.array([v.index for v in views], np.int16),
            azimuth=np.array([v.azimuth for v in views], np.float32),
            elevation=np.array([v.elevation for v in views], np.float32),
            distance=np.array([v.distance for v in views], np.float32),
            bbox=np.array([masks_lib.bbox(m) for m in masks], np.int32).reshape(-1, 4),
            skipped=np.array(reason),
            doubt=np.array(doubt),
            empty_views=np.array(int((~keep).sum()) if reason == "" else 0),
        )
    return index, len(views), reason


def _config_record(config: PoolConfig, description: str) -> dict:
    record = dataclasses.asdict(config)
    record["source"] = config.source.split(":", 1)[0]  # no absolute paths in shared files
    record["source_description"] = description
    return record


def _assemble(parts: Path, out: Path, refs: list[ModelRef], record: dict,
              skipped_listing: dict) -> tuple[int, int, dict, int, dict]:
    """Concatenate the shards in model order into the HDF5 file (atomically); returns the
    silhouettes, the models used, every skipped model (while listing the source or rendering),
    the empty views dropped and the orientation doubts."""
    skipped, empty_views, doubts = {}, 0, {}
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        pool_writer = PoolWriter(h5, record["size"])
        for index, ref in enumerate(refs):
            with np.load(_shard_path(parts, index)) as shard:
                if "doubt" not in shard:   # rendered before every pass drew both faces
                    raise InputError(f"{parts} was started by an earlier ovbench, whose renders of "
                                    "open meshes were not exact: remove it and run again")
                if str(shard["skipped"]):
                    skipped[ref.model_id] = str(shard["skipped"])
                    continue
                if str(shard["doubt"]):
                    doubts[ref.model_id] = str(shard["doubt"])
                count = len(shard["view"])
                empty_views += int(shard["empty_views"])
                pool_writer.append(shard["masks"], {
                    **{name: shard[name] for name in ("view", "azimuth", "elevation", "distance", "bbox")},
                    "model_id": [ref.model_id] * count, "source": [ref.source] * count})
        used = len(refs) - len(skipped)
        skipped = {**skipped_listing, **skipped}
        h5.attrs.update(
            ovbench_version=__version__, renderer="ovbench instance-id pass (OpenGL, EGL)",
            config=json.dumps(record, sort_keys=True), skipped=json.dumps(skipped, sort_keys=True),
            yfov_degrees=YFOV_DEGREES, models=used, views=record["views"], seed=record["seed"],
        )
        total = pool_writer.count
    return total, used, skipped, empty_views, doubts


def generate_pool(config: PoolConfig, out: Path, workers: int = 1, resume: bool = False,
                  progress: bool = True, executor: common.Executor = common.PROCESS_POOL) -> PoolSummary:
    out = Path(out)
    check_size(config.size, smallest=8)
    if config.views < 1:
        raise InputError(f"`views` must be at least 1, got {config.views}")
    listing = list_source(config.source, config.models, config.seed, config.synset, config.orientation())
    record = {**_config_record(config, listing.description), **source_fingerprint(listing)}
    started = time.perf_counter()
    if out.exists():
        if not resume:
            raise InputError(f"{out} already exists; pass `resume` to keep it, or delete it")
        with SilhouettePool(out) as pool:
            if pool.config != record:
                raise InputError(f"{out} was made with other settings; delete it or change `out`")
            return PoolSummary(out, len(pool), int(pool.attributes["models"]),
                               json.loads(pool.attributes["skipped"]), 0, 0.0)
    check_writable(out)
    parts = out.with_name(out.name + ".parts")
    fresh = writer.prepare_parts(parts, record, resume)
    todo = [(i, ref, config, parts) for i, ref in enumerate(listing.models)
            if not _shard_path(parts, i).exists()]
    common.run_with_progress(_render_shard, todo, workers=workers, total=len(listing.models) * config.views,
                             initial=(len(listing.models) - len(todo)) * config.views, unit="sil", desc="pool",
                             progress=progress, advance=lambda _: config.views,
                             discard=(lambda: shutil.rmtree(parts)) if fresh else None, executor=executor)
    total, used, skipped, empty_views, doubts = _assemble(parts, out, listing.models, record,
                                                          listing.skipped)
    shutil.rmtree(parts)
    if total == 0:
        out.unlink()
        raise InputError(f"no usable models in {config.source}: all {len(skipped)} were skipped "
                        f"({next(iter(skipped.values()), '')})")
    warn_orientation_doubts(doubts)
    return PoolSummary(out, total, used, skipped, empty_views, time.perf_counter() - started, doubts)
