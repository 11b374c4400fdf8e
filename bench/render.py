"""Renderer pass costs with pyrender as it is, with single-sampling alone, and with every tuning of
renderers/tuning.py, in one run on this machine.

    python bench/render.py [--repeats 7]

Two scenes at 256²: a vehicle on a street (an ovd base: 2 meshes, one sun) and a dyce street at
the defaults (~60 objects, sun shadows, sky light) seen by 4 cameras. Per pass: the best of
`repeats` times, averaged over the cameras; "new scene" is set_scene and its first lit pass
(uploads, the shadow map). Each variant runs in a process of its own: the tunings are made once
a process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

VARIANTS = {"pyrender as it is": "()", "single-sampled": "(tuning.single_sampled,)", "tuned": "tuning.TUNINGS"}

CHILD = """
import json, sys, time
from dataclasses import replace
import numpy as np
from ovbench.renderers import Camera, Lighting, Renderer, SceneObject, look_at, tuning
tuning.TUNINGS = eval(sys.argv[1])
import ovbench.generate.dyce as dyce
from ovbench.assets.occluders import street
from ovbench.assets.procedural import build_vehicle
from ovbench.generate.street import street_lighting
from ovbench.seeding import rng_for

repeats = int(sys.argv[2])
renderer = Renderer(256)

def best(f):
    f()
    times = []
    for _ in range(repeats):
        started = time.perf_counter(); f(); times.append(time.perf_counter() - started)
    return min(times) * 1e3

def measure(objects, lighting, scenery, cameras):
    def new_scene():
        renderer.set_scene(objects, lighting, background=(0.7, 0.75, 0.8), scenery=scenery)
        renderer.rgb(cameras[0])
    row = {"new scene": best(new_scene)}
    for name, draw in (("instance map", lambda c: renderer.instances(c)),
                       ("solo masks", lambda c: renderer.solos(c, range(len(objects)))),
                       ("lit pass", lambda c: renderer.rgb(c))):
        row[name] = sum(best(lambda: draw(c)) for c in cameras) / len(cameras)
    return row

rng = rng_for(0, "bench-render")
vehicle = build_vehicle("sedan", rng)
base = [SceneObject(vehicle), SceneObject(street(rng, 0.3, np.array([6.0, 4.0]), 3.0))]
base_cameras = [Camera(look_at((6.0 * np.cos(a), 6.0 * np.sin(a), 1.6), (0, 0, 0.7))) for a in (0.5, 2.0, 3.5, 5.0)]
rows = {"ovd base": measure(base, street_lighting(rng), [], base_cameras)}
config = dyce.DyceConfig()
splits, _ = dyce._plan_splits(config)
placed, plan, _ = dyce.street_layout(config, splits[0].vehicles, rng)
prints = [dyce.Footprint.of(p.mesh, p.pose) for p in placed]
cameras = [dyce._street_camera(plan, placed, prints, rng_for(0, "bench-view", k)) for k in range(4)]
lighting = replace(street_lighting(rng), shadows=True, sky=dyce.SKY_LIGHT)
rows[f"dyce street ({len(placed)} objects)"] = measure(
    [SceneObject(p.mesh, p.pose) for p in placed], lighting, [SceneObject(dyce.street_scenery(plan, rng))], cameras)
print(json.dumps(rows))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for name, tunings in VARIANTS.items():
        done = subprocess.run([sys.executable, "-c", CHILD, tunings, str(args.repeats)], capture_output=True,
                              text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    for scene in results["tuned"]:
        print(f"{scene}, ms a pass ({' / '.join(VARIANTS)}):")
        for part in results["tuned"][scene]:
            times = [results[name][scene][part] for name in VARIANTS]
            print(f"  {part:13s} " + " / ".join(f"{t:6.1f}" for t in times) + f"   ×{times[0] / times[-1]:.2f}")


if __name__ == "__main__":
    main()
