"""The dataset card (README.md) of a Hub repository: YAML metadata, then the text a reader needs."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ovbench import __version__

BUILTIN_SOURCES = {"builtin", "procedural"}
BUILTIN_LICENSE = "cc-by-4.0"
TASK_CATEGORIES = ["image-segmentation", "image-to-image"]
TAGS = ["amodal-segmentation", "occlusion", "appearance-recovery", "synthetic", "vehicles", "ovbench"]
OCCLUSION_BINS = (0.0, 0.01, 0.25, 0.5, 0.75, 1.0)
CITATIONS = """\
@inproceedings{yan2019visualizing,
  title     = {Visualizing the Invisible: Occluded Vehicle Segmentation and Recovery},
  author    = {Yan, Xiaosheng and Yu, Yuanlong and Wang, Feigege and Liu, Wenxi and He, Shengfeng and Pan, Jia},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2019},
  note      = {arXiv:1907.09381}
}

@inproceedings{ehsani2018segan,
  title     = {SeGAN: Segmenting and Generating the Invisible},
  author    = {Ehsani, Kiana and Mottaghi, Roozbeh and Farhadi, Ali},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2018},
  note      = {arXiv:1703.10239}
}"""
ABOUT = {
    "ovd": "OVD-style composites: whole rendered vehicles with occluders pasted over them and "
           "colour-harmonised. The amodal mask and the appearance behind the occluders are exact.",
    "dyce": "DYCE-style 3D scenes (streets by default: parked rows, traffic, pedestrians, street "
            "furniture): many objects rendered together and each alone, giving exact amodal masks, "
            "per-object appearance (RGBA), a depth map and the occlusion graph.",
    "pool": "The 3D silhouette pool: vehicle models rendered from many viewpoints, as used by the "
            "object discriminator of \"Visualizing the Invisible\".",
    "real": "Real photos with annotated amodal masks (KINS or COCOA, `ovbench import`): one row per "
            "instance, framed as ovd frames its photo bases. No appearance ground truth.",
}
COLUMNS = {
    "ovd": "`image` (input, occluded), `appearance` (the same scene without occluders), `objects` "
           "(per vehicle: amodal `segmentation`, `visible_mask`, `invisible_mask` as COCO RLE and "
           "`amodal_image` / `visible_image` as 1-bit PNGs, `bbox`, `category`, `occlude_rate`, "
           "`occluders`, `order`), `occluders` (each pasted occluder with its mask)",
    "dyce": "`image`, `depth` (16-bit PNG, millimetres), `instances` (object index per pixel), "
            "`objects` (as ovd, plus `depth` and `appearance`: the object rendered alone, RGBA with "
            "alpha = amodal mask), `occluders` (unannotated objects), `occlusion_graph`, `depth_order`",
    "pool": "`silhouette` (1-bit PNG), `model_id`, `source`, `view`, `azimuth`, `elevation` "
            "(degrees), `distance` (metres), `bbox`",
    "real": "`image` (the framed photo), `source_image` (the photo's file name), `crop` (x0, y0, side "
            "in the photo), `objects` (as ovd; `order` is the source's occlusion order where it has "
            "one), `occluders` (regions in front of the instance, with their masks)",
}


def _sources(layout) -> list[str]:
    """Where each source's inputs came from (config values such as builtin, coco, shapenet)."""
    config = layout.manifest["config"] if layout.manifest else json.loads(layout.attributes["config"])
    keys = {"ovd": ("base", "occluders"), "dyce": ("vehicles",), "pool": ("source",),
            "real": ("layout",)}[layout.source.kind]
    return [str(config[key]).split(":", 1)[0] for key in keys]


def default_license(layouts) -> str:
    """cc-by-4.0 for built-in data; "other" when third-party meshes or images went in."""
    external = {s for layout in layouts for s in _sources(layout)} - BUILTIN_SOURCES
    return "other" if external else BUILTIN_LICENSE


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def _occlusion_table(layout) -> list[str]:
    labels = [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(OCCLUSION_BINS[:-1], OCCLUSION_BINS[1:])]
    lines = ["| split | images | objects | occluders | mean occlusion | " + " | ".join(labels) + " |",
             "|---" * (5 + len(labels)) + "|"]
    for split, stats in layout.splits.items():
        counts, _ = np.histogram(stats.occlusion, bins=OCCLUSION_BINS)
        mean = f"{np.mean(stats.occlusion):.3f}" if stats.occlusion else "–"
        lines.append(f"| {split} | {stats.images:,} | {stats.objects:,} | {stats.occluders:,} | {mean} | "
                     + " | ".join(f"{n:,}" for n in counts) + " |")
    return lines


