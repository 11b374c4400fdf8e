"""Built-in 3D occluders and street set dressing, in the shared convention (metres, +Z up, on z = 0).

Occluders: people-like figures, poles, signs, boxes, bins, bicycles and other vehicles. Street
dressing: for ovd, a road ground plane with lane markings and a kerb, and building blocks behind
the scene (`street`); for dyce, a whole street (`street_plan`, `street_scenery`): lanes and
markings, kerbs, sidewalks, and façades with windows and doors along both sides.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import trimesh

from .procedural import VEHICLE_TYPES, build_vehicle

OCCLUDER_KINDS = ("person", "pole", "sign", "box", "bin", "bicycle", "vehicle")
SCENE_OCCLUDER_KINDS = ("person", "pole", "sign", "box", "bin", "bicycle", "barrier", "tree")
CLOTHES = np.array([(30, 30, 35), (70, 40, 30), (40, 60, 110), (150, 30, 40), (200, 200, 190),
                    (90, 110, 60), (120, 120, 125), (210, 160, 60)], dtype=np.float64)
SKIN = np.array([(240, 200, 170), (200, 150, 110), (140, 95, 60), (90, 60, 40)], dtype=np.float64)


def _coloured(mesh: trimesh.Trimesh, rgb) -> trimesh.Trimesh:
    mesh.visual.face_colors = np.append(np.clip(np.round(rgb), 0, 255), 255).astype(np.uint8)
    return mesh


def _pick(palette: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return palette[rng.integers(len(palette))] + rng.normal(0, 10, 3)


def _cylinder(radius, height, z0, rgb, x=0.0, y=0.0, sections=12) -> trimesh.Trimesh:
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    mesh.apply_translation((x, y, z0 + height / 2))
    return _coloured(mesh, rgb)


def _box(extents, centre, rgb) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(centre)
    return _coloured(mesh, rgb)


def _boxes(extents: np.ndarray, centres: np.ndarray, colours: np.ndarray) -> trimesh.Trimesh:
    """Many axis-aligned boxes as one mesh, built with array operations (street sets have dozens)."""
    unit = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    count = len(extents)
    vertices = (unit.vertices[None] * np.asarray(extents)[:, None] + np.asarray(centres)[:, None])
    faces = unit.faces[None] + (np.arange(count) * len(unit.vertices))[:, None, None]
    mesh = trimesh.Trimesh(vertices.reshape(-1, 3), faces.reshape(-1, 3), process=False)
    rgba = np.column_stack([np.clip(np.round(colours), 0, 255), np.full(count, 255)]).astype(np.uint8)
    mesh.visual.face_colors = np.repeat(rgba, len(unit.faces), axis=0)
    mesh.metadata["closed_outward"] = True  # boxes: the renderer culls back faces unchecked
    return mesh


@functools.lru_cache(maxsize=1)
def _unit_capsule() -> trimesh.Trimesh:
    """A capsule of radius 1 whose cylinder is 1 long along z (built once; limbs move its caps)."""
    return trimesh.creation.capsule(height=1.0, radius=1.0, count=(8, 8))


@functools.lru_cache(maxsize=1)
def _unit_sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2, radius=1.0)


def _sphere(radius, centre, rgb) -> trimesh.Trimesh:
    """The unit icosphere scaled and moved (building one anew subdivides it every time)."""
    unit = _unit_sphere()
    return _coloured(trimesh.Trimesh(unit.vertices * radius + centre, unit.faces.copy(), process=False), rgb)


def _limb(start, end, radius, rgb) -> trimesh.Trimesh:
    """A capsule from `start` to `end`: the unit capsule's caps scaled by `radius` and moved apart
    to the limb's length (much faster than building each capsule anew)."""
    unit = _unit_capsule()
    length = float(np.linalg.norm(np.subtract(end, start)))
    cap = np.sign(unit.vertices[:, 2:3]) * (0, 0, 0.5)
    vertices = (unit.vertices - cap) * radius + cap * length
    direction = np.subtract(end, start) / length
    rotation = trimesh.geometry.align_vectors((0, 0, 1), direction)[:3, :3]
    mesh = trimesh.Trimesh(vertices @ rotation.T + np.add(start, end) / 2, unit.faces.copy(), process=False)
    return _coloured(mesh, rgb)


