"""`ovbench generate dyce`: a hand-built scene against geometry, generated sets against invariants."""

import json
import math

import numpy as np
import pytest
import trimesh
from conftest import SMALL_DYCE, box_with_nose, run_subprocess
from ovbench.renderers import Camera, Renderer, SceneObject, look_at
from PIL import Image
from pycocotools import mask as mask_utils
from test_assets import assert_convention, front_is_plus_x
from test_pool import warnings, write_meshes

from ovbench.assets.occluders import street_scenery
from ovbench.formats.masks import bbox_in, encode_crops, paste
from ovbench.generate.dyce import (
    DyceConfig,
    Footprint,
    Placed,
    _annotate,
    _plan_splits,
    _street_camera,
    occlusion_graph,
    render_view,
    street_layout,
    vehicle_mesh,
)
from ovbench.seeding import rng_for

SIZE = 128
YFOV = math.radians(40.0)
FOCAL = (SIZE / 2) / math.tan(YFOV / 2)


def covered(lo, hi):
    i = np.arange(SIZE)
    return i[(i + 0.5 > lo) & (i + 0.5 < hi)]


def rle(r):
    return mask_utils.decode({"size": r["size"], "counts": r["counts"].encode()}).astype(bool)


def test_crops_encode_and_measure_as_the_whole_masks():
    """A view's masks are kept as crops of screen boxes; their RLEs and boxes are those of the
    whole frames, encoded here by pycocotools and measured with numpy."""
    rng = np.random.default_rng(0)
    shape, crops, frames = (37, 29), [], []
    for _ in range(30):
        row0, col0 = int(rng.integers(0, 30)), int(rng.integers(0, 25))
        box = (row0, int(rng.integers(row0 + 1, 38)), col0, int(rng.integers(col0 + 1, 30)))
        crop = rng.random((box[1] - box[0], box[3] - box[2])) < rng.random()
        frame = np.zeros(shape, bool)
        frame[box[0]:box[1], box[2]:box[3]] = crop
        crops.append((box, crop))
        frames.append(frame)
        assert np.array_equal(paste(crop, box, shape), frame)
        rows, cols = np.nonzero(frame)
        if rows.size:
            assert bbox_in(crop, box) == [cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]
        else:
            assert bbox_in(crop, box) == [0, 0, 0, 0]
    for found, frame in zip(encode_crops(crops, shape), frames):
        reference = mask_utils.encode(np.asfortranarray(frame.astype(np.uint8)))
        assert found == {"size": list(shape), "counts": reference["counts"].decode()}
    assert encode_crops([], shape) == []


