"""DYCE-style 3D scenes (`ovbench generate dyce`): several objects rendered together and each alone.

SeGAN's DYCE rendered scenes and re-rendered every object with everything else removed; here:
per view, one SEG pass gives the instance map and depth, one SEG pass per object its amodal mask
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

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from ovbench.assets.meshes import Orientation, orientation_option
from ovbench.assets.occluders import SCENE_OCCLUDER_KINDS, build_occluder
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
from ovbench.formats import dataset
from ovbench.formats import masks as masks_lib
from ovbench.generate import common
from ovbench.generate.common import check_size
from ovbench.generate.street import CATEGORY_OF_TYPE, YFOV, sky_colours, street_lighting
from ovbench.renderers import Camera, SceneObject, look_at, shared_renderer
from ovbench.seeding import rng_for

# Scenes reuse vehicle models: keep recent ones per process (place_objects copies before moving).
vehicle_mesh = functools.lru_cache(maxsize=128)(load_model)
GROUND_RADIUS = 11.0     # metres: objects stand inside this disc
PLACEMENT_TRIES = 200
CATEGORIES = ("car", "bus", "truck", *SCENE_OCCLUDER_KINDS)


@dataclass(frozen=True)
class DyceConfig:
    vehicles: str = "procedural"
    models: int | None = None            # procedural: 200 models; file sources: all
    objects: tuple = (3, 6)
    views_per_scene: int = 2
    splits: tuple = (("train", 60), ("test", 20))
    size: int = 256
    seed: int = 0
    min_visible: int = 10
    up: str | None = None                # file vehicles' own axes (as for the pool)
    front: str | None = None

    def orientation(self) -> Orientation | None:
        return orientation_option(self.up, self.front)

    def record(self) -> dict:
        data = asdict(self)
        data["vehicles"] = self.vehicles.split(":", 1)[0]
        data["objects"], data["splits"] = list(self.objects), [list(s) for s in self.splits]
        return data


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
    """Masks and depths of one view (index k ↔ the k-th placed object)."""

    instances: np.ndarray     # int32, 0 background
    depth: np.ndarray         # float32 metres, 0 background
    amodal: list
    visible: list
    own_depth: list


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
    ids, depth = renderer.instances(camera)
    amodal, visible, own = [], [], []
    for k in range(count):
        mask, own_depth = renderer.solo(camera, k)
        amodal.append(mask)
        visible.append(ids == k + 1)
        own.append(own_depth)
    return ViewObjects(ids, depth, amodal, visible, own)


def occlusion_graph(view: ViewObjects, keys: list[int]) -> list[dict]:
    """For each pair of objects whose amodal masks overlap: the one nearer the camera at most of
    the shared pixels is in front."""
    edges = []
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            shared = view.amodal[a] & view.amodal[b]
            n = int(shared.sum())
            if n == 0:
                continue
            a_front = int((view.own_depth[a][shared] < view.own_depth[b][shared]).sum())
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
    ground = trimesh.creation.box(extents=(200.0, 200.0, 0.02))
    ground.apply_translation((0, 0, -0.011))
    ground.visual.face_colors = np.append(np.clip(rng.uniform(60, 130) * np.ones(3) + rng.normal(0, 6, 3),
                                                  0, 255), 255).astype(np.uint8)
    return SceneObject(ground)


def _scene_meshes(config: DyceConfig, vehicles: list[ModelRef], rng) -> tuple[list[tuple], dict]:
    """The scene's (mesh, category, model id, source) tuples, and the orientation doubts of its
    file vehicles."""
    count = int(rng.integers(config.objects[0], config.objects[1] + 1))
    meshes, doubts = [], {}
    for k in range(count):
        if k == 0 or rng.random() < 0.5:  # at least one vehicle per scene
            ref = vehicles[int(rng.integers(len(vehicles)))]
            kind = ref.model_id.rsplit("-", 1)[0]
            mesh = vehicle_mesh(ref)
            meshes.append((mesh, CATEGORY_OF_TYPE.get(kind, "car"), ref.model_id, ref.source))
            doubts.update(orientation_doubts(ref, mesh))
        else:
            kind = SCENE_OCCLUDER_KINDS[int(rng.integers(len(SCENE_OCCLUDER_KINDS)))]
            meshes.append((build_occluder(kind, rng), kind, None, "builtin"))
    return meshes, doubts


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
    mean_depth = [float(view.own_depth[k][view.amodal[k]].mean()) if view.amodal[k].any() else math.inf
                  for k in range(len(placed))]
    annotated = [k for k in range(len(placed)) if view.visible[k].sum() >= min_visible]
    ranks = {k: r for r, k in enumerate(sorted(annotated, key=lambda k: mean_depth[k]), start=1)}
    annotations, occluders = [], []
    for k, obj in enumerate(placed):
        amodal, visible = view.amodal[k], view.visible[k]
        if not amodal.any():
            continue  # out of view
        invisible = amodal & ~visible
        front = view.instances[invisible]
        hiders = [{"id": keys[j - 1], "pixels": int((front == j).sum())} for j in np.unique(front) if j > 0]
        record = {"id": keys[k], "image_id": image_id, "category": obj.category,
                  "segmentation": masks_lib.encode(amodal), "bbox": masks_lib.bbox(amodal),
                  "area": int(amodal.sum())}
        if k not in ranks:
            occluders.append({**record, "order": None, "source": obj.source})
            continue
        area = int(amodal.sum())
        annotations.append({
            **{key: record[key] for key in ("id", "image_id", "segmentation", "bbox", "area")},
            "category_id": CATEGORIES.index(obj.category) + 1, "iscrowd": 0,
            "inmodal_seg": masks_lib.encode(visible), "inmodal_bbox": masks_lib.bbox(visible),
            "visible_mask": masks_lib.encode(visible), "invisible_mask": masks_lib.encode(invisible),
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
             and not common.item_done(root, split.name, split.first_id + scene * config.views_per_scene + v)]
    if not views:
        return 0, {}
    rng = rng_for(config.seed, "dyce-scene", split.name, scene)
    meshes, doubts = _scene_meshes(config, split.vehicles, rng)
    placed = place_objects(meshes, rng)
    renderer = shared_renderer(config.size)
    _, horizon = sky_colours(rng)  # a flat background in the horizon's colour
    renderer.set_scene([SceneObject(p.mesh, p.pose) for p in placed], street_lighting(rng),
                       background=tuple(horizon / 255.0), scenery=[_ground(rng)])
    cameras = [_camera(placed, rng_for(config.seed, "dyce-view", split.name, scene, v))
               for v in range(config.views_per_scene)]
    made = 0
    for v in views:
        image_id = split.first_id + scene * config.views_per_scene + v
        view = render_view(renderer, len(placed), cameras[v])
        rgb = renderer.rgb(cameras[v])
        annotations, occluders, keys, annotated = _annotate(view, placed, image_id, config.min_visible)
        folder = root / split.name
        appearance = {}
        for k in annotated:
            rgba = np.zeros((config.size, config.size, 4), np.uint8)
            if (view.amodal[k] & ~view.visible[k]).any():
                rgba[..., :3] = renderer.rgb_solo(cameras[v], k)
            rgba[view.visible[k], :3] = rgb[view.visible[k]]  # visible pixels: the input's own
            rgba[..., 3] = view.amodal[k] * 255
            name = f"appearance/{image_id:06d}_{keys[k]}.png"
            dataset.write_png(folder / name, rgba)
            appearance[str(keys[k])] = name
        depth_mm = np.clip(np.round(view.depth * 1000), 0, 65535).astype(np.uint16)
        dataset.write_png(folder / f"depth/{image_id:06d}.png", depth_mm)
        dataset.write_png(folder / f"instances/{image_id:06d}.png", view.instances.astype(np.uint16))
        dataset.write_png(folder / f"images/{image_id:06d}.png", rgb)
        graph = occlusion_graph(view, keys)
        record = {
            "id": image_id, "file_name": f"images/{image_id:06d}.png", "width": config.size,
            "height": config.size, "appearance": appearance,
            "depth_file": f"depth/{image_id:06d}.png", "instances_file": f"instances/{image_id:06d}.png",
            "objects": keys, "occlusion_graph": graph,
            "depth_order": [a["id"] for a in sorted(annotations, key=lambda a: a["order"])],
            "scene": f"{split.name}-{scene}",
        }
        common.write_item(root, common.Item(split.name, record, annotations, {"occluders": occluders}))
        made += 1
    return made, doubts


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
                  progress: bool = True) -> common.DatasetSummary:
    out = Path(out)
    lo, hi = config.objects
    if not 1 <= lo <= hi or hi > 30:
        raise InputError(f"bad `objects` {lo}:{hi}: use MIN:MAX with 1 ≤ MIN ≤ MAX ≤ 30")
    check_size(config.size)
    if config.views_per_scene < 1 or config.min_visible < 1:
        raise InputError("`views_per_scene` and `min_visible` must be at least 1 (got "
                         f"{config.views_per_scene}, {config.min_visible})")
    started = time.perf_counter()
    splits, listing = _plan_splits(config)
    # Place the largest scene of sedans up front, so an impossible --objects fails before work.
    sedan = build_vehicle("sedan", rng_for(config.seed, "dyce-probe"))
    place_objects([(sedan, "car", None, "probe")] * hi, rng_for(config.seed, "dyce-probe"))
    record = {**config.record(), **source_fingerprint(listing)}
    fresh = common.start_dataset(out, "dyce", record, resume)
    if fresh is None:
        return common.DatasetSummary(out, dataset.load_manifest(out)["splits"], 0.0, made=False)
    tasks = [(split, scene, config, out) for split in splits
             for scene in range(math.ceil(split.images / config.views_per_scene))]
    done = sum(common.item_done(out, s.name, s.first_id + i) for s in splits for i in range(s.images))
    doubts: dict = {}

    def advance(result) -> int:
        made, scene_doubts = result
        doubts.update(scene_doubts)
        return made

    common.run_with_progress(_make_scene, tasks, workers=workers, total=sum(s.images for s in splits),
                             initial=done, unit="img", desc="dyce", progress=progress, advance=advance,
                             discard=(lambda: common.discard_dataset(out)) if fresh else None)
    warn_orientation_doubts(doubts)
    categories = [{"id": i + 1, "name": n, "supercategory": "vehicle" if i < 3 else "object"}
                  for i, n in enumerate(CATEGORIES)]
    manifest = common.finish_dataset(out, out.name, "dyce", record, categories, [s.name for s in splits],
                              {"vehicles": listing.description, "occluders": ", ".join(SCENE_OCCLUDER_KINDS)})
    return common.DatasetSummary(out, manifest["splits"], time.perf_counter() - started,
                                  common.mean_occlusion(out, [s.name for s in splits]))
