"""`ovbench generate ovd`, `validate`, `show`, `convert`: invariants recomputed independently."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_and_kill, run_subprocess
from ovbench.renderers import look_at
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ovbench.generate.framing import frame_crop, square_crop
from ovbench.generate.ovd.composite import (
    GROUND_JITTER,
    Cutout,
    Ground,
    Placement,
    composite,
    feathered_alpha,
    plan_occlusion,
    standing_ratio,
)
from ovbench.generate.ovd.harmonize import reinhard
from ovbench.generate.ovd.sources import coco_bases, dir_bases

SMALL = ("--splits", "train=6,test=3", "--size", 96, "--occluder-bank", 24, "--quiet")
SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cocoa-sample"


def rle_mask(rle):
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def png(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def builtin_set(tmp_path_factory):
    from ovbench.cli import main

    out = tmp_path_factory.mktemp("ovd") / "set"
    assert main(["generate", "ovd", *map(str, SMALL), "--workers", "1", "--out", str(out)]) == 0
    return out


def test_builtin_set_invariants_recomputed(builtin_set):
    manifest = json.loads((builtin_set / "manifest.json").read_text())
    assert manifest["kind"] == "ovd" and manifest["splits"]["train"]["images"] == 6
    assert str(builtin_set.parent) not in json.dumps(manifest)
    for name, digest in manifest["files"].items():
        import hashlib
        assert hashlib.sha256((builtin_set / name).read_bytes()).hexdigest() == digest
    models = {}
    for split in ("train", "test"):
        coco = COCO(str(builtin_set / split / "annotations.json"))  # unchanged pycocotools
        occluders = {o["id"]: rle_mask(o["segmentation"])
                     for o in coco.dataset["occluders"]}
        models[split] = set()
        for image in coco.dataset["images"]:
            pixels = png(builtin_set / split / image["file_name"])
            appearance = png(builtin_set / split / image["appearance"])
            (ann,) = coco.imgToAnns[image["id"]]
            models[split].add(ann["model_id"])
            amodal = coco.annToMask(ann).astype(bool)
            visible, invisible = rle_mask(ann["visible_mask"]), rle_mask(ann["invisible_mask"])
            assert np.array_equal(visible, rle_mask(ann["inmodal_seg"]))
            assert not (visible & ~amodal).any()
            assert np.array_equal(invisible, amodal & ~visible)
            assert ann["occlude_rate"] == pytest.approx(1 - visible.sum() / amodal.sum())
            assert ann["area"] == amodal.sum() and visible.sum() >= 10
            cover = np.zeros_like(amodal)
            for entry in ann["occluders"]:
                cover |= occluders[entry["id"]]
                assert entry["pixels"] == (amodal & occluders[entry["id"]]).sum()
            assert not (invisible & ~cover).any()
            assert np.array_equal(pixels[visible], appearance[visible])       # exact behind-view
            assert not np.array_equal(pixels[invisible], appearance[invisible]) or not invisible.any()
            assert 1 <= image["requested_occluders"] <= 3
            assert 0.1 <= image["requested_occlusion"] <= 0.7
    assert not models["train"] & models["test"]  # test vehicles unseen in training


def _bottom_row(rle) -> int:
    _, y, _, h = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})
    return int(round(y + h)) - 1


def test_builtin_occluders_stand_on_the_ground_line_and_cast_a_shadow(builtin_set):
    """Every rendered occluder stands on the vehicle's ground line or a little in front of it
    (none floats), and the ground just under its feet is darker than in the appearance image,
    where that ground is neither vehicle nor occluder."""
    shadowed = 0
    for split in ("train", "test"):
        data = json.loads((builtin_set / split / "annotations.json").read_text())
        vehicles = {a["image_id"]: a for a in data["annotations"]}
        records = {i["id"]: i for i in data["images"]}
        for occluder in data["occluders"]:
            vehicle = vehicles[occluder["image_id"]]
            _, y, _, h = vehicle["bbox"]
            bottom = _bottom_row(occluder["segmentation"])
            size = occluder["segmentation"]["size"][0]
            below = (bottom - (y + h - 1)) / h                      # in vehicle heights
            assert GROUND_JITTER[0] - 0.05 <= below and (below <= GROUND_JITTER[1] + 0.05 or bottom == size - 1)
            if bottom + 1 >= size:
                continue
            record = records[occluder["image_id"]]
            image = png(builtin_set / split / record["file_name"]).astype(int)
            appearance = png(builtin_set / split / record["appearance"]).astype(int)
            taken = rle_mask(vehicle["segmentation"])
            for other in data["occluders"]:
                if other["image_id"] == occluder["image_id"]:
                    taken |= rle_mask(other["segmentation"])
            columns = np.flatnonzero(rle_mask(occluder["segmentation"])[bottom])
            ground = [c for c in columns if not taken[bottom + 1, c]]
            if ground:
                assert (image[bottom + 1, ground].sum(axis=1) < appearance[bottom + 1, ground].sum(axis=1)).all()
                shadowed += 1
    assert shadowed > 0


def test_occlusion_follows_the_request(builtin_set):
    rates, requested = [], []
    for split in ("train", "test"):
        data = json.loads((builtin_set / split / "annotations.json").read_text())
        rates += [a["occlude_rate"] for a in data["annotations"]]
        requested += [i["requested_occlusion"] for i in data["images"]]
    assert np.mean(np.abs(np.array(rates) - np.array(requested))) < 0.15


def test_validate_accepts_then_catches_corruption(builtin_set, tmp_path, cli):
    import shutil

    assert cli("validate", builtin_set).code == 0
    broken = tmp_path / "broken"
    shutil.copytree(builtin_set, broken)
    image = broken / "train" / "images" / "000001.png"
    pixels = png(image).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(image)
    result = cli("validate", broken)
    assert result.code == 1 and "train/images/000001.png: sha256 differs" in result.err

    # A wrong occlude_rate, with the checksum made to match: the rule itself must catch it.
    ann_file = broken / "test" / "annotations.json"
    data = json.loads(ann_file.read_text())
    data["annotations"][0]["occlude_rate"] += 0.1
    ann_file.write_text(json.dumps(data))
    result = cli("validate", broken)
    assert result.code == 1
    assert "test/annotations.json annotation" in result.err and "occlude_rate" in result.err


def test_same_seed_same_files_whatever_the_workers(builtin_set, tmp_path, cli):
    two = tmp_path / "two"
    assert cli("generate", "ovd", *SMALL, "--workers", 2, "--out", two).code == 0
    one = json.loads((builtin_set / "manifest.json").read_text())["files"]
    assert json.loads((two / "manifest.json").read_text())["files"] == one


def test_resume_after_sigkill(builtin_set, tmp_path, cli):
    out = tmp_path / "killed"
    args = ["generate", "ovd", *map(str, SMALL), "--workers", "1", "--out", str(out)]
    run_and_kill(args, out, ".parts/train/*.json", 3)  # killed among the composites
    assert not (out / "manifest.json").exists()
    assert cli(*args).code == 2                      # refuses to touch it without --resume
    resumed = cli(*args, "--resume")
    assert resumed.code == 0, resumed.err
    expected = json.loads((builtin_set / "manifest.json").read_text())["files"]
    assert json.loads((out / "manifest.json").read_text())["files"] == expected
    assert not (out / ".parts").exists()


def _polygon(x0, y0, w, h):
    return [[x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]]


def write_coco_photos(tmp_path, photos, categories, shape, seed=0):
    """Noise photos with each instance a flat rectangle, and their COCO file: photos maps
    image id → (file name, [(category, x, y, w, h[, iscrowd])])."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id, (name, objects) in photos.items():
        pixels = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
        for k, (category, x, y, w, h, *crowd) in enumerate(objects):
            pixels[y:y + h, x:x + w] = (40 * image_id % 256, 60 * k % 256, 200)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": categories[category], "segmentation": _polygon(x, y, w, h),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": crowd[0] if crowd else 0})
        Image.fromarray(pixels).save(folder / name)
        images.append({"id": image_id, "file_name": name, "width": shape[1], "height": shape[0]})
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": i, "name": n} for n, i in categories.items()]}))
    return ann_file, folder


