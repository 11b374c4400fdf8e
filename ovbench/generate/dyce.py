"""DYCE-style 3D scenes (`ovbench generate dyce`): several objects rendered together and each alone.

SeGAN's DYCE rendered scenes and re-rendered every object with everything else removed; here:
per view, one instance pass gives the instance map and depth, one pass per object its amodal mask
and own depth (visible = the object's pixels of the instance map), and one colour pass per
occluded object its appearance alone, lit as in the scene. Objects with fewer than `min_visible`
visible pixels are not annotated (DYCE used 10) but still occlude; they are listed in the split's
top-level `occluders` so every hidden pixel has its occluder on record.

Per image: the input, a 16-bit depth map in millimetres (`depth/<id>.png`), the instance map
(`instances/<id>.png`, value k = the k-th object of the image record's `objects`), the occlusion
graph (for each overlapping pair: who is in front at most shared pixels, and how many), and the
depth order. Per object: amodal and visible masks, RGBA appearance (alpha = amodal mask; the
visible pixels are the input's own), mean depth, boxes, occlude_rate, occluders, order.
Scenes are split so that test vehicle models are never seen in training.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import trimesh
from shapely.geometry import Polygon

from ovbench.assets.occluders import (
    SCENE_OCCLUDER_KINDS,
    StreetPlan,
    build_occluder,
    street_plan,
    street_scenery,
)
from ovbench.assets.procedural import build_vehicle
from ovbench.assets.sources import (
    ModelRef,
    SourceListing,
    list_source,
    load_model,
    orientation_doubts,
    source_fingerprint,
    warn_orientation_doubts,
)
from ovbench.errors import InputError
from ovbench.formats import dataset, writer
from ovbench.formats import masks as masks_lib
from ovbench.generate import common
from ovbench.generate.common import check_size
from ovbench.generate.street import CATEGORY_OF_TYPE, YFOV, sky_colours, street_lighting
from ovbench.generator_settings import LAYOUTS, MAX_OBJECTS, DyceConfig
from ovbench.renderers import Camera, SceneObject, look_at, shared_renderer
from ovbench.seeding import rng_for


@common.per_run_cache(maxsize=256)
def vehicle_mesh(ref: ModelRef) -> trimesh.Trimesh:
    """The model, built or loaded once a run: scenes reuse vehicle models (a street takes 20-30 of
    a split's ~150 default models) and never change their meshes."""
    return load_model(ref)


FIGURE_VARIANTS = 64     # per kind and split: a street's ~15 people share a pair of figures or so


@common.per_run_cache(maxsize=2048)
def occluder_mesh(seed: int, split: str, kind: str, variant: int) -> trimesh.Trimesh:
    """One of a split's FIGURE_VARIANTS built-in figures of a kind (people, street furniture),
    built once a run as vehicle models are: a street takes ~15 people and ~20 pieces of
    furniture, and a mesh reused keeps its prepared surface."""
    return build_occluder(kind, rng_for(seed, "dyce-figure", split, kind, variant))


def _figure(config: DyceConfig, split: "DyceSplit", kind: str, rng) -> tuple:
    mesh = occluder_mesh(config.seed, split.name, kind, int(rng.integers(FIGURE_VARIANTS)))
    return mesh, kind, None, "builtin"


GROUND_RADIUS = 11.0     # metres: objects stand inside this disc (open layout)
PLACEMENT_TRIES = 200
CATEGORIES = ("car", "bus", "truck", *SCENE_OCCLUDER_KINDS)
SKY_LIGHT = 1.2          # light from the sky's dome, beside the sun and the ambient term


@dataclass
class Placed:
    mesh: trimesh.Trimesh
    pose: np.ndarray
    category: str
    model_id: str | None      # vehicles only
    source: str
    radius: float             # footprint circle


@dataclass
class ViewObjects:
    """Masks and depths of one view. Per object k (the k-th placed) that can be seen, crops of
    its screen box `boxes[k]` (row0, row1, col0, col1): nothing of the object lies outside it."""

    instances: np.ndarray     # int32, 0 background
    depth: np.ndarray         # float32 metres, 0 background
    boxes: dict
    amodal: dict              # bool crops
    visible: dict             # bool crops: the object's pixels of the instance map
    own_depth: dict           # float32 crops: the object's own depth, 0 off it


def _sub(crop: np.ndarray, box: tuple, inner: tuple) -> np.ndarray:
    """The part of a crop of `box` that lies in `inner`, a box inside it."""
    return crop[inner[0] - box[0]:inner[1] - box[0], inner[2] - box[2]:inner[3] - box[2]]


def place_objects(meshes: list[tuple], rng: np.random.Generator, radius: float = GROUND_RADIUS,
                  attempts: int = 5) -> list[Placed]:
    """Stand the meshes on the ground at random positions and headings inside the disc, footprints
    not overlapping (largest first, several attempts); InputError when they cannot all fit."""
    items = []
    for mesh, category, model_id, source in meshes:
        mesh = mesh.copy()
        mesh.apply_translation((0, 0, -mesh.bounds[0, 2]))
        items.append((mesh, category, model_id, source, float(np.linalg.norm(mesh.extents[:2]) / 2)))
    order = sorted(range(len(items)), key=lambda k: -items[k][4])
    best = 0
    for _ in range(attempts):
        placed: dict[int, Placed] = {}
        for k in order:
            mesh, category, model_id, source, footprint = items[k]
            for _ in range(PLACEMENT_TRIES):
                distance = radius * math.sqrt(rng.uniform(0, 1))
                angle = rng.uniform(0, 2 * math.pi)
                xy = np.array([distance * math.cos(angle), distance * math.sin(angle)])
                if all(np.linalg.norm(xy - p.pose[:2, 3]) > footprint + p.radius + 0.2
                       for p in placed.values()):
                    pose = trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * math.pi), (0, 0, 1))
                    pose[:2, 3] = xy
                    placed[k] = Placed(mesh, pose, category, model_id, source, footprint)
                    break
            else:
                break
        if len(placed) == len(items):
            return [placed[k] for k in range(len(items))]
        best = max(best, len(placed))
    raise InputError(f"cannot place {len(items)} objects without overlap on the ground ({radius:.0f} m "
                    f"radius; at most {best} fitted): lower `objects`")