def test_two_boxes_one_behind_the_other():
    front = trimesh.creation.box(extents=(1.0, 1.0, 2.0))
    back = trimesh.creation.box(extents=(1.0, 3.0, 2.0))
    poses = [np.eye(4), np.eye(4)]
    poses[0][:3, 3] = (3.0, 0.0, 1.0)   # near face at x = 3.5: 8.5 m from the camera
    poses[1][:3, 3] = (0.0, 0.0, 1.0)   # near face at x = 0.5: 11.5 m
    placed = [Placed(front, poses[0], "box", None, "builtin", 0.7),
              Placed(back, poses[1], "car", "m-1", "procedural", 1.6)]
    renderer = Renderer(SIZE)
    renderer.set_scene([SceneObject(p.mesh, p.pose) for p in placed])
    camera = Camera(look_at((12.0, 0.0, 1.0), (0.0, 0.0, 1.0)), yfov=YFOV)
    view = render_view(renderer, 2, camera)
    annotations, occluders, keys, annotated = _annotate(view, placed, image_id=1, min_visible=10)
    c = SIZE / 2
    front_cols = covered(c - FOCAL * 0.5 / 8.5, c + FOCAL * 0.5 / 8.5)
    back_cols = covered(c - FOCAL * 1.5 / 11.5, c + FOCAL * 1.5 / 11.5)
    back_rows = covered(c - FOCAL * 1.0 / 11.5, c + FOCAL * 1.0 / 11.5)
    box_front, box_back = (a for a in sorted(annotations, key=lambda a: a["order"]))
    amodal_back, visible_back = rle(box_back["segmentation"]), rle(box_back["visible_mask"])
    assert np.array_equal(visible_back, amodal_back & ~rle(box_front["segmentation"]))
    np.testing.assert_array_equal(np.flatnonzero(amodal_back.any(0)), back_cols)
    np.testing.assert_array_equal(np.flatnonzero(amodal_back.any(1)), back_rows)
    hidden = rle(box_back["invisible_mask"])
    np.testing.assert_array_equal(np.flatnonzero(hidden.any(0)), front_cols)  # behind the front box
    np.testing.assert_array_equal(np.flatnonzero(hidden.any(1)), back_rows)
    assert box_back["occlude_rate"] == pytest.approx(len(front_cols) / len(back_cols), abs=1e-9)
    assert box_front["occlude_rate"] == 0 and box_front["order"] == 1 and box_back["order"] == 2
    assert box_front["depth"] == pytest.approx(8.5, abs=1e-3)
    assert box_back["depth"] == pytest.approx(11.5, abs=1e-3)
    assert box_back["occluders"] == [{"id": keys[0], "pixels": int(hidden.sum())}]
    graph = occlusion_graph(view, keys)
    assert graph == [{"front": keys[0], "back": keys[1], "pixels": int(hidden.sum())}]
    assert occluders == [] and annotated == [0, 1]


def test_dyce_invariants_recomputed(small_dyce, cli):
    assert cli("validate", small_dyce).code == 0
    models = {}
    for split in ("train", "test"):
        data = json.loads((small_dyce / split / "annotations.json").read_text())
        models[split] = {a["model_id"] for a in data["annotations"] if a["model_id"]}
        small = {o["id"] for o in data["occluders"]}
        for image in data["images"]:
            anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
            instances = np.asarray(Image.open(small_dyce / split / image["instances_file"]))
            depth = np.asarray(Image.open(small_dyce / split / image["depth_file"]))
            assert depth.dtype == np.uint16 and (depth[instances > 0] > 0).all()
            visible = np.array([rle(a["visible_mask"]) for a in anns]).reshape(-1, *instances.shape)
            assert (visible.sum(axis=0) <= 1).all()          # no pixel visible in two objects
            union = visible.any(axis=0)
            index = {oid: k + 1 for k, oid in enumerate(image["objects"])}
            small_pixels = np.isin(instances, [index[o] for o in small if o in index])
            assert np.array_equal(union, (instances > 0) & ~small_pixels)
            pixels = np.asarray(Image.open(small_dyce / split / image["file_name"]))
            for ann in anns:
                rgba = np.asarray(Image.open(small_dyce / split / image["appearance"][str(ann["id"])]))
                assert np.array_equal(rgba[..., 3] > 0, rle(ann["segmentation"]))
                v = rle(ann["visible_mask"])
                assert np.array_equal(rgba[v][:, :3], pixels[v])
                assert v.sum() >= 10
            for edge in image["occlusion_graph"]:
                front = next((a for a in anns if a["id"] == edge["front"]), None)
                back = next((a for a in anns if a["id"] == edge["back"]), None)
                if front and back:
                    shared = rle(front["segmentation"]) & rle(back["segmentation"])
                    assert (shared & rle(back["visible_mask"])).sum() * 2 <= shared.sum()
            orders = sorted(a["order"] for a in anns)
            assert orders == list(range(1, len(anns) + 1))
    assert not models["train"] & models["test"]