@pytest.fixture
def coco_fixture(tmp_path):
    """Four 120×100 images: two whole cars, a car overlapped by a person, a border car, a crowd."""
    return write_coco_photos(tmp_path, {
        1: ("1.png", [("car", 20, 30, 50, 30), ("person", 85, 10, 20, 60)]),
        2: ("2.png", [("car", 30, 40, 40, 25), ("car", 0, 5, 30, 20)]),          # border car
        3: ("3.png", [("car", 20, 30, 50, 30), ("person", 55, 20, 20, 50),     # overlapped car
                      ("car", 75, 60, 30, 20, 1)]),                              # crowd
        4: ("4.png", [("car", 40, 20, 45, 35)]),
    }, {"person": 1, "car": 3}, (100, 120))


def test_coco_bases_keep_only_whole_instances(coco_fixture):
    ann_file, images_dir = coco_fixture
    listing = coco_bases(str(ann_file), str(images_dir), ["car"], min_size=16)
    assert [s.group for s in listing.specs] == ["coco-1", "coco-3", "coco-8"]
    assert listing.rejected == {"touching the border": 1, "overlapped by another instance": 1,
                                "crowd": 1}


def test_coco_bases_and_occluders_end_to_end(coco_fixture, tmp_path, cli):
    ann_file, images_dir = coco_fixture
    out = tmp_path / "coco-set"
    result = cli("generate", "ovd", "--base", f"coco:{ann_file}:{images_dir}",
                 "--occluders", f"coco:{ann_file}:{images_dir}", "--occluder-categories", "person",
                 "--splits", "train=4,test=2", "--size", 64, "--base-min-size", 16,
                 "--quiet", "--workers", 1, "--out", out)
    assert result.code == 0, result.err
    assert "1 touching the border" in result.err
    assert cli("validate", out).code == 0
    train = json.loads((out / "train" / "annotations.json").read_text())
    test = json.loads((out / "test" / "annotations.json").read_text())
    train_models = {a["model_id"] for a in train["annotations"]}
    test_models = {a["model_id"] for a in test["annotations"]}
    assert train_models | test_models <= {"coco-1", "coco-3", "coco-8"}
    assert not train_models & test_models
    assert {o["category"] for o in train["occluders"] + test["occluders"]} == {"person"}
    assert str(tmp_path) not in (out / "manifest.json").read_text()