def _recipe(layout) -> list[str]:
    if layout.manifest:
        record = {key: layout.manifest[key] for key in
                  ("name", "kind", "ovbench_version", "seed", "created", "config", "sources")}
    else:
        record = {key: layout.attributes[key] for key in ("ovbench_version", "seed", "renderer")}
        record["config"] = json.loads(layout.attributes["config"])
    return ["```json", json.dumps(record, indent=2, sort_keys=True), "```"]


def _section(layout, repo_id: str) -> list[str]:
    kind = layout.source.kind
    lines = [f"### `{layout.source.config}`", "", ABOUT[kind], "", f"Columns: {COLUMNS[kind]}.", "",
             "```python", "from datasets import load_dataset",
             f'ds = load_dataset("{repo_id}", "{layout.source.config}")', "```", ""]
    if kind == "pool":
        stats = layout.splits["train"]
        lines += [f"{stats.images:,} silhouettes of {layout.attributes['models']} models × "
                  f"{layout.attributes['views']} views.", ""]
    else:
        lines += _occlusion_table(layout) + [""]
        categories = sum((s.categories for s in layout.splits.values()), Counter())
        lines += ["Objects by category: " + ", ".join(f"{name} {n:,}" for name, n in categories.most_common())
                  + ".", ""]
    lines += ["Generation recipe (`manifest.json` in this folder holds it in full, with the sha256 of "
              "every original file):" if layout.manifest else "Generation recipe:", ""]
    return lines + _recipe(layout) + [""]


def card_data(layouts, license_id: str, pretty_name: str) -> DatasetCardData:
    data = DatasetCardData(license=license_id, task_categories=TASK_CATEGORIES, tags=TAGS,
                           pretty_name=pretty_name, language=None,
                           size_categories=[_size_category(sum(s.images for layout in layouts
                                                               for s in layout.splits.values()))])
    MetadataConfigs({
        layout.source.config: {
            "data_files": [{"split": split, "path": f"{layout.source.config}/{split}-*.parquet"}
                           for split in layout.splits],
            **({"default": True} if index == 0 else {}),
        } for index, layout in enumerate(layouts)
    }).to_dataset_card_data(data)
    infos = {}
    for layout in layouts:
        splits = SplitDict()
        for split, stats in layout.splits.items():
            splits.add(SplitInfo(name=split, num_bytes=stats.num_bytes, num_examples=stats.images))
        infos[layout.source.config] = DatasetInfo(features=layout.features, splits=splits)
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data


def render(layouts, repo_id: str, license_id: str) -> str:
    name = repo_id.split("/")[-1]
    data = card_data(layouts, license_id, name)
    licence_note = (
        "Made entirely from ovbench's built-in procedural assets; released under CC BY 4.0."
        if license_id == BUILTIN_LICENSE else
        f"Licence: `{license_id}`. Sources used: "
        + ", ".join(sorted({s for layout in layouts for s in _sources(layout)}))
        + ". Renders and crops of third-party meshes or photographs (e.g. ShapeNet, COCO) remain "
          "under those sources' terms.")
    opening = (f"Amodal-perception data made with ovbench {__version__}: synthetic configurations know what "
               "lies behind every occluder to the pixel; imported real ones (`real`) have annotators' amodal "
               "masks and no appearance behind occluders."
               if any(layout.source.kind == "real" for layout in layouts) else
               f"Synthetic amodal-perception data made with ovbench {__version__}: what lies behind every "
               "occluder is known to the pixel.")
    body = [
        f"# {name}", "",
        opening + " Masks follow "
        "COCO conventions (RLE with string counts); `occlude_rate` is the hidden share of the amodal "
        "mask. Configurations:", "",
        *[f"- `{layout.source.config}`{' (default)' if i == 0 else ''}: "
          f"{sum(s.images for s in layout.splits.values()):,} rows" for i, layout in enumerate(layouts)], "",
        "## Configurations", "",
        *[line for layout in layouts for line in _section(layout, repo_id)],
        "## Back to an ovbench folder", "",
        "`ovbench train --data hub:" + repo_id + "` and `ovbench evaluate --data hub:" + repo_id
        + "` download this repository into the local Hub cache and rebuild the original dataset "
          "folder from it, byte for byte (checked against `manifest.json`).", "",
        "## Licence", "", licence_note, "",
        "## Citation", "",
        "The data reproduces the settings of these two papers; please cite them:", "",
        "```bibtex", CITATIONS, "```", "",
    ]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)))
