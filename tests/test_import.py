"""`ovbench import kins|cocoa`: real amodal sets as `real` dataset folders. Round trips through
`ovbench convert` (COCOA and KINS-2020 files), a KINS file in the original release's keys written
by hand, untrusted file names and malformed files refused in one line, and an interrupted build
resumed to the same folder."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from ovbench.generate import real

VEHICLES = "car,bus,truck"


def decoded(rle):
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def mask_iou(result_file):
    return json.loads(result_file.read_text())["metrics"]["mask"]["all"]["iou"]


@pytest.mark.parametrize("layout, to", [("cocoa", "cocoa"), ("kins", "kins2020")])
def test_converted_files_import_back_and_score_as_the_original(small_ovd, tmp_path, cli, layout, to):
    assert cli("convert", small_ovd, "--to", to, "-o", tmp_path / to).code == 0
    out = tmp_path / f"ovd-{to}"
    result = cli("import", layout, tmp_path / to / "test.json", "--images", small_ovd / "test", "--out", out,
                 "--categories", VEHICLES, "--size", 64, "--workers", 1, "--quiet")
    assert result.code == 0, result.err
    assert cli("validate", out).code == 0
    assert cli("show", out, "-o", tmp_path / "sheet.png").code == 0
    original = json.loads((small_ovd / "test" / "annotations.json").read_text())
    imported = json.loads((out / "test" / "annotations.json").read_text())
    assert json.loads((out / "manifest.json").read_text())["kind"] == "real"
    assert len(imported["images"]) == len(imported["annotations"]) == len(original["annotations"])
    for ann, image in zip(imported["annotations"], imported["images"]):
        assert decoded(ann["visible_mask"]).sum() >= real.MIN_VISIBLE and "appearance" not in image
    if layout == "cocoa":  # COCOA's order and depth constraints: the regions in front, with masks
        assert any(entry["pixels"] > 0 for ann in imported["annotations"] for entry in ann["occluders"])
        assert {o["id"] for o in imported["occluders"]} == {e["id"] for a in imported["annotations"]
                                                            for e in a["occluders"]}
    for data, name in ((small_ovd, "original.json"), (out, "imported.json")):
        assert cli("evaluate", "--model", "convex-hull", "--data", data, "--out", tmp_path / name,
                   "--quiet").code == 0
    assert abs(mask_iou(tmp_path / "imported.json") - mask_iou(tmp_path / "original.json")) <= 0.03
    results = json.loads((tmp_path / "imported.json").read_text())
    assert results["benchmark"] == out.name
    assert "unavailable" in results["metrics"]["appearance"]
    # Results on the imported set make a leaderboard of its own, under its own name.
    assert cli("evaluate", "--model", "visible", "--data", out, "--quiet").code == 0
    assert cli("leaderboard").code == 0
    table = (tmp_path / "leaderboards" / f"{out.name}.md").read_text()
    assert f"# Leaderboard: {out.name} (real)" in table and "| visible |" in table


def photo_with_two_cars(path):
    """A 160×100 photo: a red car (x 20–99, y 40–79) partly behind a blue box (x 80–119, y 30–89),
    a green car (x 130–149, y 10–29) in the open, on grey."""
    pixels = np.full((100, 160, 3), 128, np.uint8)
    pixels[40:80, 20:100] = (200, 30, 30)
    pixels[30:90, 80:120] = (30, 30, 200)
    pixels[10:30, 130:150] = (30, 200, 30)
    Image.fromarray(pixels).save(path)


def box_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def kins_original(file_name="000001.png"):
    """KINS as first released: a_segm/i_segm polygons, a_bbox/i_bbox, a_area/i_area, oco_id/ico_id."""
    def ann(id_, category, amodal, visible, order, **extra):
        return {"id": id_, "image_id": 7, "category_id": category, "a_segm": box_polygon(*amodal),
                "i_segm": box_polygon(*visible), "a_bbox": [amodal[0], amodal[1], amodal[2] - amodal[0],
                                                           amodal[3] - amodal[1]],
                "i_bbox": [visible[0], visible[1], visible[2] - visible[0], visible[3] - visible[1]],
                "a_area": 0, "i_area": 0, "oco_id": 1, "ico_id": order, **extra}

    return {"images": [{"id": 7, "file_name": file_name, "width": 160, "height": 100}],
            "categories": [{"id": 1, "name": "cyclist"}, {"id": 4, "name": "car"}],
            "annotations": [ann(11, 4, (20, 40, 100, 80), (20, 40, 80, 80), 2),
                            ann(12, 4, (130, 10, 150, 30), (130, 10, 150, 30), 1),
                            ann(13, 1, (80, 30, 120, 90), (80, 30, 120, 90), 1),
                            ann(14, 4, (0, 0, 10, 10), (0, 0, 10, 10), 1, iscrowd=1)]}


@pytest.fixture
def kins_files(tmp_path):
    (tmp_path / "photos").mkdir()
    photo_with_two_cars(tmp_path / "photos" / "000001.png")
    (tmp_path / "kins.json").write_text(json.dumps(kins_original()))
    return tmp_path / "kins.json", tmp_path / "photos"


def test_original_kins_keys_import_framed_as_ovd_frames_its_bases(kins_files, tmp_path, cli):
    ann_file, photos = kins_files
    out = tmp_path / "kins-test"
    result = cli("import", "kins", ann_file, "--images", photos, "--out", out, "--categories", "car",
                 "--size", 64, "--quiet")
    assert result.code == 0, result.err
    assert "1 crowd" in result.err
    assert cli("validate", out).code == 0
    document = json.loads((out / "test" / "annotations.json").read_text())
    assert [a["model_id"] for a in document["annotations"]] == ["kins-11", "kins-12"]
    assert [a["order"] for a in document["annotations"]] == [2, 1]  # KINS's ico_id
    assert document["categories"] == [{"id": 1, "name": "car"}]
    for ann, image, (box, hidden) in zip(document["annotations"], document["images"],
                                         [((20, 40, 80, 40), 20 / 80), ((130, 10, 20, 20), 0.0)]):
        x0, y0, side = image["crop"]
        longest = max(box[2], box[3])
        assert min(int(np.ceil(1.15 * longest)), 100) <= side <= max(int(np.ceil(1.5 * longest)), longest + 2)
        scale = 64 / side
        amodal = decoded(ann["segmentation"])
        assert abs(amodal.sum() - box[2] * box[3] * scale ** 2) <= 2 * (box[2] + box[3]) * scale + 4
        assert abs(ann["occlude_rate"] - hidden) < 0.05
        pixels = np.asarray(Image.open(out / "test" / image["file_name"]))
        colour = pixels[amodal & decoded(ann["visible_mask"])].mean(axis=0)
        expected = (200, 30, 30) if ann["model_id"] == "kins-11" else (30, 200, 30)
        assert np.abs(colour - expected).max() < 20  # the visible pixels show that car
    assert not (out / "test" / "appearance").exists()


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["images"][0].update(file_name="../outside.png"), "unsafe file name"),
    (lambda d: d["images"][0].update(file_name="/etc/hostname"), "unsafe file name"),
    (lambda d: d["images"][0].update(file_name="link.png"), "symbolic link leads outside"),
    (lambda d: d["annotations"][0].update(a_segm=[[1, 2, 3]]), "polygon must be"),
    (lambda d: d["annotations"][0].pop("i_segm"), "neither KINS's a_segm/i_segm"),
    (lambda d: d["annotations"][0].update(image_id=99), "names image 99"),
    (lambda d: d.pop("images"), "not a COCO-style annotation file"),
])
def test_untrusted_names_and_malformed_files_are_one_line(kins_files, tmp_path, cli, change, expected):
    ann_file, photos = kins_files
    (tmp_path / "outside.png").write_bytes((photos / "000001.png").read_bytes())
    os.symlink(tmp_path / "outside.png", photos / "link.png")
    data = kins_original()
    change(data)
    ann_file.write_text(json.dumps(data))
    result = cli("import", "kins", ann_file, "--images", photos, "--out", tmp_path / "out", "--quiet")
    assert result.code == 2 and expected in result.error_line(), result.err
    assert "Traceback" not in result.err and not (tmp_path / "out").exists()


def test_truncated_json_and_unknown_layout(kins_files, tmp_path, cli):
    ann_file, photos = kins_files
    ann_file.write_text(ann_file.read_text()[:-10])
    result = cli("import", "cocoa", ann_file, "--images", photos, "--out", tmp_path / "out")
    assert result.code == 2 and "not valid JSON" in result.error_line()


def test_an_interrupted_import_resumes_to_the_same_folder(small_ovd, tmp_path, monkeypatch, cli):
    assert cli("convert", small_ovd, "--to", "cocoa", "-o", tmp_path / "cocoa").code == 0
    args = ("cocoa", tmp_path / "cocoa" / "test.json", "--images", small_ovd / "test",
            "--categories", VEHICLES, "--size", 64, "--workers", 1, "--quiet")
    assert cli("import", *args, "--out", tmp_path / "whole").code == 0
    framed = real._record
    calls = []

    def stop_after_two(*a):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return framed(*a)

    monkeypatch.setattr(real, "_record", stop_after_two)
    assert cli("import", *args, "--out", tmp_path / "cut").code == 130
    assert (tmp_path / "cut" / ".parts").is_dir() and not (tmp_path / "cut" / "manifest.json").exists()
    assert "--resume" in cli("import", *args, "--out", tmp_path / "cut").error_line()
    monkeypatch.setattr(real, "_record", framed)
    assert cli("import", *args, "--out", tmp_path / "cut", "--resume").code == 0
    whole, cut = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("whole", "cut"))
    assert whole["files"] == cut["files"] and whole["splits"] == cut["splits"]


def test_an_imported_folder_publishes_and_loads_with_datasets(small_ovd, tmp_path, cli):
    import datasets

    assert cli("convert", small_ovd, "--to", "kins2020", "-o", tmp_path / "kins").code == 0
    out = tmp_path / "kins-real"
    assert cli("import", "kins", tmp_path / "kins" / "test.json", "--images", small_ovd / "test", "--out", out,
               "--size", 64, "--quiet").code == 0
    assert cli("publish", out, "--repo-id", "org/kins-real", "--to", tmp_path / "repo", "--quiet").code == 0
    loaded = datasets.load_dataset(str(tmp_path / "repo"), "real")["test"]
    document = json.loads((out / "test" / "annotations.json").read_text())
    assert loaded["source_image"] == [image["source_image"] for image in document["images"]]
    assert loaded["crop"] == [image["crop"] for image in document["images"]]
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "license: other" in card
    assert "imported real ones (`real`) have annotators' amodal masks" in card and "Synthetic amodal" not in card