@pytest.mark.parametrize("case", ["missing-field", "missing-image", "no-eligible", "mask-size",
                                  "opaque-occluder", "bad-splits", "bad-harmonize"])
def test_bad_input_gets_one_line(coco_fixture, tmp_path, cli, case):
    ann_file, images_dir = coco_fixture
    data = json.loads(ann_file.read_text())
    args = ["--base", f"coco:{ann_file}:{images_dir}", "--base-min-size", 16]
    if case == "missing-field":
        del data["annotations"][2]["bbox"]
        ann_file.write_text(json.dumps(data))
        expected = "annotations record 3 lacks bbox"
    elif case == "missing-image":
        (images_dir / "4.png").unlink()
        expected = "image not found"
    elif case == "no-eligible":
        args = ["--base", f"coco:{ann_file}:{images_dir}", "--base-min-size", 60]
        expected = "no eligible base instance of car, truck, bus"
        data["categories"] += [{"id": 7, "name": "truck"}, {"id": 8, "name": "bus"}]
        ann_file.write_text(json.dumps(data))
    elif case == "mask-size":
        folder = tmp_path / "bases"
        folder.mkdir()
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / "car_a.png")
        Image.fromarray(np.zeros((30, 50), np.uint8)).save(folder / "car_a.mask.png")
        args = ["--base", f"dir:{folder}"]
        expected = "mask car_a.mask.png is 50×30 but car_a.png is 50×40"
    elif case == "opaque-occluder":
        folder = tmp_path / "cutouts"
        folder.mkdir()
        Image.fromarray(np.full((20, 20, 4), 255, np.uint8)).save(folder / "sign.png")
        args += ["--occluders", f"dir:{folder}"]
        expected = "fills its whole frame"
    elif case == "bad-splits":
        args += ["--splits", "train=10,test"]
        expected = "bad --splits"
    else:
        args += ["--harmonize", "poisson"]
        expected = "unknown --harmonize"
    out = tmp_path / "out"
    result = cli("generate", "ovd", *args, "--quiet", "--workers", 1, "--out", out)
    assert result.code == 2
    assert expected in result.error_line()
    assert not out.exists()


