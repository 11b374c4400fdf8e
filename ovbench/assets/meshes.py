"""Meshes from files (OBJ, GLB/glTF scenes, PLY, STL, OFF) brought into the shared convention.

Convention: metres, +Z up, front along +X, resting on z = 0, centred on the origin in x and y.
Sources with other axes are turned by an `Orientation` (which of their axes is up, which is front).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from ovbench.errors import MeshError, UserError

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
_AXES = {"x": 0, "y": 1, "z": 2}


def _axis(spec: str) -> np.ndarray:
    spec = spec.strip().lower()
    sign = -1.0 if spec.startswith("-") else 1.0
    name = spec.lstrip("+-")
    if name not in _AXES or len(spec) > 2:
        raise UserError(f"bad axis {spec!r}: use one of +x -x +y -y +z -z")
    vector = np.zeros(3)
    vector[_AXES[name]] = sign
    return vector


@dataclass(frozen=True)
class Orientation:
    """Which of the source's axes points up and which points to the vehicle's front."""

    up: str = "+z"
    front: str = "+x"

    def rotation(self) -> np.ndarray:
        """4×4 rotation taking the source's front to +X and its up to +Z."""
        up, front = _axis(self.up), _axis(self.front)
        if abs(np.dot(up, front)) > 0:
            raise UserError(f"up {self.up} and front {self.front} must be different axes")
        left = np.cross(up, front)
        matrix = np.eye(4)
        matrix[:3, :3] = np.stack([front, left, up])
        return matrix


NATIVE = Orientation()
# glTF 2.0 defines +Y up and the asset's front facing +Z.
GLTF = Orientation(up="+y", front="+z")


def default_orientation(path: Path) -> Orientation:
    return GLTF if path.suffix.lower() in (".glb", ".gltf") else NATIVE


def read_mesh(path: Path, with_materials: bool = True) -> trimesh.Trimesh:
    """One mesh from a file, with a scene's graph transforms applied; MeshError if unusable."""
    path = Path(path)
    try:
        # Materials and textures are costly to read and silhouettes do not need them.
        kwargs = {} if with_materials else {"skip_materials": True}
        scene = trimesh.load(path, force="scene", **kwargs)
        mesh = scene.to_mesh() if len(scene.geometry) else None
    except Exception as exc:  # trimesh raises many types on corrupt files
        raise MeshError(f"{path.name}: unreadable mesh ({type(exc).__name__}: {exc})") from exc
    if mesh is None or len(mesh.faces) == 0:
        raise MeshError(f"{path.name}: mesh has no faces")
    if not np.all(np.isfinite(mesh.vertices)) or np.ptp(mesh.vertices, axis=0).max() <= 0:
        raise MeshError(f"{path.name}: degenerate mesh (non-finite or zero-size vertices)")
    return mesh


def to_convention(mesh: trimesh.Trimesh, orientation: Orientation = NATIVE,
                  length: float | None = None) -> trimesh.Trimesh:
    """Rotate into +Z up / +X front, optionally scale to `length` metres along X, stand on z = 0."""
    mesh = mesh.copy()
    mesh.apply_transform(orientation.rotation())
    if length is not None:
        mesh.apply_scale(length / np.ptp(mesh.vertices[:, 0]))
    lo, hi = mesh.bounds
    mesh.apply_translation((-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]))
    return mesh


def load_mesh(path: Path, orientation: Orientation | None = None, length: float | None = None,
              with_materials: bool = True) -> trimesh.Trimesh:
    path = Path(path)
    mesh = read_mesh(path, with_materials=with_materials)
    return to_convention(mesh, orientation or default_orientation(path), length)


def find_meshes(folder: Path) -> list[Path]:
    """Mesh files under a folder (recursively), sorted; UserError if the folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"mesh folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) under {folder}")
    return files