def person(rng: np.random.Generator) -> trimesh.Trimesh:
    """A standing or walking figure: legs, torso, arms, head; 1.5-1.95 m tall."""
    height = rng.uniform(1.5, 1.95)
    s = height / 1.75
    top, bottom, skin = _pick(CLOTHES, rng), _pick(CLOTHES, rng), _pick(SKIN, rng)
    stride = rng.uniform(0.0, 0.25) * s
    hip, shoulder = 0.9 * s, 1.42 * s
    parts = [
        _limb((stride, -0.1 * s, 0.1 * s), (0, -0.1 * s, hip), 0.07 * s, bottom),
        _limb((-stride, 0.1 * s, 0.1 * s), (0, 0.1 * s, hip), 0.07 * s, bottom),
        _limb((0, 0, hip + 0.05 * s), (0, 0, shoulder - 0.05 * s), 0.17 * s, top),
        _limb((0, -0.22 * s, shoulder), (-stride, -0.26 * s, 0.85 * s), 0.055 * s, top),
        _limb((0, 0.22 * s, shoulder), (stride, 0.26 * s, 0.85 * s), 0.055 * s, top),
    ]
    parts.append(_sphere(0.11 * s, (0, 0, shoulder + 0.2 * s), skin))
    mesh = trimesh.util.concatenate(parts)
    mesh.apply_translation((0, 0, -mesh.bounds[0, 2]))
    return mesh


def pole(rng: np.random.Generator) -> trimesh.Trimesh:
    grey = rng.uniform(60, 160) * np.ones(3)
    return _cylinder(rng.uniform(0.05, 0.15), rng.uniform(2.5, 6.0), 0.0, grey)


def sign(rng: np.random.Generator) -> trimesh.Trimesh:
    height = rng.uniform(2.0, 2.8)
    plate_rgb = [(200, 30, 30), (30, 70, 170), (230, 200, 40), (240, 240, 240)][rng.integers(4)]
    plate = rng.uniform(0.5, 0.9)
    parts = [_cylinder(0.04, height, 0.0, (150, 150, 150)),
             _box((0.04, plate, plate * rng.uniform(0.7, 1.0)), (0.05, 0, height - plate / 2),
                  plate_rgb)]
    return trimesh.util.concatenate(parts)


def crate(rng: np.random.Generator) -> trimesh.Trimesh:
    extents = rng.uniform((0.4, 0.4, 0.3), (1.2, 1.2, 1.2))
    rgb = [(150, 110, 70), (190, 160, 120), (80, 80, 85), (60, 100, 60)][rng.integers(4)]
    return _box(extents, (0, 0, extents[2] / 2), np.add(rgb, rng.normal(0, 10, 3)))


def bin_(rng: np.random.Generator) -> trimesh.Trimesh:
    radius, height = rng.uniform(0.25, 0.45), rng.uniform(0.8, 1.2)
    rgb = [(40, 90, 50), (60, 60, 65), (30, 60, 130), (140, 100, 40)][rng.integers(4)]
    return trimesh.util.concatenate([
        _cylinder(radius, height, 0.0, rgb, sections=16),
        _cylinder(radius * 1.08, 0.06, height, np.multiply(rgb, 0.7), sections=16),
    ])


def bicycle(rng: np.random.Generator) -> trimesh.Trimesh:
    """Two wheels in the x-z plane, frame tubes, saddle and handlebar."""
    r = rng.uniform(0.3, 0.36)
    base = 1.05 * r / 0.34
    frame_rgb = _pick(CLOTHES, rng)
    parts = []
    for x in (-base / 2, base / 2):
        wheel = trimesh.creation.torus(major_radius=r, minor_radius=0.025, major_sections=24,
                                       minor_sections=6)
        wheel.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
        wheel.apply_translation((x, 0, r))
        parts.append(_coloured(wheel, (20, 20, 20)))
    seat, bar, crank = (-0.1 * base, 0, 2.6 * r), (0.42 * base, 0, 2.8 * r), (0, 0, r)
    for start, end in [((-base / 2, 0, r), crank), ((-base / 2, 0, r), seat), (crank, seat),
                       (seat, (0.35 * base, 0, 2.5 * r)), (crank, (0.35 * base, 0, 2.5 * r)),
                       ((base / 2, 0, r), bar)]:
        parts.append(_limb(start, end, 0.02, frame_rgb))
    parts.append(_box((0.22, 0.1, 0.05), seat, (20, 20, 20)))
    parts.append(_limb((bar[0], -0.25, bar[2]), (bar[0], 0.25, bar[2]), 0.02, (40, 40, 40)))
    return trimesh.util.concatenate(parts)


def barrier(rng: np.random.Generator) -> trimesh.Trimesh:
    """A road barrier: a striped rail on two feet."""
    length, height = rng.uniform(1.2, 2.5), rng.uniform(0.8, 1.1)
    stripes = int(length / 0.25)
    extents = [(0.08, 0.3, 0.1)] * 2 + [(length / stripes, 0.06, 0.25)] * stripes
    centres = [(0, -length / 2 + 0.1, 0.05), (0, length / 2 - 0.1, 0.05)]
    centres += [(0, -length / 2 + (k + 0.5) * length / stripes, height - 0.125) for k in range(stripes)]
    colours = [(60, 60, 60)] * 2 + [(220, 40, 30) if k % 2 else (240, 240, 240) for k in range(stripes)]
    legs = [_box((0.06, 0.06, height - 0.25), (0, y, (height - 0.25) / 2), (90, 90, 90))
            for y in (-length / 2 + 0.1, length / 2 - 0.1)]
    return trimesh.util.concatenate([_boxes(np.array(extents), np.array(centres), np.array(colours, float)),
                                     *legs])