def test_feathering_never_touches_pixels_outside_the_mask():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 4:12] = True
    alpha = feathered_alpha(mask)
    assert np.all(alpha[~mask] == 0)
    assert alpha[10, 8] == 1.0 and 0 < alpha[5, 8] < 1  # interior opaque, border blended
    assert np.all(alpha[mask] > 0)


def test_reinhard_moves_colour_toward_the_surroundings():
    from skimage.color import rgb2lab

    background = np.zeros((40, 40, 3), np.uint8)
    background[:] = (40, 60, 200)
    rgb = np.zeros_like(background)
    rgb[:] = (230, 200, 30)
    mask = np.zeros((40, 40), bool)
    mask[15:25, 15:25] = True
    out = reinhard(rgb, mask, background, strength=0.5)
    assert np.array_equal(out[~mask], rgb[~mask])
    before = rgb2lab(rgb[mask][None] / 255.0)[0].mean(axis=0)
    after = rgb2lab(out[mask][None] / 255.0)[0].mean(axis=0)
    target = rgb2lab(background[~mask][None] / 255.0)[0].mean(axis=0)
    # Half-way in Lab (up to gamut clipping on the way back to RGB).
    assert np.linalg.norm(after - (before + target) / 2) < 0.15 * np.linalg.norm(target - before)


def test_show_writes_a_sheet(builtin_set, tmp_path, cli):
    out = tmp_path / "sheet.png"
    assert cli("show", builtin_set, "-o", out, "--count", 3).code == 0
    sheet = Image.open(out)
    assert sheet.size == (4 * 96, 3 * 96 + 16)


def test_convert_cocoa_and_kins_round_trip(builtin_set, tmp_path, cli):
    assert cli("convert", builtin_set, "--to", "cocoa", "-o", tmp_path / "cocoa").code == 0
    assert cli("convert", builtin_set, "--to", "kins2020", "-o", tmp_path / "kins").code == 0
    source = json.loads((builtin_set / "train" / "annotations.json").read_text())
    cocoa = json.loads((tmp_path / "cocoa" / "train.json").read_text())
    kins = json.loads((tmp_path / "kins" / "train.json").read_text())
    if SHARED_SAMPLE.is_dir():
        sample = json.loads((SHARED_SAMPLE / "1.json").read_text())
        occluded = next(r for r in sample["regions"] if r["occlude_rate"] > 0)
        ours = next(r for r in cocoa["annotations"][0]["regions"] if r["occlude_rate"] > 0)
        assert set(ours) == set(occluded)
        assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in occluded.items()}
    for record, image in zip(cocoa["annotations"], source["images"]):
        (vehicle,) = [a for a in source["annotations"] if a["image_id"] == image["id"]]
        region = max(record["regions"], key=lambda r: r["order"])  # the vehicle is backmost
        amodal = rle_mask(vehicle["segmentation"])
        assert region["order"] == record["size"] and region["area"] == amodal.sum()
        polygon = mask_utils.decode(mask_utils.frPyObjects([region["segmentation"]], 96, 96))[..., 0]
        iou = (polygon & amodal).sum() / (polygon | amodal).sum()
        assert iou > 0.85
        if region["occlude_rate"] > 0:
            assert np.array_equal(rle_mask(region["visible_mask"]), rle_mask(vehicle["visible_mask"]))
        assert all(f"{k}-{record['size']}" in record["depth_constraint"].split(",")
                   for k in range(1, record["size"])
                   if (rle_mask(vehicle["invisible_mask"]).any()))
    for ann, original in zip(kins["annotations"], source["annotations"]):
        assert set(ann) >= {"segmentation", "bbox", "area", "inmodal_seg", "inmodal_bbox"}
        assert ann["bbox"] == original["bbox"] and ann["inmodal_bbox"] == original["inmodal_bbox"]