@pytest.mark.parametrize("up,front", [("+y", "-z"), ("+z", "+x")])
def test_file_vehicles_are_oriented_and_scaled_as_in_the_pool(tmp_path, cli, up, front):
    meshes = write_meshes(tmp_path / "meshes", up, front)  # unit-sized: not metres
    out = tmp_path / "set"
    result = cli("generate", "dyce", "--vehicles", f"meshes:{meshes}", "--up", up, "--front", front,
                 "--splits", "train=2,test=2", "--size", 64, "--objects", "2:3", "--workers", 1,
                 "--quiet", "--out", out)
    assert result.code == 0, result.err
    assert warnings(result.err) == []
    assert cli("validate", out).code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["config"]["up"], manifest["config"]["front"]) == (up, front)
    splits, _ = _plan_splits(DyceConfig(vehicles=f"meshes:{meshes}", up=up, front=front))
    for ref in [ref for split in splits for ref in split.vehicles]:
        mesh = vehicle_mesh(ref)
        assert_convention(mesh)
        assert front_is_plus_x(mesh) and mesh.extents[0] == pytest.approx(4.5)  # a car's length


def test_file_vehicles_with_wrong_axes_warn_once_per_model(tmp_path, cli):
    meshes = write_meshes(tmp_path / "meshes", "+y", "-z")
    result = cli("generate", "dyce", "--vehicles", f"meshes:{meshes}", "--splits", "train=4,test=4",
                 "--size", 64, "--objects", "3:3", "--workers", 1, "--quiet", "--out", tmp_path / "set")
    assert result.code == 0, result.err
    lines = warnings(result.err)
    assert [line.split(":")[2].strip() for line in lines] == ["a.obj", "b.obj"]
    assert all("try --up +y --front +z (or --front -z)" in line for line in lines)


def test_dyce_same_files_whatever_the_workers(small_dyce, tmp_path, cli):
    two = tmp_path / "two"
    assert cli("generate", "dyce", *SMALL_DYCE, "--workers", 2, "--quiet", "--out", two).code == 0
    expected = json.loads((small_dyce / "manifest.json").read_text())["files"]
    assert json.loads((two / "manifest.json").read_text())["files"] == expected


@pytest.mark.parametrize("args,expected", [
    (["--layout", "open", "--objects", "25:30"], "cannot place 30 objects"),
    (["--objects", "10:200"], "≤ 150 (street layout)"),
    (["--vehicles", "meshes:/nonexistent"], "mesh folder not found"),
    (["--vehicles", "blender"], "bad source"),
    (["--objects", "5"], "bad --objects"),
])
def test_dyce_bad_input(tmp_path, cli, args, expected):
    out = tmp_path / "out"
    result = cli("generate", "dyce", *args, "--quiet", "--workers", 1, "--out", out)
    assert result.code == 2 and expected in result.error_line()
    assert not out.exists()


def test_dyce_unwritable_output(tmp_path, cli):
    (tmp_path / "file").write_text("x")
    result = cli("generate", "dyce", "--quiet", "--workers", 1, "--out", tmp_path / "file" / "set")
    assert result.code == 2


def test_depth_layering_on_a_small_dyce(small_dyce, tmp_path, cli):
    out = tmp_path / "visible.json"
    assert cli("evaluate", "--model", "visible", "--data", small_dyce, "--split", "train",
               "--quiet", "--out", out).code == 0
    layering = json.loads(out.read_text())["metrics"]["depth_layering"]
    # Predicting nothing hidden never says who is in front: every pair counts as wrong.
    assert layering["images"] > 0 and layering["accuracy"] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_street_scenery_hides_no_object_and_masks_are_solo_renders(seed):
    config = DyceConfig()
    splits, _ = _plan_splits(DyceConfig(models=20))
    placed, plan, _ = street_layout(config, splits[0], rng_for(seed, "street"))
    scenery = SceneObject(street_scenery(plan, rng_for(seed, "scenery")))
    objects = [SceneObject(p.mesh, p.pose) for p in placed]
    prints = [Footprint.of(p.mesh, p.pose) for p in placed]
    alone, with_scenery = Renderer(SIZE), Renderer(SIZE)
    alone.set_scene(objects, scenery=[scenery])
    with_scenery.set_scene([*objects, scenery])  # the street's set as one more instance
    for v in range(3):
        camera = _street_camera(plan, placed, prints, rng_for(seed, "view", v))
        view = render_view(alone, len(placed), camera)
        ids, _ = with_scenery.instances(camera)
        on_objects = view.instances > 0
        assert on_objects.sum() > SIZE * SIZE // 20
        assert np.array_equal(ids[on_objects], view.instances[on_objects])  # the set never in front
        for k in range(len(placed)):
            mask, depth = alone.solo(camera, k)
            if k not in view.boxes:  # out of view
                assert not mask.any()
                continue
            box = view.boxes[k]
            assert np.array_equal(paste(view.amodal[k], box, mask.shape), mask)
            assert np.array_equal(paste(view.own_depth[k], box, mask.shape), depth)
            assert np.array_equal(paste(view.visible[k], box, mask.shape), view.instances == k + 1)


