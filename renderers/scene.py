"""Offscreen rendering of a scene of meshes: lit RGB, exact instance ids and depth, solo passes.

Every pass is single-sampled (see tuning.py): masks and depth come from pyrender's SEG pass and are
exact; colour images are antialiased on the image (`soften_edges`).
Every pass draws both faces of every triangle (`_both_sides`), so open meshes render whole.

Solo passes ("object k alone") may draw several objects at once when their screen boxes (the
projection of each one's bounding box, a pixel of margin around it) keep apart: no pixel of one
can then be touched by another, so each gets exactly the pixels, depth and colours of its own
pass at a fraction of the cost. With sun shadows, the sun's shadow map is the whole scene's,
rendered once per scene and kept for every colour pass: an object drawn alone keeps the shadows
the others cast on it, as in the scene (its hidden part continues its visible part).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import trimesh

from .antialias import soften_edges
from .gl import import_pyrender, offscreen_renderer
from .tuning import tune


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world pose (OpenGL: the camera looks down its -Z, +Y up) from eye to target."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:  # looking straight along `up`: any right vector will do
        right = np.cross(forward, (1.0, 0.0, 0.0))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: pose is camera-to-world (OpenGL convention), yfov in radians."""

    pose: np.ndarray
    yfov: float = np.radians(35.0)
    znear: float = 0.05
    zfar: float = 500.0


@dataclass
class SceneObject:
    """A mesh placed in the world; its colours come from the mesh's own visual."""

    mesh: trimesh.Trimesh
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass(frozen=True)
class Lighting:
    """A sun (directional light shining along `sun_direction`, casting shadows when `shadows`),
    ambient light, and `sky`: light from straight above that casts no shadow (the sky's dome),
    so shaded sides and shadows keep some light."""

    sun_direction: tuple = (-0.4, -0.3, -1.0)
    sun_intensity: float = 3.0
    ambient: float = 0.35
    shadows: bool = False
    sky: float = 0.0


def _seg_color(instance_id: int) -> tuple:
    return (instance_id & 255, (instance_id >> 8) & 255, (instance_id >> 16) & 255)


def _decode_ids(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(np.int32)
    return seg[..., 0] | (seg[..., 1] << 8) | (seg[..., 2] << 16)


def _has_visible_back_faces(mesh: trimesh.Trimesh) -> bool:
    """Whether a camera outside the mesh can see one of its back faces first. Not for a closed
    surface wound outward in every piece: a ray enters each piece through a front face. Kept in
    the mesh's trimesh cache, which trimesh empties when the geometry changes (scenes reuse the
    same vehicle models)."""
    key = "ovbench_visible_back_faces"
    if key not in mesh._cache:
        mesh._cache[key] = _find_visible_back_faces(mesh)
    return mesh._cache[key]


def _find_visible_back_faces(mesh: trimesh.Trimesh) -> bool:
    if not (mesh.is_watertight and mesh.is_winding_consistent):
        return True
    corners = mesh.triangles
    signed_volumes = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))
    pieces = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    return bool((np.bincount(pieces, weights=signed_volumes) <= 0).any())


def _both_sides(pr, mesh: trimesh.Trimesh):
    """The mesh as pyrender geometry drawn from both sides in every pass. pyrender culls back faces,
    and its SEG and depth passes ignore a material's doubleSided, so an open mesh would lose every
    surface seen from behind. Such a mesh gets each triangle twice, once reversed with flipped
    normals (inner sides are lit as such); culling keeps exactly one copy from any camera. A closed
    mesh is drawn as it is: its back faces are never in front, and a second copy would double the
    colour pass's cost (llvmpipe shades the hidden far side too)."""
    # Face colours and faceted solids (metadata flat_shading, e.g. procedural vehicles) are drawn
    # flat; vertex colours and file meshes' textures smooth.
    smooth = mesh.visual.kind != "face" and not mesh.metadata.get("flat_shading", False)
    (front,) = pr.Mesh.from_trimesh(mesh, smooth=smooth).primitives
    if not _has_visible_back_faces(mesh):
        return pr.Mesh(primitives=[front])
    count = len(front.positions)
    # Flat shading unrolls the triangles: vertex k of face f is row 3f + k.
    faces = np.arange(count).reshape(-1, 3) if front.indices is None else front.indices.astype(np.int64)
    twice = {name: np.concatenate([value, value]) for name in ("positions", "texcoord_0", "color_0")
             if (value := getattr(front, name)) is not None}
    front.material.doubleSided = False  # else the copy drawn first would show on both sides
    return pr.Mesh(primitives=[pr.Primitive(
        **twice, normals=np.concatenate([front.normals, -front.normals]),
        indices=np.concatenate([faces, faces[:, ::-1] + count]), material=front.material)])


