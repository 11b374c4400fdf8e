"""Procedural vehicles built with trimesh, the default asset source needing no downloads.

Each body is a side profile (x along the length, z up) with wheel arches cut out, extruded across
the width; the cabin is a narrower painted extrusion with windows under the roof; wheels are tyres with
rims; bumpers, lights and mirrors sit on the body. Materials come from a small texture atlas (one
texel per finish: glossy paint, dark glass, rubber, metal rims, plastic trim, emissive head and
tail lights) with its metallic-roughness and emissive maps, so a vehicle is still one mesh.
Convention shared by every asset source: metres, +Z up, front along +X, wheels standing on z = 0,
centred on the origin in x and y.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import trimesh
from PIL import Image
from shapely.geometry import Point, Polygon

VEHICLE_TYPES = ("sedan", "hatchback", "suv", "pickup", "van", "bus", "truck", "coupe", "wagon",
                 "minivan", "citycar", "minibus")

# Real-world car paint colours (RGB 0-255), jittered per vehicle.
PAINTS = np.array([
    (235, 235, 235), (20, 20, 22), (160, 163, 168), (95, 98, 104), (150, 20, 25),
    (25, 50, 120), (30, 80, 50), (200, 170, 60), (110, 70, 40), (210, 100, 30),
], dtype=np.float64)


@dataclass(frozen=True)
class Finish:
    """One texel of a vehicle's atlas: sRGB colour, PBR metallic and roughness, emitted light."""

    rgb: tuple
    metallic: float
    roughness: float
    emissive: tuple = (0, 0, 0)


# The atlas's texels in order; "paint" and "cargo" take each vehicle's own colours.
FINISHES = ("paint", "cargo", "glass", "tyre", "rim", "trim", "headlight", "taillight")
FIXED_FINISHES = {
    "glass": Finish((16, 22, 30), 0.0, 0.08),
    "tyre": Finish((24, 24, 24), 0.0, 0.92),
    "rim": Finish((168, 170, 175), 0.85, 0.3),
    "trim": Finish((34, 34, 36), 0.0, 0.6),
    "headlight": Finish((240, 238, 225), 0.0, 0.1, (90, 88, 80)),
    "taillight": Finish((170, 18, 18), 0.0, 0.25, (90, 6, 6)),
}


@dataclass(frozen=True)
class Shape:
    """A vehicle type's proportions; x positions are fractions of the length from the centre."""

    length: float
    width: float
    height: float
    clearance: float
    belt: float          # top of the painted lower body
    hood: float          # height of the front end
    deck: float          # height of the rear end
    cabin: tuple         # (rear, front) x of the cabin at the belt line
    roof: tuple          # (rear, front) x of the roof
    wheel_radius: float
    axles: tuple         # x of each axle
    cargo: tuple = ()    # (rear, front) x of a separate cargo box up to `height` (trucks)


SHAPES = {
    "sedan": Shape(4.6, 1.8, 1.45, 0.15, 0.95, 0.82, 0.92, (-0.23, 0.18), (-0.12, 0.03), 0.32,
                   (-0.29, 0.29)),
    "hatchback": Shape(4.0, 1.75, 1.48, 0.15, 0.95, 0.82, 0.95, (-0.47, 0.18), (-0.43, 0.0),
                       0.31, (-0.31, 0.31)),
    "suv": Shape(4.7, 1.9, 1.75, 0.22, 1.1, 1.0, 1.1, (-0.48, 0.16), (-0.46, 0.02), 0.38,
                 (-0.30, 0.30)),
    "pickup": Shape(5.3, 1.95, 1.85, 0.25, 1.1, 1.05, 1.1, (-0.13, 0.15), (-0.11, 0.03), 0.38,
                    (-0.32, 0.30)),
    "van": Shape(5.0, 2.0, 2.3, 0.18, 1.15, 1.0, 1.15, (-0.5, 0.24), (-0.5, 0.08), 0.35,
                 (-0.31, 0.30)),
    "bus": Shape(11.0, 2.5, 3.1, 0.3, 1.3, 1.3, 1.3, (-0.5, 0.5), (-0.49, 0.485), 0.5,
                 (-0.30, 0.33)),
    "truck": Shape(7.5, 2.4, 3.3, 0.35, 1.35, 1.35, 1.35, (0.22, 0.5), (0.24, 0.47), 0.5,
                   (-0.38, -0.25, 0.36), cargo=(-0.5, 0.2)),
    "coupe": Shape(4.4, 1.82, 1.32, 0.13, 0.88, 0.74, 0.86, (-0.27, 0.12), (-0.16, -0.02), 0.33,
                   (-0.30, 0.30)),
    "wagon": Shape(4.8, 1.82, 1.5, 0.16, 0.95, 0.82, 0.95, (-0.49, 0.18), (-0.47, 0.02), 0.32,
                   (-0.29, 0.30)),
    "minivan": Shape(4.9, 1.92, 1.78, 0.17, 1.0, 0.92, 1.0, (-0.49, 0.26), (-0.48, 0.1), 0.33,
                     (-0.31, 0.31)),
    "citycar": Shape(3.5, 1.62, 1.55, 0.15, 0.92, 0.84, 0.92, (-0.47, 0.2), (-0.44, 0.02), 0.28,
                     (-0.32, 0.32)),
    "minibus": Shape(7.0, 2.2, 2.7, 0.25, 1.2, 1.15, 1.2, (-0.5, 0.36), (-0.5, 0.3), 0.4,
                     (-0.30, 0.28)),
}


