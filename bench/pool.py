"""Silhouette-pool speed, in one run on this machine.

    python bench/pool.py [--views 80] [--models 28] [--full] [--blender-python PATH]

Prints silhouettes/s with 1 and 2 workers for procedural vehicles and dense meshes (subdivided
procedural ones; their face counts are printed); with --full, the reference pool (401 models ×
80 views = 32,080 silhouettes of subdivided meshes) end to end with 2 workers, its file size and one random read; with
--blender-python (the Python of a venv holding bpy==5.0.1, e.g. made by
`python3 -m venv build/bpy-venv && build/bpy-venv/bin/pip install bpy==5.0.1 'numpy<2'`), the same
meshes and views rendered by Blender's Workbench engine, the ratio, and how far the masks differ.
Rates include process start-up and writing the file: what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ovbench.assets.procedural import VEHICLE_TYPES, build_vehicle
from ovbench.assets.sources import list_source, load_model
from ovbench.formats.poolfile import SilhouettePool
from ovbench.generate.pool import PoolConfig, camera_for, generate_pool, plan_views
from ovbench.seeding import rng_for


def mean_faces(config: PoolConfig) -> float:
    """Faces per model over the first four (open meshes are drawn with each face twice)."""
    listing = list_source(config.source, config.models, config.seed, config.synset, config.orientation())
    return float(np.mean([len(load_model(ref).faces) for ref in listing.models[:4]]))


def dense_vehicles(folder: Path, count: int, subdivisions: int) -> Path:
    """`count` procedural vehicles subdivided `subdivisions` times (×4 faces each), as PLY files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        mesh = build_vehicle(VEHICLE_TYPES[i % len(VEHICLE_TYPES)], rng_for(0, "bench", i))
        for _ in range(subdivisions):
            mesh = mesh.subdivide()
        mesh.export(folder / f"dense-{i:03d}.ply")
    return folder


def timed_pool(config: PoolConfig, out: Path, workers: int) -> float:
    summary = generate_pool(config, out, workers=workers, progress=False)
    return summary.silhouettes / summary.seconds


def blender_compare(python: str, config: PoolConfig, work: Path, pyrender_rate: float, label: str):
    """Render the pool's meshes and views with Blender Workbench; print rate, ratio, mask agreement."""
    listing = list_source(config.source, config.models, config.seed, orientation=config.orientation())
    items, meshes = [], []
    for i, ref in enumerate(listing.models):
        mesh = load_model(ref, with_materials=False)
        path = work / f"blender-{label}-{i}.ply"
        mesh.export(path)
        views = plan_views(ref, float(np.linalg.norm(mesh.extents) / 2), config)
        target = mesh.bounds.mean(axis=0)
        items.append({"path": str(path),
                      "poses": [camera_for(v, target).pose.tolist() for v in views]})
        meshes.append(mesh)
    out = work / f"blender-{label}"
    out.mkdir()
    job = work / f"blender-{label}.json"
    job.write_text(json.dumps({"size": config.size, "yfov": math.radians(35.0), "out": str(out),
                               "meshes": items}))
    started = time.perf_counter()
    run = subprocess.run([python, str(Path(__file__).with_name("blender_silhouettes.py")), str(job)],
                         capture_output=True, text=True)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        print(f"  blender failed: {run.stderr.strip().splitlines()[-1:]}")
        return
    renders = sum(len(item["poses"]) for item in items)
    rate, loop_rate = renders / wall, renders / json.loads(run.stdout.strip().splitlines()[-1])["seconds"]
    # Same views from pyrender for the mask comparison.
    from ovbench.generate.pool import render_silhouettes
    differing, total = 0, 0
    for i, (mesh, ref) in enumerate(zip(meshes, listing.models)):
        views = plan_views(ref, float(np.linalg.norm(mesh.extents) / 2), config)
        ours = render_silhouettes(mesh, views, config.size)
        for v in range(len(views)):
            theirs = np.asarray(Image.open(out / f"{i}-{v}.png"))[..., 3] > 127
            differing += int((theirs != ours[v]).sum())
            total += int((theirs | ours[v]).sum())
    print(f"  blender workbench, 1 process: {rate:8.1f} sil/s wall ({loop_rate:.1f} sil/s in its "
          f"render loop, PNG round trip included) → pyrender 1 worker is {pyrender_rate / rate:.1f}× "
          f"faster ({pyrender_rate / loop_rate:.1f}× against the loop alone); masks differ on "
          f"{100 * differing / max(total, 1):.3f}% of silhouette pixels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=80)
    parser.add_argument("--models", type=int, default=28)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--full", action="store_true", help="also the 32,080-silhouette reference pool")
    parser.add_argument("--blender-python", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dense = dense_vehicles(work / "dense", 4, subdivisions=4)
        configs = {"procedural": PoolConfig(models=args.models, views=args.views, size=args.size),
                   "dense": PoolConfig(source=f"meshes:{dense}", views=args.views, size=args.size, up="+z",
                                       front="+x")}
        cases = {f"{name} (~{mean_faces(config):,.0f} faces)": config for name, config in configs.items()}
        for label, config in cases.items():
            rates = {w: timed_pool(config, work / f"{label[:5]}-{w}.h5", w) for w in (1, 2)}
            print(f"{label}: 1 worker {rates[1]:8.1f} sil/s, 2 workers {rates[2]:8.1f} sil/s "
                  f"(×{rates[2] / rates[1]:.2f})")
            if args.blender_python:
                small = PoolConfig(**{**config.__dict__, "models": 4 if "proc" in label else 2,
                                      "views": min(args.views, 20)})
                blender_compare(args.blender_python, small, work, rates[1], label[:5])

        if args.full:
            medium = dense_vehicles(work / "medium-unique", 21, subdivisions=3)
            links = work / "medium"
            links.mkdir()
            for i in range(401):  # 401 models, drawn from 21 distinct ~36k-face meshes
                (links / f"car-{i:03d}.ply").symlink_to(medium / f"dense-{i % 21:03d}.ply")
            out = work / "reference.h5"
            config = PoolConfig(source=f"meshes:{links}", views=80, size=256, up="+z", front="+x")
            summary = generate_pool(config, out, workers=2, progress=False)
            print(f"reference pool: {summary.silhouettes:,} silhouettes of 401 ~36k-face models in "
                  f"{summary.seconds:.1f} s on 2 workers ({summary.silhouettes / summary.seconds:.0f}/s), "
                  f"file {out.stat().st_size / 2**20:.1f} MiB")
            with SilhouettePool(out) as pool:
                rng = np.random.default_rng(0)
                started = time.perf_counter()
                for _ in range(2000):
                    pool.sample(rng)
                print(f"one random silhouette read: {(time.perf_counter() - started) / 2:.3f} ms")


if __name__ == "__main__":
    main()
