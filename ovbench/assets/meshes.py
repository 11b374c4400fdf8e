"""Meshes from files (OBJ, GLB/glTF scenes, PLY, STL, OFF) brought into the shared convention.

Convention: metres, +Z up, front along +X, resting on z = 0, centred on the origin in x and y.
Sources with other axes are turned by an `Orientation` (which of their axes is up, which is front).
Every generator loads file meshes through `load_mesh`, so they all share one normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from ovbench.errors import InputError, MeshError

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
_AXES = {"x": 0, "y": 1, "z": 2}
CAR_LENGTH = 4.5                 # metres: the size given to a mesh whose units are not metres
VEHICLE_LENGTHS = (1.5, 30.0)    # metres: a longest side outside this range is in other units


def _axis(spec: str) -> np.ndarray:
    spec = spec.strip().lower()
    sign = -1.0 if spec.startswith("-") else 1.0
    name = spec.lstrip("+-")
    if name not in _AXES or len(spec) > 2:
        raise InputError(f"bad axis {spec!r}: use one of +x -x +y -y +z -z")
    vector = np.zeros(3)
    vector[_AXES[name]] = sign
    return vector


def _axis_name(vector: np.ndarray) -> str:
    """The inverse of `_axis`: "+x" … "-z" for a signed unit axis vector."""
    k = int(np.argmax(np.abs(vector)))
    return ("-" if vector[k] < 0 else "+") + "xyz"[k]


@dataclass(frozen=True)
class Orientation:
    """Which of the source's axes points up and which points to the vehicle's front."""

    up: str = "+z"
    front: str = "+x"

    def rotation(self) -> np.ndarray:
        """4×4 rotation taking the source's front to +X and its up to +Z."""
        up, front = _axis(self.up), _axis(self.front)
        if abs(np.dot(up, front)) > 0:
            raise InputError(f"up {self.up} and front {self.front} must be different axes")
        left = np.cross(up, front)
        matrix = np.eye(4)
        matrix[:3, :3] = np.stack([front, left, up])
        return matrix


def orientation_option(up: str | None, front: str | None) -> Orientation | None:
    """The orientation asked for by `--up`/`--front` (None when neither is given), checked now
    rather than in a worker; the one not given keeps ovbench's own axis."""
    if up is None and front is None:
        return None
    orientation = Orientation(up=up or "+z", front=front or "+x")
    orientation.rotation()
    return orientation


NATIVE = Orientation()
# glTF 2.0 defines +Y up and the asset's front facing +Z.
GLTF = Orientation(up="+y", front="+z")


def default_orientation(path: Path) -> Orientation:
    return GLTF if path.suffix.lower() in (".glb", ".gltf") else NATIVE


class ModelFolderResolver(trimesh.resolvers.FilePathResolver):
    """Finds what a mesh file names (MTL files, texture images) beside it, never outside its
    model's folder: the file's own folder, or the one above a ShapeNetCore v2 `models/` folder,
    whose MTL names its images `../images/…`."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        folder = Path(self.parent).resolve()
        self.bound = folder.parent if folder.name == "models" else folder

    def absolute(self, name: str) -> Path:
        path = (Path(self.parent).resolve() / name.strip()).resolve()
        if not path.is_relative_to(self.bound):
            raise ValueError(f"{name!r} lies outside the model's folder")
        return path


def read_mesh(path: Path, with_materials: bool = True) -> trimesh.Trimesh:
    """One mesh from a file, with a scene's graph transforms applied and, `with_materials`, its
    materials and textures (several are packed into one texture); MeshError if unusable."""
    path = Path(path)
    try:
        # Materials and textures are costly to read and silhouettes do not need them.
        kwargs = {"resolver": ModelFolderResolver(path)} if with_materials else {"skip_materials": True}
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
    """Rotate into +Z up / +X front, scale, stand on z = 0 centred in x and y. `length` is the
    longest side in metres; without it a mesh keeps its own units as metres when its longest side
    is a vehicle's (1.5-30 m), and one in other units (unit-normalised, cm, mm) becomes 4.5 m long,
    a car's length."""
    mesh = mesh.copy()
    mesh.apply_transform(orientation.rotation())
    longest = float(mesh.extents.max())
    if length is None and not VEHICLE_LENGTHS[0] <= longest <= VEHICLE_LENGTHS[1]:
        length = CAR_LENGTH
    if length is not None:
        mesh.apply_scale(length / longest)
    lo, hi = mesh.bounds
    mesh.apply_translation((-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]))
    return mesh


def load_mesh(path: Path, orientation: Orientation | None = None, length: float | None = None,
              with_materials: bool = True) -> trimesh.Trimesh:
    path = Path(path)
    mesh = read_mesh(path, with_materials=with_materials)
    return to_convention(mesh, orientation or default_orientation(path), length)


def _upper_share(mesh: trimesh.Trimesh, up: np.ndarray) -> float:
    """How much of the mesh lies above its mid-height along `up`: the mean of its vertices' share
    (detailed parts such as wheels have many) and its surface's share (large panels)."""
    heights = mesh.vertices @ up
    middle = (heights.min() + heights.max()) / 2
    above = mesh.triangles_center @ up > middle
    return float(np.mean(heights > middle) + mesh.area_faces[above].sum() / mesh.area) / 2


def _likely_axes(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Up and front of a vehicle in the convention's frame, guessed from its shape: front lies
    along the longest side (+X kept when that is the longest), up is the signed axis across it
    that leaves the least of the mesh in its upper half (body and wheels sit low)."""
    longest = int(np.argmax(mesh.extents))
    across = [sign * np.eye(3)[k] for k in range(3) if k != longest for sign in (1.0, -1.0)]
    return min(across, key=lambda up: _upper_share(mesh, up)), np.eye(3)[longest]


def orientation_doubt(mesh: trimesh.Trimesh, orientation: Orientation) -> str | None:
    """Why a vehicle mesh in the convention looks wrongly turned, naming the `--up`/`--front`
    that likely fix it; None when it looks upright (longest along X, its mass low)."""
    length, width, height = mesh.extents
    if max(width, height) > length:
        side = "taller" if height >= width else "wider"
        why = f"{side} ({max(width, height):.2f} m) than long ({length:.2f} m)"
    elif _upper_share(mesh, np.array([0.0, 0.0, 1.0])) > 0.5:
        why = "most of its mass (vertices and surface) lies in its upper half"
    else:
        return None
    up, front = _likely_axes(mesh)
    to_source = orientation.rotation()[:3, :3].T
    fix = f"--up {_axis_name(to_source @ up)} --front {_axis_name(to_source @ front)}"
    if front[0] == 0:  # the front moves to another axis, and which of its ends is the front is unknown
        fix += f" (or --front {_axis_name(-to_source @ front)})"
    return f"{why} with --up {orientation.up} --front {orientation.front}: wrong axes likely; try {fix}"


def find_meshes(folder: Path) -> list[Path]:
    """Mesh files under a folder (recursively), sorted; InputError if the folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"mesh folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) under {folder}")
    return files