def render_view(renderer, count: int, camera: Camera) -> ViewObjects:
    """The instance map and depth, and every object's amodal mask and own depth from its solo
    pass (several objects a pass where their screen boxes keep apart; see Renderer.solos)."""
    ids, depth = renderer.instances(camera)
    solos = renderer.solos(camera, range(count))
    boxes = {k: box for k, (box, _, _) in solos.items()}
    visible = {k: ids[row0:row1, col0:col1] == k + 1 for k, (row0, row1, col0, col1) in boxes.items()}
    return ViewObjects(ids, depth, boxes, {k: solo[1] for k, solo in solos.items()}, visible,
                       {k: solo[2] for k, solo in solos.items()})


def occlusion_graph(view: ViewObjects, keys: list[int]) -> list[dict]:
    """For each pair of objects whose amodal masks overlap: the one nearer the camera at most of
    the shared pixels is in front."""
    edges = []
    seen = sorted(view.boxes)
    for i, a in enumerate(seen):
        for b in seen[i + 1:]:
            box_a, box_b = view.boxes[a], view.boxes[b]
            shared_box = (max(box_a[0], box_b[0]), min(box_a[1], box_b[1]),
                          max(box_a[2], box_b[2]), min(box_a[3], box_b[3]))
            if shared_box[0] >= shared_box[1] or shared_box[2] >= shared_box[3]:
                continue  # screen boxes apart: no pixel shared
            shared = _sub(view.amodal[a], box_a, shared_box) & _sub(view.amodal[b], box_b, shared_box)
            n = int(shared.sum())
            if n == 0:
                continue
            a_front = int((_sub(view.own_depth[a], box_a, shared_box)[shared]
                           < _sub(view.own_depth[b], box_b, shared_box)[shared]).sum())
            front, back = (a, b) if a_front * 2 >= n else (b, a)
            edges.append({"front": keys[front], "back": keys[back], "pixels": n})
    return edges