# --------------------------------------------------------------------------- real-photo composites

STREET = {  # photo: (file, [(category, bbox x, y, w, h)]), 200×150 each
    1: ("1.jpg", [("car", 40, 60, 90, 45), ("person", 0, 20, 25, 80)]),          # person at the border
    2: ("2.png", [("car", 50, 50, 80, 40), ("person", 150, 30, 20, 70), ("bicycle", 10, 95, 40, 30)]),
    3: ("3.png", [("car", 90, 40, 30, 16), ("person", 30, 40, 24, 70), ("person", 170, 0, 30, 60)]),
    4: ("4.png", [("car", 20, 30, 20, 10), ("bicycle", 120, 60, 50, 35)]),       # a 20 px car
}
CATEGORY_IDS = {"person": 1, "bicycle": 2, "car": 3}


@pytest.fixture
def street_photos(tmp_path):
    """Four street photos (one JPEG) with cars, people and bicycles: a coco: source."""
    ann_file, folder = write_coco_photos(tmp_path, STREET, CATEGORY_IDS, (150, 200), seed=1)
    return f"coco:{ann_file}:{folder}"


def _annotation_ids(category, touching_border):
    """Ids (in fixture order) of the instances of a category, by whether they touch the border."""
    ids, n = [], 0
    for _, objects in STREET.values():
        for name, x, y, w, h in objects:
            n += 1
            if name == category and (x == 0 or y == 0 or x + w == 200 or y + h == 150) == touching_border:
                ids.append(n)
    return ids


@pytest.mark.parametrize("keep, expected", [
    pytest.param(False, _annotation_ids("person", False), id="left-out"),
    pytest.param(True, sorted(_annotation_ids("person", False) + _annotation_ids("person", True)), id="kept"),
])
def test_border_occluders_left_out_unless_kept(street_photos, keep, expected):
    from ovbench.generate.ovd.sources import coco_occluders

    _, ann_file, images = street_photos.split(":")
    listing = coco_occluders(ann_file, images, ["person"], 16, keep_border=keep)
    assert [s.group for s in listing.specs] == [f"coco-{i}" for i in expected]
    assert sum(listing.rejected.values()) == (0 if keep else 2)


def _generate_street(cli, source, out, *extra):
    result = cli("generate", "ovd", "--base", source, "--occluders", source, "--occluder-categories",
                 "person,bicycle", "--splits", "train=6,test=3", "--size", 96, "--harmonize", "none",
                 "--quiet", "--workers", 1, "--out", out, *extra)
    assert result.code == 0, result.err
    assert cli("validate", out).code == 0
    return result


@pytest.mark.parametrize("extra, rejected", [
    pytest.param([], {"touching the border (--keep-border-occluders keeps them)": 2}, id="default"),
    pytest.param(["--keep-border-occluders"], {}, id="kept"),
])
def test_street_photo_composites_validate_and_record_left_out_occluders(street_photos, tmp_path, cli,
                                                                         extra, rejected):
    out = tmp_path / "street"
    _generate_street(cli, street_photos, out, *extra)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["occluders_rejected"] == rejected
    assert manifest["config"]["keep_border_occluders"] == bool(extra)