# Parts are (vertices, faces) arrays: a Trimesh a part costs more than the part's geometry.

def _extrude_side(profile: Polygon, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Extrude a profile drawn in (x, z) across y ∈ [-width/2, width/2]."""
    vertices, faces = trimesh.creation.triangulate_polygon(profile)
    mesh = trimesh.creation.extrude_triangulation(vertices, faces, width)
    # Rotate +90° about x: the profile plane's (X, Y) becomes (x, z) and the extrusion runs along -y.
    rotate = np.array([[1, 0, 0, 0], [0, 0, -1, width / 2], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    return trimesh.transform_points(mesh.vertices, rotate), mesh.faces


@functools.lru_cache(maxsize=1)
def _unit_box() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(1.0, 1.0, 1.0))


def _box(extents, centre) -> tuple[np.ndarray, np.ndarray]:
    unit = _unit_box()
    return unit.vertices * extents + centre, unit.faces


@functools.lru_cache(maxsize=1)
def _unit_wheel() -> trimesh.Trimesh:
    """A cylinder of radius 1 and width 1 with its axis along y (built once, then scaled)."""
    wheel = trimesh.creation.cylinder(radius=1.0, height=1.0, sections=20)
    wheel.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    return wheel


def _wheel(x: float, y: float, radius: float, width: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    unit = _unit_wheel()
    return unit.vertices * (radius, width, radius) + (x, y, z), unit.faces


def _paint(rgb) -> tuple:
    return tuple(int(v) for v in np.clip(np.round(rgb), 0, 255))


def _jittered(shape: Shape, rng: np.random.Generator) -> Shape:
    sx, sy, sz = rng.uniform(0.93, 1.07, size=3)
    return Shape(
        length=shape.length * sx, width=shape.width * sy, height=shape.height * sz,
        clearance=shape.clearance * sz, belt=shape.belt * sz, hood=shape.hood * sz,
        deck=shape.deck * sz, cabin=shape.cabin, roof=shape.roof,
        wheel_radius=shape.wheel_radius * rng.uniform(0.95, 1.05) * min(sz, 1.0),
        axles=shape.axles, cargo=shape.cargo,
    )


def _atlas(finishes: dict[str, Finish]) -> trimesh.visual.material.PBRMaterial:
    """The vehicle's material: one texel per finish in FINISHES order, in colour (sRGB),
    metallic-roughness (glTF: roughness in G, metallic in B) and emissive maps."""
    ordered = [finishes[name] for name in FINISHES]
    colour = np.array([[(*f.rgb, 255) for f in ordered]], np.uint8)
    metal_rough = np.array([[(0, round(f.roughness * 255), round(f.metallic * 255)) for f in ordered]],
                           np.uint8)
    emissive = np.array([[f.emissive for f in ordered]], np.uint8)
    return trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(colour), metallicRoughnessTexture=Image.fromarray(metal_rough),
        emissiveTexture=Image.fromarray(emissive), emissiveFactor=(1.0, 1.0, 1.0),
        metallicFactor=1.0, roughnessFactor=1.0)


def _textured(parts: list[tuple[tuple, str]], finishes: dict[str, Finish]) -> trimesh.Trimesh:
    """One mesh of ((vertices, faces), finish) pairs, each part's vertices at its finish's texel
    centre."""
    vertices = np.concatenate([v for (v, _), _ in parts])
    offsets = np.cumsum([0] + [len(v) for (v, _), _ in parts[:-1]])
    faces = np.concatenate([f + offset for ((_, f), _), offset in zip(parts, offsets)])
    uv = np.concatenate([np.tile(((FINISHES.index(name) + 0.5) / len(FINISHES), 0.5), (len(v), 1))
                         for (v, _), name in parts])
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)  # bumpers and mirrors stick out of the body
    vertices = vertices + (-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, 0.0)  # centre again
    mesh = trimesh.Trimesh(vertices, faces, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=_atlas(finishes)))
    # Drawn with flat shading: the parts are faceted solids, not smooth surfaces; each a closed
    # surface wound outward, so the renderer culls back faces without checking.
    mesh.metadata["flat_shading"] = True
    mesh.metadata["closed_outward"] = True
    return mesh


def finish_of_faces(mesh: trimesh.Trimesh) -> list[str]:
    """The finish (FINISHES) of every face of a procedural vehicle, read back from its uv."""
    u = mesh.visual.uv[mesh.faces[:, 0], 0]
    return [FINISHES[int(k)] for k in np.floor(u * len(FINISHES))]


def build_vehicle(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """A procedural vehicle of `kind` with seeded proportions, paint and finishes, in the shared
    convention."""
    if kind not in SHAPES:
        raise ValueError(f"unknown vehicle type {kind!r}; known: {', '.join(VEHICLE_TYPES)}")
    s = _jittered(SHAPES[kind], rng)
    finishes = dict(FIXED_FINISHES)
    finishes["paint"] = Finish(_paint(PAINTS[rng.integers(len(PAINTS))] + rng.normal(0, 8, 3)),
                               float(rng.uniform(0.1, 0.45)), float(rng.uniform(0.2, 0.4)))
    finishes["cargo"] = Finish(_paint(PAINTS[rng.integers(len(PAINTS))]), 0.05, 0.55)
    half, r, c = s.length / 2, s.wheel_radius, s.clearance
    axles_x = [a * s.length for a in s.axles]
    bevel = min(0.12, 0.25 * (s.hood - c))

    body_rear = s.cargo[1] * s.length if s.cargo else -half
    # Keep the cabin inside the bevelled corners so the profile never folds over itself.
    cab_rear = max(s.cabin[0] * s.length, body_rear + 2 * bevel)
    cab_front = min(s.cabin[1] * s.length, half - 3 * bevel)
    roof_rear = max(s.roof[0] * s.length, cab_rear)
    roof_front = min(s.roof[1] * s.length, cab_front)
    lower = Polygon([
        (body_rear, c + bevel), (body_rear + bevel, c), (half - bevel, c), (half, c + bevel),
        (half, s.hood - bevel), (half - 2 * bevel, s.hood), (cab_front, s.belt),
        (cab_rear, s.belt), (body_rear + bevel, s.deck), (body_rear, s.deck - bevel),
    ])
    for x in axles_x:
        lower = lower.difference(Point(x, r).buffer(r * 1.12, quad_segs=8))
    top = s.height - 0.06
    cabin = Polygon([(cab_rear, s.belt - 0.01), (cab_front, s.belt - 0.01),
                     (roof_front, top), (roof_rear, top)])
    roof = Polygon([(roof_rear, top), (roof_front, top),
                    (roof_front - 0.03, s.height), (roof_rear + 0.03, s.height)])
    cabin_width = s.width * 0.86
    # A painted cabin with windows standing 1.5 cm out of it: the windscreen and rear window
    # (the cabin's outline grown, cut to the window band, between the A-pillars), the side
    # windows (the outline shrunk, a frame left around them), and pillars between side windows.
    band = Polygon([(-half, s.belt + 0.05), (half, s.belt + 0.05), (half, top - 0.05), (-half, top - 0.05)])
    screens = cabin.buffer(0.015, join_style=2).intersection(band)
    sides = cabin.buffer(-0.06, join_style=2).intersection(band)
    parts = [(_extrude_side(lower, s.width), "paint"), (_extrude_side(cabin, cabin_width), "paint"),
             (_extrude_side(roof, cabin_width), "paint"), (_extrude_side(screens, cabin_width - 0.16), "glass")]
    if not sides.is_empty and sides.geom_type == "Polygon":
        parts.append((_extrude_side(sides, cabin_width + 0.03), "glass"))
        x0, _, x1, _ = sides.bounds
        windows = max(1, round((x1 - x0) / 1.3))
        for k in range(1, windows):
            x = x0 + k * (x1 - x0) / windows
            parts.append((_box((0.08, cabin_width + 0.05, top - s.belt - 0.1), (x, 0, (s.belt + top) / 2)),
                          "paint"))
    rear = body_rear
    if s.cargo:
        rear = s.cargo[0] * s.length
        box = Polygon([(rear, c + 0.25), (s.cargo[1] * s.length, c + 0.25),
                       (s.cargo[1] * s.length, s.height), (rear, s.height)])
        for x in axles_x:
            box = box.difference(Point(x, r).buffer(r * 1.12, quad_segs=8))
        parts.append((_extrude_side(box, s.width), "cargo"))
    # Bumpers, lights on the front and rear faces, and mirrors at the cabin's front corners.
    bumper_z = c + min(0.15, 0.3 * (s.hood - c))
    for x in (half, rear):
        parts.append((_box((0.1, s.width * 0.98, 0.16), (x, 0, bumper_z)), "trim"))
    light = min(0.14, 0.2 * (s.hood - c))
    for side in (-1, 1):
        y = side * (s.width / 2 - 0.28)
        parts.append((_box((0.06, 0.32, light), (half, y, s.hood - bevel - light)), "headlight"))
        tail_z = (s.height - 0.5 if s.cargo else s.deck - bevel - light)
        parts.append((_box((0.06, 0.22, light * 1.3), (rear, y, tail_z)), "taillight"))
        parts.append((_box((0.12, 0.1, 0.1), (cab_front - 0.05, side * (s.width / 2 + 0.05), s.belt + 0.12)),
                      "trim"))
    tyre_width = 0.2 * s.width / 1.8
    for x in axles_x:
        for side in (-1, 1):
            y = side * (s.width / 2 - tyre_width / 2)
            parts.append((_wheel(x, y, r, tyre_width, r), "tyre"))
            parts.append((_wheel(x, y + side * 0.01, r * 0.6, tyre_width, r), "rim"))
    return _textured(parts, finishes)