def _camera(placed: list[Placed], rng) -> Camera:
    """Eye (1.4-1.8 m) or dash-cam (1.1-1.3 m) height, looking at an object from 6-28 m, not
    standing inside any object. Most views look past a second object at the first, as street
    views do, so that objects hide one another."""
    for _ in range(100):
        target = placed[int(rng.integers(len(placed)))]
        height = rng.uniform(1.4, 1.8) if rng.random() < 0.7 else rng.uniform(1.1, 1.3)
        others = [p for p in placed if p is not target]
        if others and rng.random() < 0.7:
            between = others[int(rng.integers(len(others)))]
            offset = between.pose[:2, 3] - target.pose[:2, 3]
            angle = math.atan2(offset[1], offset[0]) + rng.normal(0, 0.15)
            distance = float(np.linalg.norm(offset)) + between.radius + rng.uniform(6.0, 14.0)
        else:
            angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(6.0, 20.0)
        distance = min(max(distance, 6.0), 28.0)
        eye = np.array([target.pose[0, 3] + distance * math.cos(angle),
                        target.pose[1, 3] + distance * math.sin(angle), height])
        if all(np.linalg.norm(eye[:2] - p.pose[:2, 3]) > p.radius + 0.5 for p in placed):
            centre = target.pose[:3, 3] + (0, 0, target.mesh.extents[2] * 0.5)
            return Camera(look_at(eye, centre), yfov=YFOV)
    raise InputError("could not find a camera position outside every object: lower `objects`")


def _ground(rng) -> SceneObject:
    # 100 m: beyond every camera's view of the disc, and small enough for a sharp shadow map.
    ground = trimesh.creation.box(extents=(100.0, 100.0, 0.02))
    ground.apply_translation((0, 0, -0.011))
    ground.visual.face_colors = np.append(np.clip(rng.uniform(60, 130) * np.ones(3) + rng.normal(0, 6, 3),
                                                  0, 255), 255).astype(np.uint8)
    return SceneObject(ground)


def _scene_meshes(config: DyceConfig, split: "DyceSplit", rng) -> tuple[list[tuple], dict]:
    """The scene's (mesh, category, model id, source) tuples, and the orientation doubts of its
    file vehicles."""
    lo, hi = config.object_range()
    count = int(rng.integers(lo, hi + 1))
    meshes, doubts = [], {}
    for k in range(count):
        if k == 0 or rng.random() < 0.5:  # at least one vehicle per scene
            meshes.append(_vehicle(split.vehicles, rng, doubts))
        else:
            kind = SCENE_OCCLUDER_KINDS[int(rng.integers(len(SCENE_OCCLUDER_KINDS)))]
            meshes.append(_figure(config, split, kind, rng))
    return meshes, doubts


# --------------------------------------------------------------------------- street layout

STREET_MIN_LENGTH = 20.0          # metres of street, longer when the parked rows need it
LOW_BAND = 2.2                    # metres: footprints below and above this height collide apart
FURNITURE = {"pole": 0.2, "sign": 0.15, "tree": 0.2, "bin": 0.15, "barrier": 0.1, "bicycle": 0.1,
             "box": 0.1}


@dataclass
class Footprint:
    """Where an object stands, as oriented boxes of its parts below and above LOW_BAND (a tree's
    trunk and crown), to keep objects apart where they could touch."""

    low: object                   # shapely polygon, or None
    high: object
    bounds: tuple = (None, None)  # each part's (x0, y0, x1, y1): street_layout tells most pairs apart by these

    @staticmethod
    def of(mesh: trimesh.Trimesh, pose: np.ndarray) -> "Footprint":
        bands, bounds = [], []
        for extent in _band_extents(mesh):
            if extent is None:
                bands.append(None)
                bounds.append(None)
                continue
            x0, y0, x1, y1 = extent
            corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]) @ pose[:2, :2].T + pose[:2, 3]
            bands.append(Polygon(corners))
            bounds.append((*corners.min(0), *corners.max(0)))
        return Footprint(*bands, tuple(bounds))

    def clear_of(self, other: "Footprint", gap: float) -> bool:
        return all(a is None or b is None or a.distance(b) > gap
                   for a, b in ((self.low, other.low), (self.high, other.high)))

    def within(self, y_min: float, y_max: float) -> bool:
        """Whether every part lies between the two lines y = y_min and y = y_max (|y| for the
        sides of the street are handled by the caller)."""
        return all(part is None or (y_min <= part.bounds[1] and part.bounds[3] <= y_max)
                   for part in (self.low, self.high))