def test_ground_standing_occluders_stand_on_the_vehicles_ground_line(street_photos, tmp_path, cli):
    out = tmp_path / "street"
    _generate_street(cli, street_photos, out)
    bottoms = []
    for split in ("train", "test"):
        data = json.loads((out / split / "annotations.json").read_text())
        vehicles = {a["image_id"]: a["bbox"] for a in data["annotations"]}
        for occluder in data["occluders"]:
            x, y, w, h = vehicles[occluder["image_id"]]
            _, oy, _, oh = mask_utils.toBbox({"size": occluder["segmentation"]["size"],
                                              "counts": occluder["segmentation"]["counts"].encode()})
            bottoms.append(((oy + oh) - (y + h)) / h)   # below the ground line, in vehicle heights
    assert bottoms and all(-0.05 <= b <= 0.15 for b in bottoms), bottoms


def _cutout(category, source="coco", origin="", height=40, width=14):
    return Cutout(np.full((height, width, 4), 255, np.uint8), category, source, origin)


def _car_frame():
    amodal = np.zeros((96, 96), bool)
    amodal[40:70, 18:78] = True                     # a 60×30 car, ground line at row 69
    return amodal


@pytest.mark.parametrize("category, base_category, ratio", [
    pytest.param("person", "car", 1.7 / 1.5, id="person-by-car"),
    pytest.param("person", "bus", 1.7 / 3.2, id="person-by-bus"),
    pytest.param("bicycle", "car", 1.05 / 1.5, id="bicycle-by-car"),
    pytest.param("car", "car", 1.0, id="car-by-car"),
])
def test_standing_cutouts_sized_by_the_vehicle_and_on_its_ground_line(category, base_category, ratio):
    amodal = _car_frame()
    bank = [_cutout(category, origin=f"coco-{k}", height=30 + 7 * k) for k in range(6)]
    for seed in range(20):
        for p in plan_occlusion(amodal, bank, 3, 0.4, 10, np.random.default_rng(seed), base_category):
            rows = np.flatnonzero(p.mask.any(axis=1))
            assert 69 - 0.03 * 30 - 1 <= rows[-1] <= 69 + 0.12 * 30 + 1
            assert ratio * 0.9 - 0.05 <= len(rows) / 30 <= ratio * 1.15 + 0.05


def test_rendered_cutouts_stand_at_their_own_height():
    assert standing_ratio(Cutout(np.zeros((4, 4, 4), np.uint8), "box", "builtin", height_m=0.75), "car") == 0.5


