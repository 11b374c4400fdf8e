"""Renderer pass costs: pyrender drawing a scene by itself, and ovbench's renderer, in one run on
this machine.

    python bench/render.py [--repeats 7]

Two scenes at 256²: a vehicle on a street (an ovd base: 2 meshes, one sun) and a dyce street at
the defaults (~60 objects, sun shadows, sky light) seen by 4 cameras. Per pass: the best of
`repeats` times, averaged over the cameras; "new scene" is set_scene and its first lit pass
(uploads, the shadow map). pyrender draws single-sampled like ovbench (its 4× multisampling
costs ~40% more), one node per mesh, a SEG pass per object for the solo masks (its way to draw
one object alone) and, as it does, the shadow map again for every lit pass. Each renderer runs
in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

RENDERERS = ("pyrender", "ovbench")

CHILD = """
import json, sys, time
from dataclasses import replace
import numpy as np
from ovbench.renderers import Camera, Renderer, SceneObject, look_at
from ovbench.renderers.gl import import_pyrender
import ovbench.generate.dyce as dyce
from ovbench.assets.occluders import street
from ovbench.assets.procedural import build_vehicle
from ovbench.generate.street import street_lighting
from ovbench.seeding import rng_for

which, repeats = sys.argv[1], int(sys.argv[2])


def best(f):
    f()
    times = []
    for _ in range(repeats):
        started = time.perf_counter(); f(); times.append(time.perf_counter() - started)
    return min(times) * 1e3


class Pyrender:
    def __init__(self, size):
        self.pr = pr = import_pyrender()
        self.gl = pr.OffscreenRenderer(size, size)
        stock = pr.renderer.glRenderbufferStorageMultisample  # single samples, as ovbench draws
        pr.renderer.glRenderbufferStorageMultisample = lambda target, _, *rest: stock(target, 0, *rest)

    def set_scene(self, objects, lighting, background, scenery):
        pr = self.pr
        self.scene = pr.Scene(bg_color=(*background, 1.0), ambient_light=(lighting.ambient,) * 3)
        def add(obj):
            smooth = obj.mesh.visual.kind == "vertex"
            return self.scene.add(pr.Mesh.from_trimesh(obj.mesh, smooth=smooth), pose=obj.pose)
        self.nodes = [add(obj) for obj in objects]
        for obj in scenery:
            add(obj)
        self.scene.add(pr.DirectionalLight(color=np.ones(3), intensity=lighting.sun_intensity),
                       pose=look_at((0, 0, 0), lighting.sun_direction))
        if lighting.sky:
            pose = np.eye(4)
            pose[2, 3] = 1e4
            self.scene.add(pr.PointLight(color=np.ones(3), intensity=lighting.sky * 1e8), pose=pose)
        self.camera = self.scene.add(pr.PerspectiveCamera(yfov=np.radians(35.0)))
        self.flags = pr.RenderFlags.SHADOWS_DIRECTIONAL if lighting.shadows else pr.RenderFlags.NONE

    def _aim(self, camera):
        self.camera.camera.yfov = camera.yfov
        self.scene.set_pose(self.camera, camera.pose)

    def instances(self, camera):
        self._aim(camera)
        return self.gl.render(self.scene, self.pr.RenderFlags.SEG, {n: (k + 1, 0, 0) for k, n in enumerate(self.nodes)})

    def solos(self, camera, indices):
        self._aim(camera)
        return [self.gl.render(self.scene, self.pr.RenderFlags.SEG, {self.nodes[k]: (255, 255, 255)})
                for k in indices]

    def rgb(self, camera):
        self._aim(camera)
        return self.gl.render(self.scene, self.flags)


renderer = Renderer(256) if which == "ovbench" else Pyrender(256)


def measure(objects, lighting, scenery, cameras):
    def new_scene():
        renderer.set_scene(objects, lighting, (0.7, 0.75, 0.8), scenery)
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
placed, plan, _ = dyce.street_layout(config, splits[0], rng)
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
    for name in RENDERERS:
        done = subprocess.run([sys.executable, "-c", CHILD, name, str(args.repeats)], capture_output=True,
                              text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    for scene in results["ovbench"]:
        print(f"{scene}, ms a pass ({' / '.join(RENDERERS)}):")
        for part in results["ovbench"][scene]:
            times = [results[name][scene][part] for name in RENDERERS]
            print(f"  {part:13s} " + " / ".join(f"{t:6.1f}" for t in times) + f"   ×{times[0] / times[-1]:.1f}")


if __name__ == "__main__":
    main()
