"""Render silhouettes with Blender's Workbench engine (run by the Python of a venv holding bpy).

    BPY_PYTHON blender_silhouettes.py JOB.json

JOB.json: {"size": S, "yfov": radians, "out": DIR, "meshes": [{"path": PLY, "poses": [4×4, ...]}]}.
Camera poses are camera-to-world in the OpenGL convention, which Blender cameras share. Writes
DIR/<mesh index>-<view index>.png (RGBA, alpha = silhouette) and prints the seconds spent.
"""

import json
import sys
import time
from pathlib import Path

import bpy
from mathutils import Matrix


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = job["size"]
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.display.render_aa = "OFF"  # exact silhouettes, like ovbench's instance pass
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "SINGLE"
    camera_data = bpy.data.cameras.new("camera")
    camera_data.sensor_fit = "VERTICAL"
    camera_data.angle = job["yfov"]
    camera_data.clip_start, camera_data.clip_end = 0.05, 500.0
    camera = bpy.data.objects.new("camera", camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera

    started = time.perf_counter()
    renders = 0
    for m, item in enumerate(job["meshes"]):
        bpy.ops.wm.ply_import(filepath=item["path"])
        mesh_object = bpy.context.selected_objects[0]
        for v, pose in enumerate(item["poses"]):
            camera.matrix_world = Matrix(pose)
            scene.render.filepath = str(Path(job["out"]) / f"{m}-{v}.png")
            bpy.ops.render.render(write_still=True)
            renders += 1
        bpy.data.objects.remove(mesh_object, do_unlink=True)
    print(json.dumps({"seconds": time.perf_counter() - started, "renders": renders}))


if __name__ == "__main__":
    main(sys.argv[-1])
