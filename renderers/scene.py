"""Offscreen rendering of a scene of meshes: lit RGB, exact instance ids and depth, solo passes.

Masks and depth come from pyrender's SEG pass, which pyrender draws with multisampling off, so
they are exact (a colour or depth-only pass is multisampled and blurs silhouette edges).
Every pass draws both faces of every triangle (`_both_sides`), so open meshes render whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import trimesh

from .gl import import_pyrender, offscreen_renderer


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
    """A sun (directional light shining along `sun_direction`) plus ambient light."""

    sun_direction: tuple = (-0.4, -0.3, -1.0)
    sun_intensity: float = 3.0
    ambient: float = 0.35


def _seg_color(instance_id: int) -> tuple:
    return (instance_id & 255, (instance_id >> 8) & 255, (instance_id >> 16) & 255)


def _decode_ids(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(np.int32)
    return seg[..., 0] | (seg[..., 1] << 8) | (seg[..., 2] << 16)


def _has_visible_back_faces(mesh: trimesh.Trimesh) -> bool:
    """Whether a camera outside the mesh can see one of its back faces first. Not for a closed
    surface wound outward in every piece: a ray enters each piece through a front face."""
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
    smooth = mesh.visual.kind != "face"  # face colours need flat shading
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


class Renderer:
    """A scene and an image size on the process's one OpenGL context: load a scene with
    `set_scene`, then render it from any camera. Renderers are cheap; make as many as needed."""

    def __init__(self, width: int, height: int | None = None):
        self._pyrender = import_pyrender()
        self.width, self.height = int(width), int(height or width)
        self._gl = offscreen_renderer()
        self._scene = None
        self._nodes: list = []
        self._scenery: list = []
        self._camera_node = None

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
        sun = pr.DirectionalLight(color=np.ones(3), intensity=lighting.sun_intensity)
        scene.add(sun, pose=look_at((0, 0, 0), lighting.sun_direction))
        self._camera_node = scene.add(pr.PerspectiveCamera(yfov=np.radians(35.0)))
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
        """Lit colour image (uint8 H×W×3, antialiased; take masks and depth from the SEG passes)."""
        self._aim(camera)
        color, _ = self._gl.render(self._scene)
        return color

    def rgb_solo(self, camera: Camera, index: int) -> np.ndarray:
        """Object `index` alone, lit exactly as in the scene, on the background colour."""
        hidden = [node for k, node in enumerate(self._nodes) if k != index] + self._scenery
        for node in hidden:
            node.mesh.is_visible = False
        try:
            return self.rgb(camera)
        finally:
            for node in hidden:
                node.mesh.is_visible = True

@functools.lru_cache(maxsize=None)
def shared_renderer(width: int, height: int | None = None) -> Renderer:
    """A renderer per size for code that renders one scene at a time (workers, generators)."""
    return Renderer(width, height)