def _band_extents(mesh: trimesh.Trimesh) -> tuple:
    """The mesh's (x0, y0, x1, y1) extents below and above LOW_BAND (None for a band it does not
    reach), kept in its trimesh cache (emptied when the geometry changes): a street places each
    of its reused models many times."""
    key = "ovbench_band_extents"
    if key not in mesh._cache:
        extents = []
        for chosen in (mesh.vertices[:, 2] < LOW_BAND, mesh.vertices[:, 2] >= LOW_BAND):
            points = mesh.vertices[chosen, :2]
            extents.append((*points.min(0), *points.max(0)) if len(points) else None)
        mesh._cache[key] = tuple(extents)
    return mesh._cache[key]


def _pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    pose = trimesh.transformations.rotation_matrix(yaw, (0, 0, 1))
    pose[:3, 3] = (x, y, z)
    return pose


def _vehicle(vehicles: list[ModelRef], rng, doubts: dict) -> tuple:
    ref = vehicles[int(rng.integers(len(vehicles)))]
    mesh = vehicle_mesh(ref)
    doubts.update(orientation_doubts(ref, mesh))
    return mesh, CATEGORY_OF_TYPE.get(ref.model_id.rsplit("-", 1)[0], "car"), ref.model_id, ref.source


def _parked_rows(meshes: list[tuple], rng) -> tuple[list[list[tuple]], float]:
    """Split the parked vehicles between the two kerbs, bumper to bumper with 0.4-1.5 m between
    them and now and then a longer gap (a driveway); returns per side (vehicle, x) rows centred on
    x = 0, and the longest row's length."""
    rows, lengths = [[], []], [0.0, 0.0]
    for item in meshes:
        side = int(np.argmin(lengths))
        gap = rng.uniform(0.4, 1.5) if rng.random() > 0.12 else rng.uniform(3.0, 7.0)
        length = item[0].extents[0]
        rows[side].append((item, lengths[side] + length / 2))
        lengths[side] += length + gap
    return [[(item, x - lengths[s] / 2) for item, x in rows[s]] for s in (0, 1)], max(lengths)


