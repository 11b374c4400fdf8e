"""Make docs/ovd-real-photo.png: OVD composites of the project's real sample photos.

The sample (shared/data/cocoa-sample) holds COCOA amodal records of two COCO photos. Its regions
that nothing hides are whole objects, so they serve as COCO instances for both the bases and the
occluders. It has no vehicles: phones, a statue and a wine glass stand in for them.

    .venv/bin/python docs/make_ovd_real_photo.py [SAMPLE_DIR] [-o docs/ovd-real-photo.png]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image
from pycocotools import mask as mask_utils

from ovbench.cli import main

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "shared" / "data" / "cocoa-sample"
BASES = "phone,statue,wine glass"
OCCLUDERS = "doughnut,espresso cup,wine glass,shot glass,statue,silverwear,phone"


def unhidden_instances(sample: Path) -> dict:
    """A COCO instances file of the regions with occlude_rate 0 in the sample's COCOA records."""
    images, annotations, categories = [], [], {}
    for record_file in sorted(sample.glob("*.json")):
        record = json.loads(record_file.read_text())
        with Image.open(record_file.with_suffix(".jpg")) as photo:
            width, height = photo.size
        images.append({"id": record["image_id"], "file_name": record_file.stem + ".jpg",
                       "width": width, "height": height})
        for region in record["regions"]:
            if float(region["occlude_rate"]) > 0:
                continue
            polygon = region["segmentation"]
            polygon = json.loads(polygon) if isinstance(polygon, str) else polygon  # both occur
            rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
            category = categories.setdefault(region["name"].strip(), len(categories) + 1)
            annotations.append({"id": len(annotations) + 1, "image_id": record["image_id"],
                                "category_id": category, "segmentation": [polygon], "iscrowd": 0,
                                "bbox": mask_utils.toBbox(rle).tolist(), "area": int(mask_utils.area(rle))})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for name, i in categories.items()]}


def run(*args) -> None:
    if main([str(a) for a in args]) != 0:
        raise SystemExit(f"ovbench {args[0]} failed")


def make_figure(sample: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        ann_file = Path(work) / "sample.json"
        ann_file.write_text(json.dumps(unhidden_instances(sample)))
        source = f"coco:{ann_file}:{sample}"
        data = Path(work) / "ovd"
        run("generate", "ovd", "--base", source, "--base-categories", BASES, "--occluders", source,
            "--occluder-categories", OCCLUDERS, "--splits", "train=4,test=2", "--size", 128,
            "--workers", 1, "--quiet", "--out", data)
        run("validate", data)
        run("show", data, "--split", "train", "--count", 3, "-o", out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("-o", "--out", type=Path, default=HERE / "ovd-real-photo.png")
    args = parser.parse_args()
    make_figure(args.sample, args.out)