@functools.lru_cache(maxsize=1)
def _sun_class(pr):
    class Sun(pr.DirectionalLight):
        """pyrender's directional light with a shadow map fitted to the scene: its orthographic
        shadow camera spans the scene's bounding sphere (pyrender's spans twice its diagonal,
        a quarter of the texels on the scene) and a depth range of 4 diagonals (pyrender's 10),
        which scales its depth bias down to centimetres."""

        def _get_shadow_camera(self, scene_scale):
            return pr.OrthographicCamera(znear=0.01 * scene_scale, zfar=4.0 * scene_scale,
                                         xmag=scene_scale / 2, ymag=scene_scale / 2)

    return Sun


class Renderer:
    """A scene and an image size on the process's one OpenGL context: load a scene with
    `set_scene`, then render it from any camera. Renderers are cheap; make as many as needed."""

    def __init__(self, width: int, height: int | None = None):
        self._pyrender = import_pyrender()
        self.width, self.height = int(width), int(height or width)
        self._gl = offscreen_renderer()
        tune(self._pyrender, self._gl)
        self._scene = None
        self._nodes: list = []
        self._scenery: list = []
        self._camera_node = None
        self._colour_flags = 0

    def set_scene(self, objects: list[SceneObject], lighting: Lighting | None = None,
                  background=(0.0, 0.0, 0.0), scenery: list[SceneObject] = ()) -> None:
        """Objects get instance ids 1..n; scenery (ground, buildings) is drawn in colour only."""
        pr = self._pyrender
        lighting = lighting or Lighting()
        scene = pr.Scene(bg_color=(*background, 1.0), ambient_light=(lighting.ambient,) * 3)

        def add(obj):
            return scene.add(_both_sides(pr, obj.mesh), pose=obj.pose)

        self._nodes = [add(obj) for obj in objects]
        self._scenery = [add(obj) for obj in scenery]
        sun = _sun_class(pr)(color=np.ones(3), intensity=lighting.sun_intensity)
        scene.add(sun, pose=look_at((0, 0, 0), lighting.sun_direction))
        if lighting.sky > 0:
            # A point light far overhead lights like a second sun from the zenith; pyrender only
            # casts shadows from directional lights here, so it casts none.
            height = 10_000.0
            pose = np.eye(4)
            pose[2, 3] = height
            scene.add(pr.PointLight(color=np.ones(3), intensity=lighting.sky * height ** 2), pose=pose)
        self._camera_node = scene.add(pr.PerspectiveCamera(yfov=np.radians(35.0)))
        self._colour_flags = pr.RenderFlags.SHADOWS_DIRECTIONAL if lighting.shadows else 0
        self._scene = scene

    def _aim(self, camera: Camera) -> None:
        if self._scene is None:
            raise RuntimeError("Renderer.set_scene must be called before rendering")
        self._gl.viewport_width, self._gl.viewport_height = self.width, self.height
        node = self._camera_node
        node.camera.yfov, node.camera.znear, node.camera.zfar = camera.yfov, camera.znear, camera.zfar
        node.camera.aspectRatio = self.width / self.height
        self._scene.set_pose(node, camera.pose)

    def _seg(self, camera: Camera, seg_map: dict):
        self._aim(camera)
        color, depth = self._gl.render(self._scene, self._pyrender.RenderFlags.SEG, seg_map)
        return color, depth

    def instances(self, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """Instance-id map (0 background, k for objects[k-1]) and linear depth (0 background)."""
        seg_map = {node: _seg_color(k + 1) for k, node in enumerate(self._nodes)}
        color, depth = self._seg(camera, seg_map)
        return _decode_ids(color), depth

    def solo(self, camera: Camera, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Object `index` alone: its amodal mask and its own depth (0 where it is absent)."""
        _, depth = self._seg(camera, {self._nodes[index]: (255, 255, 255)})
        return depth > 0, depth

    def rgb(self, camera: Camera) -> np.ndarray:
        """Lit colour image (uint8 H×W×3, edges antialiased; take masks and depth from the SEG
        passes)."""
        self._aim(camera)
        color, _ = self._gl.render(self._scene, self._colour_flags)
        return soften_edges(color)

    def _rgb_only(self, camera: Camera, indices) -> np.ndarray:
        """The objects `indices` alone, lit exactly as in the scene, on the background colour."""
        shown = {self._nodes[k] for k in indices}
        hidden = [node for node in self._nodes if node not in shown] + self._scenery
        for node in hidden:
            node.mesh.is_visible = False
        try:
            return self.rgb(camera)
        finally:
            for node in hidden:
                node.mesh.is_visible = True

    def rgb_solo(self, camera: Camera, index: int) -> np.ndarray:
        """Object `index` alone, lit exactly as in the scene, on the background colour."""
        return self._rgb_only(camera, [index])

    def screen_boxes(self, camera: Camera, indices) -> dict[int, tuple | None]:
        """Per object: the pixels its bounding box can touch, (row0, row1, col0, col1) half-open
        with a pixel of margin; the whole image for a box through the near plane; None when
        nothing of it can be seen (behind the camera or outside the frame)."""
        view = np.linalg.inv(camera.pose)
        focal_y = 1.0 / np.tan(camera.yfov / 2)
        focal_x = focal_y * self.height / self.width
        boxes = {}
        for k in indices:
            node = self._nodes[k]
            corners = trimesh.bounds.corners(node.mesh.bounds)
            points = trimesh.transform_points(corners, view @ self._scene.get_pose(node))
            distance = -points[:, 2]
            if (distance <= camera.znear).all():
                boxes[k] = None
                continue
            if (distance <= camera.znear * 1.01).any():
                boxes[k] = (0, self.height, 0, self.width)
                continue
            cols = self.width / 2 * (1 + focal_x * points[:, 0] / distance)
            rows = self.height / 2 * (1 - focal_y * points[:, 1] / distance)
            box = (max(int(np.floor(rows.min())) - 1, 0), min(int(np.ceil(rows.max())) + 1, self.height),
                   max(int(np.floor(cols.min())) - 1, 0), min(int(np.ceil(cols.max())) + 1, self.width))
            boxes[k] = box if box[0] < box[1] and box[2] < box[3] else None
        return boxes

    def _apart(self, camera: Camera, indices) -> list[list[int]]:
        """The objects that can be seen, in groups whose screen boxes do not meet (greedy, largest
        box first)."""
        boxes = {k: box for k, box in self.screen_boxes(camera, indices).items() if box is not None}
        groups: list[list[int]] = []
        for k in sorted(boxes, key=lambda k: -(boxes[k][1] - boxes[k][0]) * (boxes[k][3] - boxes[k][2])):
            a = boxes[k]
            for group in groups:
                if all(a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
                       for b in (boxes[j] for j in group)):
                    group.append(k)
                    break
            else:
                groups.append([k])
        return groups

    def solos(self, camera: Camera, indices) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """`solo` for each of `indices`, objects whose screen boxes keep apart drawn in one pass."""
        empty = (np.zeros((self.height, self.width), bool), np.zeros((self.height, self.width), np.float32))
        found = {k: empty for k in indices}
        for group in self._apart(camera, indices):
            color, depth = self._seg(camera, {self._nodes[k]: _seg_color(k + 1) for k in group})
            ids = _decode_ids(color)
            for k in group:
                mask = ids == k + 1
                found[k] = (mask, np.where(mask, depth, np.float32(0)))
        return found

    def rgb_solos(self, camera: Camera, indices) -> dict[int, np.ndarray]:
        """`rgb_solo` for each of `indices` that can be seen, objects whose screen boxes keep apart
        drawn in one pass: each image equals the object's own pass wherever that object is (its
        amodal mask), not elsewhere."""
        found = {}
        for group in self._apart(camera, indices):
            image = self._rgb_only(camera, group)
            found.update({k: image for k in group})
        return found


@functools.lru_cache(maxsize=None)
def shared_renderer(width: int, height: int | None = None) -> Renderer:
    """A renderer per size for code that renders one scene at a time (workers, generators)."""
    return Renderer(width, height)