def street_layout(config: DyceConfig, split: "DyceSplit", rng) -> tuple[list[Placed], StreetPlan, dict]:
    """A street's objects: about 40 % parked vehicles in rows along both kerbs, 10 % vehicles in
    the driving lanes, 25 % pedestrians on the sidewalks and the crossings, the rest street
    furniture along the kerbs (poles, signs, trees, bins, barriers, bicycles, boxes). Every
    object keeps clear of the others, road objects 0.3 m off the kerbs and sidewalk objects
    between kerb and façade, so the street's fixed set never hides one (see street_scenery)."""
    lo, hi = config.object_range()
    count = int(rng.integers(lo, hi + 1))
    n_parked = max(1, round(count * 0.4))
    n_moving = min(round(count * 0.1), count - n_parked)
    n_people = min(round(count * 0.25), count - n_parked - n_moving)
    n_furniture = count - n_parked - n_moving - n_people
    doubts: dict = {}
    rows, row_length = _parked_rows([_vehicle(split.vehicles, rng, doubts) for _ in range(n_parked)], rng)
    plan = street_plan(rng, max(STREET_MIN_LENGTH, row_length + 6.0))
    half, road = plan.half_road, plan.half_road - plan.parking_width
    placed: list[Placed] = []
    prints: list[Footprint] = []
    # Per band, the placed parts' bounds (NaN for a band one lacks): a placement is checked
    # against the few objects whose bounds come within the gap, not against every one.
    bounds = np.full((2, count, 4), np.nan)

    def put(item: tuple, pose: np.ndarray, band: tuple | None, gap: float) -> bool:
        mesh = item[0]
        footprint = Footprint.of(mesh, pose)
        if band is not None and not footprint.within(*band):
            return False
        near = np.zeros(len(prints), bool)
        for others, box in zip(bounds[:, :len(prints)], footprint.bounds):
            if box is not None:
                near |= np.max([others[:, 0] - box[2], box[0] - others[:, 2],
                                others[:, 1] - box[3], box[1] - others[:, 3]], axis=0) <= gap
        if not all(footprint.clear_of(prints[j], gap) for j in np.flatnonzero(near)):
            return False
        bounds[:, len(prints)] = [(np.nan,) * 4 if box is None else box for box in footprint.bounds]
        placed.append(Placed(mesh, pose, item[1], item[2], item[3],
                             float(np.linalg.norm(mesh.extents[:2]) / 2)))
        prints.append(footprint)
        return True

    for side, row in zip((-1, 1), rows):  # right-hand traffic: the y < 0 side faces +x
        for item, x in row:
            yaw = (0.0 if side < 0 else math.pi) + (math.pi if rng.random() < 0.06 else 0.0) + rng.normal(0, 0.015)
            # 0.3 m or more off the kerb, turned or not.
            length, width = item[0].extents[:2]
            y = side * (half - 0.3 - width / 2 - length / 2 * abs(math.sin(yaw)) - abs(rng.normal(0, 0.05)))
            put(item, _pose(x, y, 0.0, yaw), None, 0.05)
    road_band = (-(half - 0.3), half - 0.3)
    for _ in range(n_moving):
        item = _vehicle(split.vehicles, rng, doubts)
        for _ in range(30):
            direction = 1 if rng.random() < 0.5 else -1
            lane = int(rng.integers(max(1, plan.lanes // 2)))
            y = -direction * (lane + 0.5) * plan.lane_width + rng.normal(0, 0.2)
            yaw = (0.0 if direction > 0 else math.pi) + rng.normal(0, 0.03)
            x = rng.uniform(-plan.length / 2, plan.length / 2)
            if put(item, _pose(x, y, 0.0, yaw), road_band, 1.0):
                break
    for k in range(n_people):
        item = _figure(config, split, "person", rng)
        for _ in range(30):
            x = rng.uniform(-plan.length / 2, plan.length / 2)
            if rng.random() < 0.25 and plan.crossings:  # on a zebra crossing
                x = plan.crossings[int(rng.integers(len(plan.crossings)))] + rng.uniform(-1.3, 1.3)
                y = rng.uniform(-road, road)
                pose, band = _pose(x, y, 0.0, rng.choice([-1, 1]) * math.pi / 2 + rng.normal(0, 0.2)), road_band
            else:
                side = rng.choice([-1, 1])
                y = side * rng.uniform(half + 0.4, plan.facade - 0.5)
                yaw = rng.choice([0.0, math.pi]) + rng.normal(0, 0.3)
                band = (half + 0.05, plan.facade - 0.15) if side > 0 else (-(plan.facade - 0.15), -(half + 0.05))
                pose = _pose(x, y, plan.kerb, yaw)
            if put(item, pose, band, 0.1):
                break
    kinds, weights = list(FURNITURE), np.array(list(FURNITURE.values()))
    for _ in range(n_furniture):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        item = _figure(config, split, kind, rng)
        for _ in range(30):
            side = rng.choice([-1, 1])
            near_kerb = kind in ("pole", "sign", "tree", "barrier") or rng.random() < 0.5
            depth = rng.uniform(0.35, 1.0) if near_kerb else rng.uniform(1.0, plan.sidewalk - 0.5)
            # Signs face the traffic, barriers and parked bicycles run along the kerb.
            yaw = {"barrier": math.pi / 2, "bicycle": 0.0, "sign": 0.0}.get(kind, rng.uniform(0, 2 * math.pi))
            yaw += rng.choice([0.0, math.pi]) + rng.normal(0, 0.05)
            pose = _pose(rng.uniform(-plan.length / 2, plan.length / 2), side * (half + depth), plan.kerb, yaw)
            # A tree's crown may reach over the road: only its trunk must stand on the sidewalk.
            low, high = (half + 0.05, plan.facade - 0.15)
            band = None if kind == "tree" else ((low, high) if side > 0 else (-high, -low))
            if kind == "tree" and not Footprint.of(item[0], pose).within(
                    *((-(plan.facade - 0.15), plan.facade - 0.15))):
                continue
            if put(item, pose, band, 0.15):
                break
    return placed, plan, doubts


def _street_camera(plan: StreetPlan, placed: list[Placed], prints: list, rng) -> Camera:
    """A camera looking at one of the objects (a vehicle 70 % of the time): a dash-cam in a driving
    lane 12-30 m behind or before it (45 %), a pedestrian at the kerb 10-25 m along the street
    from it (40 %), or one at the far kerb looking across at it (15 %); never inside an object,
    nor with one right before the lens."""
    half = plan.half_road
    vehicles = [p for p in placed if p.model_id is not None]
    for _ in range(200):
        pool = vehicles if vehicles and rng.random() < 0.7 else placed
        target = pool[int(rng.integers(len(pool)))]
        tx, ty = target.pose[:2, 3]
        mode = rng.choice(3, p=[0.45, 0.4, 0.15])
        behind = 1 if rng.random() < 0.5 else -1  # the camera on the target's -x side, or its +x side
        if mode == 0:
            lane = int(rng.integers(max(1, plan.lanes // 2)))
            y = behind * -(lane + 0.5) * plan.lane_width + rng.normal(0, 0.3)  # the lanes facing it
            eye = np.array([tx - behind * rng.uniform(12, 30), y, rng.uniform(1.1, 1.5)])
        else:
            side = (1 if ty > 0 else -1) * (1 if mode == 1 else -1)
            x = tx - behind * rng.uniform(10, 25) if mode == 1 else tx + rng.uniform(-4, 4)
            eye = np.array([x, side * (half + rng.uniform(0.2, 1.0)), plan.kerb + rng.uniform(1.45, 1.8)])
        eye[0] = np.clip(eye[0], -plan.length / 2 - 8, plan.length / 2 + 8)
        centre = np.array([tx, ty, target.pose[2, 3] + target.mesh.extents[2] * rng.uniform(0.3, 0.6)])
        centre[:2] += rng.normal(0, 0.5, 2)
        forward = (centre[:2] - eye[:2]) / max(np.linalg.norm(centre[:2] - eye[:2]), 1e-6)
        left = np.array([-forward[1], forward[0]])
        lens = Polygon([eye[:2] - 0.3 * forward, eye[:2] + 4.0 * forward + 0.7 * left,
                        eye[:2] + 4.0 * forward - 0.7 * left])
        if np.linalg.norm(centre[:2] - eye[:2]) > 5.0 and all(
                print_.low is None or print_.low.distance(lens) > 0.2 for print_ in prints):
            return Camera(look_at(eye, centre), yfov=YFOV)
    raise InputError("could not find a street camera clear of every object: lower `objects`")


@dataclass
class DyceSplit:
    name: str
    images: int
    first_id: int
    vehicles: list = field(default_factory=list)


def _annotate(view: ViewObjects, placed: list[Placed], image_id: int, min_visible: int):
    """Records for one view: annotations of objects visible enough, and the others as occluders."""
    base = image_id * dataset.OBJECT_STRIDE
    keys = [base + k for k in range(len(placed))]
    seen = [k for k in sorted(view.boxes) if view.amodal[k].any()]  # the others are out of view
    mean_depth = {k: float(view.own_depth[k][view.amodal[k]].mean()) for k in seen}
    annotated = [k for k in seen if view.visible[k].sum() >= min_visible]
    ranks = {k: r for r, k in enumerate(sorted(annotated, key=lambda k: mean_depth[k]), start=1)}
    invisible = {k: view.amodal[k] & ~view.visible[k] for k in annotated}
    crops = [(view.boxes[k], view.amodal[k]) for k in seen]
    crops += [(view.boxes[k], mask[k]) for k in annotated for mask in (view.visible, invisible)]
    rles = iter(masks_lib.encode_crops(crops, view.instances.shape))
    segmentation = {k: next(rles) for k in seen}
    annotations, occluders = [], []
    for k in seen:
        obj, box, amodal = placed[k], view.boxes[k], view.amodal[k]
        area = int(amodal.sum())
        record = {"id": keys[k], "image_id": image_id, "category": obj.category,
                  "segmentation": segmentation[k], "bbox": masks_lib.bbox_in(amodal, box), "area": area}
        if k not in ranks:
            occluders.append({**record, "order": None, "source": obj.source})
            continue
        visible, visible_rle, invisible_rle = view.visible[k], next(rles), next(rles)
        front = view.instances[box[0]:box[1], box[2]:box[3]][invisible[k]]
        hiders = [{"id": keys[j - 1], "pixels": int((front == j).sum())} for j in np.unique(front) if j > 0]
        annotations.append({
            **{key: record[key] for key in ("id", "image_id", "segmentation", "bbox", "area")},
            "category_id": CATEGORIES.index(obj.category) + 1, "iscrowd": 0,
            "inmodal_seg": visible_rle, "inmodal_bbox": masks_lib.bbox_in(visible, box),
            "visible_mask": visible_rle, "invisible_mask": invisible_rle,
            "occlude_rate": 1.0 - int(visible.sum()) / area, "occluders": hiders,
            "depth": round(mean_depth[k], 4), "order": ranks[k], "model_id": obj.model_id,
            "source": obj.source,
        })
    return annotations, occluders, keys, annotated


def _make_scene(task: tuple) -> tuple[int, dict]:
    """Render one scene's missing views; returns (images made, orientation doubts)."""
    split, scene, config, root = task
    views = [v for v in range(config.views_per_scene)
             if scene * config.views_per_scene + v < split.images
             and not writer.item_done(root, split.name, split.first_id + scene * config.views_per_scene + v)]
    if not views:
        return 0, {}
    rng = rng_for(config.seed, "dyce-scene", split.name, scene)
    view_rngs = [rng_for(config.seed, "dyce-view", split.name, scene, v) for v in range(config.views_per_scene)]
    if config.layout == "open":
        meshes, doubts = _scene_meshes(config, split, rng)
        placed = place_objects(meshes, rng)
        scenery = _ground(rng)
        cameras = [_camera(placed, view_rng) for view_rng in view_rngs]
    else:
        placed, plan, doubts = street_layout(config, split, rng)
        scenery = SceneObject(street_scenery(plan, rng))
        prints = [Footprint.of(p.mesh, p.pose) for p in placed]
        cameras = [_street_camera(plan, placed, prints, view_rng) for view_rng in view_rngs]
    renderer = shared_renderer(config.size)
    _, horizon = sky_colours(rng)  # a flat background in the horizon's colour
    lighting = replace(street_lighting(rng), shadows=True, sky=SKY_LIGHT)
    renderer.set_scene([SceneObject(p.mesh, p.pose) for p in placed], lighting,
                       background=tuple(horizon / 255.0), scenery=[scenery])
    # PNG encoding (zlib releases the GIL) and writing run on a thread while the next view renders.
    with ThreadPoolExecutor(max_workers=1) as encoder:
        writes = []
        for v in views:
            image_id = split.first_id + scene * config.views_per_scene + v
            pngs, item = _view_outputs(renderer, placed, cameras[v], config, split, scene, image_id, root / split.name)
            writes.append(encoder.submit(_write_view, root, pngs, item))
        for write in writes:
            write.result()  # a failed write fails the task
    return len(writes), doubts


def _view_outputs(renderer, placed: list[Placed], camera: Camera, config: DyceConfig, split: DyceSplit,
                  scene: int, image_id: int, folder: Path) -> tuple[list, writer.Item]:
    """One view's PNGs, as (path, pixels), and its record."""
    view = render_view(renderer, len(placed), camera)
    rgb = renderer.rgb(camera)
    annotations, occluders, keys, annotated = _annotate(view, placed, image_id, config.min_visible)
    pngs, appearance = [], {}
    alone = renderer.rgb_solos(camera, [k for k in annotated if (view.amodal[k] & ~view.visible[k]).any()])
    for k in annotated:
        (row0, row1, col0, col1), amodal, visible = view.boxes[k], view.amodal[k], view.visible[k]
        rgba = np.zeros((row1 - row0, col1 - col0, 4), np.uint8)
        if k in alone:  # hidden pixels: the object's own pass (cropped to the same screen box)
            rgba[amodal, :3] = alone[k][1][amodal]
        rgba[visible, :3] = rgb[row0:row1, col0:col1][visible]  # visible pixels: the input's own
        rgba[..., 3] = amodal * 255
        name = f"appearance/{image_id:06d}_{keys[k]}.png"
        pngs.append((folder / name, masks_lib.paste(rgba, view.boxes[k], rgb.shape[:2])))
        appearance[str(keys[k])] = name
    depth_mm = np.clip(np.round(view.depth * 1000), 0, 65535).astype(np.uint16)
    pngs += [(folder / f"depth/{image_id:06d}.png", depth_mm),
             (folder / f"instances/{image_id:06d}.png", view.instances.astype(np.uint16)),
             (folder / f"images/{image_id:06d}.png", rgb)]
    record = {
        "id": image_id, "file_name": f"images/{image_id:06d}.png", "width": config.size,
        "height": config.size, "appearance": appearance,
        "depth_file": f"depth/{image_id:06d}.png", "instances_file": f"instances/{image_id:06d}.png",
        "objects": keys, "occlusion_graph": occlusion_graph(view, keys),
        "depth_order": [a["id"] for a in sorted(annotations, key=lambda a: a["order"])],
        "scene": f"{split.name}-{scene}",
    }
    return pngs, writer.Item(split.name, record, annotations, {"occluders": occluders})


def _write_view(root: Path, pngs: list, item: writer.Item) -> None:
    for path, pixels in pngs:
        dataset.write_png(path, pixels)
    writer.write_item(root, item)  # last: the record marks the image done


def _plan_splits(config: DyceConfig) -> tuple[list[DyceSplit], SourceListing]:
    listing = list_source(config.vehicles, config.models if config.models else
                          (200 if config.vehicles == "procedural" else None), config.seed,
                          orientation=config.orientation())
    models = listing.models
    if len(models) < len(config.splits):
        raise InputError(f"{len(models)} vehicle models cannot be split into {len(config.splits)} "
                        "splits without sharing one")
    order = rng_for(config.seed, "dyce-models").permutation(len(models))
    total = sum(n for _, n in config.splits)
    shares = [max(1, round(len(models) * n / total)) for _, n in config.splits]
    shares[0] = len(models) - sum(shares[1:])
    splits, start, first_id = [], 0, 1
    for (name, images), share in zip(config.splits, shares):
        splits.append(DyceSplit(name, images, first_id, [models[i] for i in order[start:start + share]]))
        start += share
        first_id += images
    return splits, listing


def generate_dyce(config: DyceConfig, out: Path, workers: int = 1, resume: bool = False,
                  progress: bool = True, executor: common.Executor = common.PROCESS_POOL) -> writer.DatasetSummary:
    out = Path(out)
    if config.layout not in LAYOUTS:
        raise InputError(f"bad `layout` {config.layout!r}: use {' or '.join(LAYOUTS)}")
    lo, hi = config.object_range()
    if not 1 <= lo <= hi or hi > MAX_OBJECTS[config.layout]:
        raise InputError(f"bad `objects` {lo}:{hi}: use MIN:MAX with 1 ≤ MIN ≤ MAX ≤ "
                         f"{MAX_OBJECTS[config.layout]} ({config.layout} layout)")
    check_size(config.size)
    if config.views_per_scene < 1 or config.min_visible < 1:
        raise InputError("`views_per_scene` and `min_visible` must be at least 1 (got "
                         f"{config.views_per_scene}, {config.min_visible})")
    started = time.perf_counter()
    splits, listing = _plan_splits(config)
    if config.layout == "open":
        # Place the largest scene of sedans up front, so an impossible `objects` fails before work.
        sedan = build_vehicle("sedan", rng_for(config.seed, "dyce-probe"))
        place_objects([(sedan, "car", None, "probe")] * hi, rng_for(config.seed, "dyce-probe"))
    record = {**config.record(), **source_fingerprint(listing)}
    fresh = writer.start_dataset(out, "dyce", record, resume)
    if fresh is None:
        splits = dataset.load_manifest(out)["splits"]
        return writer.DatasetSummary(out, splits, 0.0, writer.mean_occlusion(out, list(splits)), made=False)
    tasks = [(split, scene, config, out) for split in splits
             for scene in range(math.ceil(split.images / config.views_per_scene))]
    done = sum(writer.item_done(out, s.name, s.first_id + i) for s in splits for i in range(s.images))
    doubts: dict = {}

    def advance(result) -> int:
        made, scene_doubts = result
        doubts.update(scene_doubts)
        return made

    common.run_with_progress(_make_scene, tasks, workers=workers, total=sum(s.images for s in splits),
                             initial=done, unit="img", desc="dyce", progress=progress, advance=advance,
                             discard=(lambda: writer.discard_dataset(out)) if fresh else None,
                             executor=executor)
    warn_orientation_doubts(doubts)
    categories = [{"id": i + 1, "name": n, "supercategory": "vehicle" if i < 3 else "object"}
                  for i, n in enumerate(CATEGORIES)]
    manifest = writer.finish_dataset(out, out.name, "dyce", record, categories, [s.name for s in splits],
                              {"vehicles": listing.description, "occluders": ", ".join(SCENE_OCCLUDER_KINDS)})
    return writer.DatasetSummary(out, manifest["splits"], time.perf_counter() - started,
                                  writer.mean_occlusion(out, [s.name for s in splits]))