def test_street_objects_keep_clear_of_each_other_and_of_the_set():
    splits, _ = _plan_splits(DyceConfig(models=20))
    placed, plan, _ = street_layout(DyceConfig(), splits[0], rng_for(3, "street"))
    lo, hi = DyceConfig().object_range()
    assert lo <= len(placed) <= hi and sum(p.model_id is not None for p in placed) >= len(placed) // 3
    prints = [Footprint.of(p.mesh, p.pose) for p in placed]
    for a in range(len(placed)):
        for b in range(a + 1, len(placed)):
            assert prints[a].clear_of(prints[b], 0.0)
    for p, footprint in zip(placed, prints):
        on_road = p.pose[2, 3] == 0
        if on_road:  # 0.3 m off the kerbs, whatever its heading
            assert footprint.within(-(plan.half_road - 0.29), plan.half_road - 0.29)
        else:  # on a sidewalk, standing on it, before the façades
            assert p.pose[2, 3] == plan.kerb and footprint.within(-plan.facade + 0.14, plan.facade - 0.14)


def test_open_layout_and_the_occlusion_histogram(tmp_path, cli):
    out = tmp_path / "open"
    result = cli("generate", "dyce", "--layout", "open", "--objects", "2:3", "--views-per-scene", 2,
                 "--splits", "train=2,test=2",
                 "--size", 64, "--workers", 1, "--quiet", "--out", out)
    assert result.code == 0, result.err
    assert cli("validate", out).code == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["layout"] == "open"
    rates = [a["occlude_rate"] for split in ("train", "test")
             for a in json.loads((out / split / "annotations.json").read_text())["annotations"]]
    line = next(line for line in result.out.splitlines() if line.startswith("occlusion of"))
    assert line.startswith(f"occlusion of {len(rates)} objects ({len(rates) / 4:.1f} an image)")
    assert line.endswith(f"{np.mean(np.array(rates) >= 0.25):.0%} at least 0.25 hidden")


def test_a_model_file_changed_between_runs_is_read_again_by_kept_workers(tmp_path, cli):
    # Workers are kept between runs; the second build must see the meshes as they are now: its
    # masks equal those of a fresh process's build, not the first build's.
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    # Sixteen one-view scenes: each worker builds scenes of both splits (each has its own model).
    args = ("--splits", "train=8,test=8", "--views-per-scene", 1, "--size", 64, "--objects", "2:3",
            "--workers", 2, "--quiet")

    def write(height):
        for k, name in enumerate(("a.obj", "b.obj")):
            box_with_nose(extents=(4.0 + k, 1.6, height)).export(meshes / name)

    def areas(folder):
        return [a["area"] for split in ("train", "test")
                for a in json.loads((folder / split / "annotations.json").read_text())["annotations"]]

    write(1.2)
    assert cli("generate", "dyce", "--vehicles", f"meshes:{meshes}", *args, "--out", tmp_path / "first").code == 0
    write(2.4)  # taller vehicles, the same length
    assert cli("generate", "dyce", "--vehicles", f"meshes:{meshes}", *args, "--out", tmp_path / "second").code == 0
    fresh = run_subprocess("generate", "dyce", "--vehicles", f"meshes:{meshes}", *args, "--out", tmp_path / "fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert areas(tmp_path / "second") == areas(tmp_path / "fresh") != areas(tmp_path / "first")
