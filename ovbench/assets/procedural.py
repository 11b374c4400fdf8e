"""Procedural vehicles built with trimesh, the default asset source needing no downloads.

Each body is a side profile (x along the length, z up) with wheel arches cut out, extruded across
the width; the cabin is a narrower extrusion in glass colour under a painted roof; wheels are
separate cylinders. Convention shared by every asset source: metres, +Z up, front along +X,
wheels standing on z = 0, centred on the origin in x and y.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import trimesh
from shapely.geometry import Point, Polygon

VEHICLE_TYPES = ("sedan", "hatchback", "suv", "pickup", "van", "bus", "truck")

# Real-world car paint colours (RGB 0-255), jittered per vehicle.
PAINTS = np.array([
    (235, 235, 235), (20, 20, 22), (160, 163, 168), (95, 98, 104), (150, 20, 25),
    (25, 50, 120), (30, 80, 50), (200, 170, 60), (110, 70, 40), (210, 100, 30),
], dtype=np.float64)
GLASS = (40, 50, 62, 255)
TYRE = (25, 25, 25, 255)


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
}


def _extrude_side(profile: Polygon, width: float, color) -> trimesh.Trimesh:
    """Extrude a profile drawn in (x, z) across y ∈ [-width/2, width/2]."""
    mesh = trimesh.creation.extrude_polygon(profile, width)
    # Rotate +90° about x: the profile plane's (X, Y) becomes (x, z) and the extrusion runs along -y.
    rotate = np.array([[1, 0, 0, 0], [0, 0, -1, width / 2], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    mesh.apply_transform(rotate)
    mesh.visual.face_colors = color
    return mesh


@functools.lru_cache(maxsize=1)
def _unit_wheel() -> trimesh.Trimesh:
    """A cylinder of radius 1 and width 1 with its axis along y (built once, then scaled)."""
    wheel = trimesh.creation.cylinder(radius=1.0, height=1.0, sections=20)
    wheel.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    return wheel


def _wheel(x: float, y: float, radius: float, tyre_width: float) -> trimesh.Trimesh:
    unit = _unit_wheel()
    vertices = unit.vertices * (radius, tyre_width, radius) + (x, y, radius)
    wheel = trimesh.Trimesh(vertices, unit.faces.copy(), process=False)
    wheel.visual.face_colors = TYRE
    return wheel


def _paint(rgb) -> np.ndarray:
    """RGBA uint8 (trimesh reads float colours as 0-1)."""
    return np.append(np.clip(np.round(rgb), 0, 255), 255).astype(np.uint8)


def _jittered(shape: Shape, rng: np.random.Generator) -> Shape:
    sx, sy, sz = rng.uniform(0.93, 1.07, size=3)
    return Shape(
        length=shape.length * sx, width=shape.width * sy, height=shape.height * sz,
        clearance=shape.clearance * sz, belt=shape.belt * sz, hood=shape.hood * sz,
        deck=shape.deck * sz, cabin=shape.cabin, roof=shape.roof,
        wheel_radius=shape.wheel_radius * rng.uniform(0.95, 1.05) * min(sz, 1.0),
        axles=shape.axles, cargo=shape.cargo,
    )


def build_vehicle(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """A procedural vehicle of `kind` with seeded proportions and paint, in the shared convention."""
    if kind not in SHAPES:
        raise ValueError(f"unknown vehicle type {kind!r}; known: {', '.join(VEHICLE_TYPES)}")
    s = _jittered(SHAPES[kind], rng)
    paint = _paint(PAINTS[rng.integers(len(PAINTS))] + rng.normal(0, 8, 3))
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
    parts = [
        _extrude_side(lower, s.width, paint),
        _extrude_side(cabin, cabin_width, GLASS),
        _extrude_side(roof, cabin_width, paint),
    ]
    if s.cargo:
        box = Polygon([(s.cargo[0] * s.length, c + 0.25), (s.cargo[1] * s.length, c + 0.25),
                       (s.cargo[1] * s.length, s.height), (s.cargo[0] * s.length, s.height)])
        for x in axles_x:
            box = box.difference(Point(x, r).buffer(r * 1.12, quad_segs=8))
        parts.append(_extrude_side(box, s.width, _paint(PAINTS[rng.integers(len(PAINTS))])))
    tyre_width = 0.2 * s.width / 1.8
    for x in axles_x:
        for side in (-1, 1):
            parts.append(_wheel(x, side * (s.width / 2 - tyre_width / 2), r, tyre_width))
    return trimesh.util.concatenate(parts)