def test_rendered_base_sizes_standing_occluders_by_its_camera():
    """A level camera 1.5 m above the ground: a thing H metres tall whose foot is r rows below the
    horizon (the middle row) at distance D = f·1.5/r is f·H/D = H·r/1.5 pixels tall."""
    size, camera_height = 96, 1.5
    ground = Ground(look_at((0, 0, camera_height), (10, 0, camera_height)), np.radians(40), size)
    amodal = _car_frame()
    bank = [Cutout(np.full((50, 10 + k, 4), 255, np.uint8), "pole", "builtin", f"r-{k}", 0.8 + 0.4 * k)
            for k in range(6)]
    checked = 0
    for seed in range(10):
        for p in plan_occlusion(amodal, bank, 3, 0.4, 10, np.random.default_rng(seed), "car", ground=ground):
            rows = np.flatnonzero(p.mask.any(axis=1))
            assert p.standing and 69 - 0.03 * 30 - 1 <= rows[-1] <= 69 + 0.12 * 30 + 1
            below_horizon = rows[-1] + 1 - size / 2
            assert len(rows) == pytest.approx(p.cutout.height_m * below_horizon / camera_height, abs=2.5)
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("standing", [True, False])
def test_contact_shadow_darkens_the_ground_under_the_feet_only(standing):
    base = np.full((40, 40, 3), 200, np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[10:25, 18:22] = True                              # feet on row 24
    keep = np.zeros((40, 40), bool)
    keep[25:30, 20:40] = True                              # the vehicle, right of the feet
    placement = Placement(_cutout("person"), 18, 10, 1.0, mask, np.full((40, 40, 3), 50, np.uint8), standing)
    out = composite(base, [placement], keep=keep).astype(int)
    assert (out[12:23, 20] == 50).all()                    # the occluder itself (its edge is feathered)
    assert (out[keep] == 200).all()                        # the vehicle's appearance stays exact
    assert (out[:5] == 200).all() and (out[:, :10] == 200).all() and (out[32:] == 200).all()
    assert (out[25, 18:20] < 200).all() == standing        # the ground just under the feet
    assert (out[~mask & ~keep] <= 200).all()


@pytest.mark.parametrize("cutout, base_category", [
    pytest.param(_cutout("kite"), "car", id="not-standing"),
    pytest.param(_cutout("person"), "phone", id="base-of-unknown-height"),
])
def test_other_cutouts_placed_freely(cutout, base_category):
    assert standing_ratio(cutout, base_category) is None


@pytest.mark.parametrize("bank_size, base_origin, unique", [
    pytest.param(6, "", True, id="big-bank"),
    pytest.param(4, "coco-0", True, id="not-the-base-itself"),
    pytest.param(2, "", False, id="small-bank-repeats"),
])
def test_no_cutout_twice_in_an_image_while_the_bank_allows(bank_size, base_origin, unique):
    amodal = _car_frame()
    bank = [_cutout("kite", origin=f"coco-{k}") for k in range(bank_size)]
    for seed in range(30):
        placements = plan_occlusion(amodal, bank, 3, 0.5, 10, np.random.default_rng(seed), "car",
                                    base_origin)
        origins = [p.cutout.origin for p in placements]
        assert base_origin not in origins
        if unique:
            assert len(set(origins)) == len(origins)
        else:
            assert len(placements) < 3 or set(origins) == {"coco-0", "coco-1"}


def _mirrored(index, length):
    """numpy-independent reflect padding: -1 → 1, length → length - 2."""
    if index < 0:
        return -index
    return 2 * (length - 1) - index if index >= length else index


@pytest.mark.parametrize("x0, y0, side", [
    pytest.param(1, 1, 4, id="inside"), pytest.param(-3, -2, 5, id="top-left"),
    pytest.param(4, 3, 6, id="bottom-right"), pytest.param(-2, -1, 9, id="larger-than-the-image"),
])
def test_square_crop_pads_by_mirroring_the_photo(x0, y0, side):
    image = np.arange(6 * 7 * 3).reshape(6, 7, 3)
    crop = square_crop(image, x0, y0, side)
    expected = np.array([[image[_mirrored(y0 + i, 6), _mirrored(x0 + j, 7)] for j in range(side)]
                         for i in range(side)])
    assert np.array_equal(crop, expected)
    zeros = square_crop(image[..., 0], x0, y0, side, mode="constant")
    assert zeros.sum() == sum(image[y, x, 0] for y in range(max(y0, 0), min(y0 + side, 6))
                              for x in range(max(x0, 0), min(x0 + side, 7)))


@pytest.mark.parametrize("photo, box", [
    pytest.param((100, 160), (10, 40, 30, 30), id="near-the-left"),
    pytest.param((100, 160), (60, 128, 30, 30), id="near-the-bottom-right"),
    pytest.param((90, 200), (5, 60, 80, 70), id="tall-for-the-photo"),
    pytest.param((60, 200), (3, 20, 54, 150), id="longer-than-the-photo-is-high"),
])
def test_base_crops_stay_inside_the_photo_where_they_fit(photo, box):
    h, w = photo
    y, x, bh, bw = box
    mask = np.zeros(photo, bool)
    mask[y:y + bh, x:x + bw] = True
    for seed in range(10):
        x0, y0, side = frame_crop(mask, np.random.default_rng(seed))
        assert x0 <= x and y0 <= y and x0 + side >= x + bw and y0 + side >= y + bh  # vehicle inside
        if max(bh, bw) + 2 <= min(h, w):
            assert 0 <= x0 <= w - side and 0 <= y0 <= h - side                       # no padding
        else:
            assert side == max(bh, bw) + 2                                           # least padding


def test_default_base_min_size_keeps_upscaling_at_most_4x(street_photos, tmp_path, cli):
    out = tmp_path / "street"
    result = _generate_street(cli, street_photos, out)
    assert "1 smaller than 24 px" in result.err              # the 20 px car: 96 / 24 = 4
    source_sides = {f"coco-{n}": max(w, h) for n, (c, w, h) in enumerate(
        ((c, w, h) for _, objects in STREET.values() for c, x, y, w, h in objects), start=1)}
    factors = []
    for split in ("train", "test"):
        for ann in json.loads((out / split / "annotations.json").read_text())["annotations"]:
            factors.append(max(ann["bbox"][2:]) / source_sides[ann["model_id"]])
    assert factors and max(factors) <= 4.0


@pytest.mark.parametrize("name, category", [
    pytest.param("bus_front.png", "bus", id="bus"), pytest.param("truck_1_a.jpg", "truck", id="truck"),
    pytest.param("car.png", "car", id="no-underscore"), pytest.param("photo_3.png", None, id="not-a-vehicle"),
])
def test_dir_bases_take_their_category_from_the_file_name(tmp_path, name, category):
    folder = tmp_path / "bases"
    folder.mkdir()
    for file in (name, "car_other.png"):
        Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(folder / file)
        mask = np.zeros((60, 80), np.uint8)
        mask[20:40, 10:70] = 255
        Image.fromarray(mask).save(folder / (Path(file).stem + ".mask.png"))
    listing = dir_bases(str(folder), ["car", "truck", "bus"], 24)
    found = {Path(s.image).name: s.category for s in listing.specs}
    assert found.get(name) == category and found["car_other.png"] == "car"
    assert sum(listing.rejected.values()) == (category is None)


def test_dir_bases_labelled_in_the_output(tmp_path, cli):
    folder = tmp_path / "bases"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for file in ("bus_1.png", "truck_2.png", "car_3.png", "car_4.png"):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / file)
        mask = np.zeros((60, 80), np.uint8)
        mask[15:45, 10:70] = 255
        Image.fromarray(mask).save(folder / file.replace(".png", ".mask.png"))
    out = tmp_path / "dir-set"
    result = cli("generate", "ovd", "--base", f"dir:{folder}", "--splits", "train=3,test=1",
                 "--size", 64, "--occluder-bank", 8, "--quiet", "--workers", 1, "--out", out)
    assert result.code == 0, result.err
    labels = {}
    for split in ("train", "test"):
        data = json.loads((out / split / "annotations.json").read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        labels.update({a["model_id"]: names[a["category_id"]] for a in data["annotations"]})
    assert labels == {"dir-bus_1": "bus", "dir-truck_2": "truck", "dir-car_3": "car", "dir-car_4": "car"}


def test_readme_figure_script_runs_on_the_shared_sample(tmp_path):
    """docs/make_ovd_real_photo.py, which the README names, on ../shared's sample photos."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "docs" / "make_ovd_real_photo.py"
    sample = script.parents[2] / "shared" / "data" / "cocoa-sample"
    if not sample.is_dir():
        pytest.skip("no ../shared/data/cocoa-sample beside this checkout")
    out = tmp_path / "figure.png"
    result = subprocess.run([sys.executable, str(script), str(sample), "-o", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(out).size[0] > 0


def test_a_bank_made_again_at_the_same_path_is_read_again_by_kept_workers(tmp_path, cli):
    # Workers keep the bank they read; a later build at the same path makes and reads its own:
    # the same bytes as a fresh process's build of those settings.
    args = ("--splits", "train=16,test=8", "--size", 64, "--occluder-bank", 24, "--workers", 2, "--quiet")
    out = tmp_path / "set"
    assert cli("generate", "ovd", *args, "--seed", 1, "--out", out).code == 0
    shutil.rmtree(out)
    assert cli("generate", "ovd", *args, "--seed", 2, "--out", out).code == 0
    fresh = run_subprocess("generate", "ovd", *args, "--seed", 2, "--out", tmp_path / "fresh")
    assert fresh.returncode == 0, fresh.stderr
    images = sorted(p.relative_to(out) for p in out.rglob("images/*.png"))
    assert len(images) == 24
    assert all((out / p).read_bytes() == (tmp_path / "fresh" / p).read_bytes() for p in images)
