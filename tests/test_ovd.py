"""`ovbench generate ovd`, `validate`, `show`, `convert`: invariants recomputed independently."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from conftest import run_and_kill
from ovbench.composite import feathered_alpha
from ovbench.harmonize import reinhard
from ovbench.ovd_sources import coco_bases

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


@pytest.fixture
def coco_fixture(tmp_path):
    """Three 120×100 images: two whole cars, a car overlapped by a person, a border car, a crowd."""
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    specs = {
        1: [("car", (20, 30, 50, 30), 0), ("person", (85, 10, 20, 60), 0)],
        2: [("car", (30, 40, 40, 25), 0), ("car", (0, 5, 30, 20), 0)],        # border car
        3: [("car", (20, 30, 50, 30), 0), ("person", (55, 20, 20, 50), 0),   # overlapped car
            ("car", (75, 60, 30, 20), 1)],                                   # crowd
        4: [("car", (40, 20, 45, 35), 0)],
    }
    ann_id = 1
    for image_id, objects in specs.items():
        name = f"{image_id}.png"
        Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(images_dir / name)
        images.append({"id": image_id, "file_name": name, "width": 120, "height": 100})
        for category, (x, y, w, h), crowd in objects:
            annotations.append({"id": ann_id, "image_id": image_id,
                                "category_id": 3 if category == "car" else 1,
                                "segmentation": _polygon(x, y, w, h), "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": crowd})
            ann_id += 1
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}))
    return ann_file, images_dir


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
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / "a.png")
        Image.fromarray(np.zeros((30, 50), np.uint8)).save(folder / "a.mask.png")
        args = ["--base", f"dir:{folder}"]
        expected = "mask a.mask.png is 50×30 but a.png is 50×40"
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
