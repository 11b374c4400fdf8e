"""`ovbench convert`: polygons against pycocotools' own rasterisation, every part of every object kept."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.ndimage import binary_fill_holes

from ovbench.formats.convert import polygons, single_outline, to_cocoa


def rle_mask(rle):
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def drawn(polygon_list, height, width):
    """pycocotools' rasterisation of COCO polygons (a list of flat [x1, y1, ...] lists)."""
    if not polygon_list:
        return np.zeros((height, width), bool)
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon_list, height, width))).astype(bool)


def two_wheels_and_a_frame(shape=(40, 60)):
    """A bicycle seen through an occluder: two wheels (rings, with holes), a one-pixel spoke apart
    from them, and a diagonal pair of pixels (parts touching only at a corner)."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    mask = np.zeros(shape, bool)
    for cx in (14, 44):
        distance = np.hypot(rows - 22, cols - cx)
        mask |= (distance < 10) & (distance > 5)
    mask[3, 29] = True
    mask[36, 28] = mask[37, 29] = True
    return mask


def test_polygons_trace_every_part_and_fill_holes():
    mask = two_wheels_and_a_frame()
    outlines = polygons(mask)
    assert len(outlines) == 5  # two wheels, the spoke, and the corner pair as two parts
    areas = [mask_utils.area(mask_utils.frPyObjects([p], 40, 60))[0] for p in outlines]
    assert areas == sorted(areas, reverse=True)  # largest first
    assert np.array_equal(drawn(outlines, 40, 60), binary_fill_holes(mask))
    # COCOA's single polygon draws the same pixels: its bridges cover nothing.
    assert np.array_equal(drawn([single_outline(outlines)], 40, 60), binary_fill_holes(mask))
    assert polygons(np.zeros((5, 5), bool)) == [] and single_outline([]) == []


def one_image_document(amodal, visible):
    """An ovbench annotations document: one image, one vehicle, no occluder records."""
    height, width = amodal.shape
    return {"images": [{"id": 1, "file_name": "images/000001.png", "width": width, "height": height}],
            "categories": [{"id": 1, "name": "bicycle"}],
            "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "order": 1,
                             "segmentation": encode(amodal), "visible_mask": encode(visible)}]}


def encode(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}


@pytest.mark.parametrize("occluded", [False, True])
def test_a_two_part_object_keeps_both_parts_and_its_exact_mask(occluded):
    amodal = two_wheels_and_a_frame()
    visible = amodal.copy()
    if occluded:
        visible[:, 20:40] = False
    (region,) = to_cocoa(one_image_document(amodal, visible))["annotations"][0]["regions"]
    assert np.array_equal(drawn([region["segmentation"]], 40, 60), binary_fill_holes(amodal))
    if occluded:  # COCOA's own keys hold the exact mask
        assert "segmentation_rle" not in region
        exact = rle_mask(region["visible_mask"]) | rle_mask(region["invisible_mask"])
    else:
        exact = rle_mask(region["segmentation_rle"])
    assert np.array_equal(exact, amodal)


@pytest.mark.parametrize("layout", ["cocoa", "kins2020"])
@pytest.mark.parametrize("kind", ["dyce", "ovd"])
def test_every_region_covers_at_least_95_percent_of_its_object(request, kind, layout, tmp_path, cli):
    root = request.getfixturevalue(f"small_{kind}")
    assert cli("convert", root, "--to", layout, "-o", tmp_path / layout).code == 0
    for split in ("train", "test"):
        source = json.loads((root / split / "annotations.json").read_text())
        converted = json.loads((tmp_path / layout / f"{split}.json").read_text())
        sizes = {image["id"]: (image["height"], image["width"]) for image in source["images"]}
        if layout == "kins2020":
            for ann, original in zip(converted["annotations"], source["annotations"]):
                height, width = sizes[ann["image_id"]]
                for polygon_key, rle_key, exact_key in (("segmentation", "segmentation_rle", "segmentation"),
                                                        ("inmodal_seg", "inmodal_seg_rle", "visible_mask")):
                    exact = rle_mask(original[exact_key])
                    assert np.array_equal(rle_mask(ann[rle_key]), exact)
                    assert (drawn(ann[polygon_key], height, width) & exact).sum() >= 0.95 * exact.sum()
            continue
        regions = [region for record in converted["annotations"] for region in record["regions"]]
        ordered = [o for o in source.get("occluders", []) if o["order"] is not None]  # ovd's occluders
        assert len(regions) == len(source["annotations"]) + len(ordered)
        for record in converted["annotations"]:
            height, width = sizes[record["image_id"]]
            for region in record["regions"]:
                exact = (rle_mask(region["visible_mask"]) | rle_mask(region["invisible_mask"])
                         if "visible_mask" in region else rle_mask(region["segmentation_rle"]))
                assert exact.sum() == region["area"]
                covered = (drawn([region["segmentation"]], height, width) & exact).sum()
                assert covered >= 0.95 * exact.sum(), (record["image_id"], region["name"])