def tree(rng: np.random.Generator) -> trimesh.Trimesh:
    """A trunk and a round crown, 3-8 m tall."""
    height = rng.uniform(3.0, 8.0)
    trunk = _cylinder(rng.uniform(0.12, 0.3), height * 0.5, 0.0, (90, 65, 40))
    radius = height * rng.uniform(0.2, 0.3)
    lift = height * 0.5 + _unit_sphere().extents[2] * radius * 0.35
    crown = _sphere(radius, (0, 0, lift), rng.uniform((40, 90, 30), (90, 150, 70)))
    return trimesh.util.concatenate([trunk, crown])


def other_vehicle(rng: np.random.Generator) -> trimesh.Trimesh:
    return build_vehicle(VEHICLE_TYPES[rng.integers(len(VEHICLE_TYPES))], rng)


BUILDERS = {"person": person, "pole": pole, "sign": sign, "box": crate, "bin": bin_,
            "bicycle": bicycle, "vehicle": other_vehicle, "barrier": barrier, "tree": tree}


def build_occluder(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    mesh = BUILDERS[kind](rng)
    mesh.metadata["closed_outward"] = True  # closed solids: the renderer culls back faces unchecked
    return mesh


def street(rng: np.random.Generator, road_angle: float, camera_xy: np.ndarray,
           clearance: float) -> trimesh.Trimesh:
    """A road along `road_angle` through the origin (ground, kerbs, dashed centre line) and
    buildings on the side of the road away from the camera, at least `clearance` metres from
    the road centre, so that nothing of the set stands between the camera and the origin."""
    half_road = rng.uniform(4.0, 7.0)
    asphalt = rng.uniform(55, 105) * np.ones(3) + rng.normal(0, 4, 3)
    pavement = rng.uniform(120, 170) * np.ones(3)
    dashes = np.arange(-20, 21) * 9.0
    extents = [(400.0, 400.0, 0.02), (400.0, 3.0, 0.15), (400.0, 3.0, 0.15)]
    centres = [(0, 0, -0.011), (0, -(half_road + 1.5), 0.075), (0, half_road + 1.5, 0.075)]
    colours = [asphalt, pavement, pavement]
    extents += [(3.0, 0.15, 0.01)] * len(dashes)
    centres += [(x, 0, -0.0055) for x in dashes]  # top at -0.0005: below anything standing on z = 0
    colours += [(225, 225, 215)] * len(dashes)
    # Buildings: in road coordinates (x along, y across), on the side away from the camera.
    rotation = trimesh.transformations.rotation_matrix(road_angle, (0, 0, 1))
    camera_across = np.dot(camera_xy, (-np.sin(road_angle), np.cos(road_angle)))
    side = -np.sign(camera_across) or 1.0
    for _ in range(rng.integers(3, 7)):
        size = rng.uniform((6, 6, 5), (20, 12, 30))
        offset = half_road + 3.0 + clearance + rng.uniform(0, 10) + size[1] / 2
        extents.append(tuple(size))
        centres.append((rng.uniform(-40, 40), side * offset, size[2] / 2))
        colours.append(rng.uniform(90, 220, 3) * rng.uniform(0.8, 1.0))
    mesh = _boxes(np.array(extents), np.array(centres, dtype=float), np.array(colours, dtype=float))
    mesh.apply_transform(rotation)
    return mesh


# --------------------------------------------------------------------------- dyce's streets

@dataclass(frozen=True)
class StreetPlan:
    """A straight street along x over [-length/2, length/2]: driving lanes around y = 0, a
    parking lane along each kerb, kerbs at y = ±half_road, sidewalks up to the façades at
    y = ±facade. Sidewalks are `kerb` metres high."""

    length: float
    lanes: int                # driving lanes, half in each direction
    lane_width: float
    parking_width: float
    kerb: float
    sidewalk: float
    crossings: tuple          # x of the zebra crossings

    @property
    def half_road(self) -> float:
        return self.lanes / 2 * self.lane_width + self.parking_width

    @property
    def facade(self) -> float:
        return self.half_road + self.sidewalk


def street_plan(rng: np.random.Generator, length: float) -> StreetPlan:
    crossings = tuple(sorted(rng.uniform(-length / 3, length / 3, size=int(rng.integers(1, 3)))))
    return StreetPlan(length=length, lanes=int(rng.choice([2, 2, 4])), lane_width=rng.uniform(3.0, 3.5),
                      parking_width=rng.uniform(2.6, 2.9), kerb=rng.uniform(0.12, 0.16),
                      sidewalk=rng.uniform(3.0, 5.5), crossings=crossings)


FACADES = np.array([(190, 180, 165), (160, 90, 70), (210, 200, 185), (120, 115, 110), (175, 150, 120),
                    (225, 220, 205), (140, 100, 80), (95, 105, 115)], dtype=np.float64)


def _facade_boxes(rng, plan: StreetPlan, side: int, x0: float, x1: float) -> list[tuple]:
    """(extents, centre, colour) of building blocks between x0 and x1 on one side, their façades
    at y = side·facade, with rows of windows and doors at street level standing out 4 cm."""
    boxes, x, depth = [], x0, 9.0
    while x < x1:
        width, height = rng.uniform(7, 18), rng.uniform(7, 24)
        colour = _pick(FACADES, rng)
        y_wall = side * (plan.facade + depth / 2)
        boxes.append(((width, depth, height), (x + width / 2, y_wall, height / 2), colour))
        glass = rng.uniform(25, 60) * np.ones(3) + rng.normal(0, 4, 3)
        face = side * (plan.facade - 0.02)
        columns = max(1, int(width / rng.uniform(2.6, 3.6)))
        pitch = width / columns
        pane = (pitch * rng.uniform(0.45, 0.65), rng.uniform(1.3, 1.8))
        for floor in range(1, int((height - 1.0) / 3.1)):
            z = floor * 3.1 + 1.6
            for c in range(columns):
                boxes.append(((pane[0], 0.08, pane[1]), (x + (c + 0.5) * pitch, face, z), glass))
        door = int(rng.integers(columns))
        for c in range(columns):
            centre = x + (c + 0.5) * pitch
            if c == door:
                boxes.append(((1.3, 0.08, 2.3), (centre, face, plan.kerb + 1.15), rng.uniform(40, 110, 3)))
            else:  # a shop window
                boxes.append(((pitch * 0.7, 0.08, 1.9), (centre, face, plan.kerb + 1.35), glass))
        x += width
    return boxes


def street_scenery(plan: StreetPlan, rng: np.random.Generator) -> trimesh.Trimesh:
    """The street's fixed set as one mesh: asphalt with lane, parking and centre lines and zebra
    crossings, kerbs, raised sidewalks, and building blocks with windows and doors along both
    sides and across both ends (so that a camera looking along the street sees buildings, not the
    edge of the world). Nothing of it rises above z = 0 inside the road, nor above the kerb height
    between the kerbs and 6 cm before the façades."""
    half, reach = plan.half_road, plan.length / 2 + 14.0
    asphalt = rng.uniform(50, 95) * np.ones(3) + rng.normal(0, 3, 3)
    pavement = rng.uniform(135, 185) * np.ones(3) + rng.normal(0, 4, 3)
    paint = (225, 225, 215)
    boxes = [((2 * reach, 2 * half, 0.02), (0, 0, -0.011), asphalt)]
    for side in (-1, 1):
        y = side * (half + plan.sidewalk / 2)
        # Kerb stones and sidewalk side by side, both exactly `kerb` high.
        boxes.append(((2 * reach, plan.sidewalk - 0.15, plan.kerb), (0, y + side * 0.075, plan.kerb / 2),
                      pavement))
        boxes.append(((2 * reach, 0.15, plan.kerb), (0, side * (half + 0.075), plan.kerb / 2), pavement * 1.12))
        boxes.append(((2 * reach, 0.12, 0.01), (0, side * (half - plan.parking_width), -0.0055), paint))
        for j in range(1, plan.lanes // 2):  # dashed lines between lanes of one direction
            boxes += [((3.0, 0.12, 0.01), (x, side * j * plan.lane_width, -0.0055), paint)
                      for x in np.arange(-reach, reach, 9.0)]
    centre = (230, 190, 40) if rng.random() < 0.5 else paint
    boxes += [((3.0, 0.14, 0.01), (x, 0, -0.0055), centre) for x in np.arange(-reach, reach, 7.0)]
    road = half - plan.parking_width
    for x in plan.crossings:
        boxes += [((3.0, 0.5, 0.01), (x, y, -0.0055), paint) for y in np.arange(-road + 0.5, road, 1.0)]
    for side in (-1, 1):
        boxes += _facade_boxes(rng, plan, side, -reach, reach)
    span = 2 * (plan.facade + 9.0)
    for end in (-1, 1):  # across each end of the street
        height = rng.uniform(10, 24)
        boxes.append(((9.0, span, height), (end * (reach + 4.5), 0, height / 2), _pick(FACADES, rng)))
    extents, centres, colours = (np.array(v, dtype=float) for v in zip(*boxes))
    return _boxes(extents, centres, colours)
