"""`ovbench evaluate`: run a registered model (or read outside predictions) over a split and score
it with every metric, the same way for every model; write a results JSON for the leaderboard.

Outside predictions (`--predictions DIR`): `DIR/predictions.json`, a COCO-results-like list of
`{"annotation_id": int, "segmentation": RLE}` — the amodal mask of each annotated object of the
split, binary, RLE counts as str or bytes — and optionally `DIR/appearance/<annotation_id>.png`,
the recovered RGB image for that object (image-sized). Objects without a prediction are an error.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ovbench import __version__
from ovbench.errors import InputError
from ovbench.evaluation.metrics import AppearanceMetrics, MaskMetrics, depth_layering
from ovbench.evaluation.perceptual import InceptionCarProbability, SegmentationScore, load_inception, load_segmenter
from ovbench.evaluation.protocol import Batch, Prediction
from ovbench.formats import dataset
from ovbench.formats.masks import check_rle, decode
from ovbench.formats.reader import AmodalSplit
from ovbench.hub import is_hub_spec, resolve_data, resolve_pool


def file_sha256(path: Path) -> str:
    return dataset.sha256(Path(path))


class OutsidePredictions:
    """Predictions made elsewhere, in the documented folder format, behind the model protocol."""

    name = "predictions"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        path = self.folder / "predictions.json"
        if not path.is_file():
            raise InputError(f"no predictions.json in {self.folder}")
        try:
            records = json.loads(path.read_text())
            ids = [int(r["annotation_id"]) for r in records]
            self.masks = dict(zip(ids, (r["segmentation"] for r in records)))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise InputError(f"{path}: not a list of {{annotation_id, segmentation}} records ({exc})") from None
        if len(self.masks) < len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"{path} predicts annotation {twice} more than once")

    def check(self, split: AmodalSplit) -> None:
        """Before any work (as pycocotools' loadRes): one prediction for every annotated object of
        the split and none for objects it does not have, each a binary RLE covering its image, and
        appearance files for all objects or for none."""
        annotation_ids = [int(a["id"]) for a in split.items]
        missing = [a for a in annotation_ids if a not in self.masks]
        if missing:
            raise InputError(f"predictions.json has no prediction for annotation {missing[0]}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        unknown = sorted(set(self.masks) - set(annotation_ids))
        if unknown:
            raise InputError(f"predictions.json predicts annotation {unknown[0]}, which this split does "
                             f"not have ({len(unknown)} such): predictions made for another split?")
        for ann in split.items:
            image = split.images[ann["image_id"]]
            check_rle(self.masks[int(ann["id"])], (image["height"], image["width"]),
                      f"the prediction for annotation {ann['id']}")
        painted = [a for a in annotation_ids if (self.folder / "appearance" / f"{a}.png").is_file()]
        if painted and len(painted) < len(annotation_ids):
            first = next(a for a in annotation_ids if a not in set(painted))
            raise InputError(f"{self.folder / 'appearance'} has {len(painted)} of {len(annotation_ids)} "
                             f"appearance files (none for annotation {first}): give all of them or none")
        for ann in split.items if painted else []:
            image, png = split.images[ann["image_id"]], self.folder / "appearance" / f"{ann['id']}.png"
            try:
                with Image.open(png) as picture:  # the header only: size and colour mode
                    size, mode = picture.size, picture.mode
            except (OSError, SyntaxError, ValueError) as exc:
                raise InputError(f"{png} is not a readable image ({exc})") from None
            if size != (image["width"], image["height"]) or mode not in ("RGB", "RGBA"):
                raise InputError(f"{png} is {size[0]}×{size[1]} {mode}; the image is "
                                 f"{image['width']}×{image['height']}: give RGB of the image's size")

    def predict(self, batch: Batch) -> Prediction:
        masks, appearances = [], []
        height, width = batch.image.shape[-2:]
        annotation_ids = batch.annotation_ids.tolist()
        for ann_id in annotation_ids:
            mask = decode(self.masks[ann_id])
            if mask.shape != (height, width):
                raise InputError(f"prediction for annotation {ann_id} is {mask.shape[1]}×{mask.shape[0]}, "
                                f"the image is {width}×{height}")
            masks.append(torch.from_numpy(mask).float())
            png = self.folder / "appearance" / f"{ann_id}.png"
            if png.is_file():
                rgb = dataset.read_png(png)[..., :3]
                appearances.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255)
        appearance = torch.stack(appearances) if len(appearances) == len(annotation_ids) else None
        return Prediction(torch.stack(masks)[:, None], appearance)


def _hardware(device: str) -> dict:
    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _versions() -> dict:
    import torchvision

    return {"ovbench": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__}


OPTION_TAGS = {"iterations": "it"}   # short tags in result file names: seganv-it2


def default_output(benchmark: str, model: str, options: dict | None, checkpoint_sha: str | None,
                   folder: Path = Path("leaderboards")) -> Path:
    tags = [f"{OPTION_TAGS.get(k, k + '-')}{v}" for k, v in sorted((options or {}).items())]
    parts = [model] + tags + ([checkpoint_sha[:8]] if checkpoint_sha else [])
    return folder / benchmark / ("-".join(parts) + ".json")


def _clean(value):
    """JSON-safe: NaN becomes None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class DatasetEvaluator:
    """detectron2's protocol: `reset`, then `process` every batch, then `evaluate` → metrics."""

    def reset(self) -> None: ...

    def process(self, items: dict, prediction: Prediction, device) -> None: ...

    def evaluate(self) -> dict: ...


class MaskEvaluator(DatasetEvaluator):
    def reset(self) -> None:
        self.metrics = MaskMetrics()

    def process(self, items, prediction, device) -> None:
        self.metrics.update(prediction.amodal_mask.to(device), items["amodal"].to(device),
                            items["visible"].to(device), items["occlude_rate"])

    def evaluate(self) -> dict:
        return {"mask": self.metrics.compute()}


class AppearanceEvaluator(DatasetEvaluator):
    """L1/L2/SSIM/PSNR inside the hidden part (where the data has the appearance behind the
    occluders), plus ICP and the segmentation score where their networks are there; unavailable
    (with the reason) for a model that does not paint."""

    def __init__(self, model_name: str, icp_model, icp_reason: str, ss_model, ss_reason: str,
                 has_truth: bool = True):
        self.model_name, self.icp_model, self.ss_model = model_name, icp_model, ss_model
        self.icp_reason, self.ss_reason = icp_reason, ss_reason
        self.has_truth = has_truth

    def reset(self) -> None:
        self.painted = True
        self.metrics = AppearanceMetrics()
        self.icp = InceptionCarProbability(self.icp_model) if self.icp_model is not None else None
        self.ss = SegmentationScore(self.ss_model) if self.ss_model is not None else None

    def process(self, items, prediction, device) -> None:
        if prediction.appearance is None:
            self.painted = False
        if not self.painted:
            return
        appearance, amodal = prediction.appearance.to(device), items["amodal"].to(device)
        if self.has_truth:
            self.metrics.update(appearance, items["appearance"].to(device),
                                (amodal > 0.5) & (items["visible"].to(device) < 0.5))
        if self.icp:
            self.icp.update(appearance)
        if self.ss:
            self.ss.update(appearance, amodal)

    def evaluate(self) -> dict:
        if not self.painted:
            reason = {"unavailable": f"{self.model_name} paints no appearance"}
            return {"appearance": reason, "icp": reason, "ss": reason}
        return {"appearance": self.metrics.compute() if self.has_truth else
                {"unavailable": "the dataset has no appearance ground truth (real photos)"},
                "icp": self.icp.compute() if self.icp else {"unavailable": self.icp_reason},
                "ss": self.ss.compute() if self.ss else {"unavailable": self.ss_reason}}


class LayeringEvaluator(DatasetEvaluator):
    """Depth layering per image, scored once every annotated object of the image is predicted."""

    def __init__(self, split: AmodalSplit):
        self.pairs = split.pairs
        self.objects_per_image: dict = {}
        for ann in split.items:
            self.objects_per_image[ann["image_id"]] = self.objects_per_image.get(ann["image_id"], 0) + 1

    def reset(self) -> None:
        self.remaining = dict(self.objects_per_image)
        self.pending: dict = {}   # image id → {annotation id: (visible, predicted invisible)}
        self.scores: list = []

    def process(self, items, prediction, device) -> None:
        visible = items["visible"]
        hidden = ((prediction.amodal_mask.cpu() >= 0.5) & (visible < 0.5))[:, 0].numpy()
        seen = (visible > 0.5)[:, 0].numpy()
        for k, (ann_id, image_id) in enumerate(zip(items["annotation_id"].tolist(), items["image_id"].tolist())):
            if image_id in self.pairs:
                self.pending.setdefault(image_id, {})[ann_id] = (seen[k], hidden[k])
            self.remaining[image_id] -= 1
            if self.remaining[image_id] == 0 and image_id in self.pending:
                objects = self.pending.pop(image_id)
                score = depth_layering(self.pairs[image_id], {a: v for a, (v, _) in objects.items()},
                                       {a: h for a, (_, h) in objects.items()})
                if score is not None:
                    self.scores.append(score)

    def evaluate(self) -> dict:
        return {"depth_layering": {"accuracy": float(np.mean(self.scores)), "images": len(self.scores)}
                if self.scores else {"unavailable": "no occlusion pairs between annotated objects in this split"}}


def inference_on_dataset(model, loader, evaluators: list[DatasetEvaluator], device: str, bar) -> dict:
    """detectron2's loop: every evaluator sees every batch's prediction; their results, merged."""
    for evaluator in evaluators:
        evaluator.reset()
    with torch.no_grad(), bar:
        for items in loader:
            batch = Batch(items["image"], items["visible"], items["box"],
                          annotation_ids=items["annotation_id"]).to(device)
            prediction = model.predict(batch)
            for evaluator in evaluators:
                evaluator.process(items, prediction, device)
            bar.update(len(items["annotation_id"]))
    return {key: value for evaluator in evaluators for key, value in evaluator.evaluate().items()}


def evaluate(model_name: str | None, data: Path | str, split: str = "test", checkpoint: Path | None = None,
             options: dict | None = None, batch_size: int = 16, device: str = "cpu",
             pool: Path | str | None = None, predictions: Path | None = None, icp_weights=None,
             ss_weights=None, progress: bool = True, holdout: float = 0.0, part: str = "all") -> dict:
    """Score a registered model (with its evaluation `options`) or outside `predictions` on a
    split, or on the `part` ("fit" / "validation") of it that `holdout` carves; the results record."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("`device` cuda asked for, but torch sees no CUDA device")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    started = time.perf_counter()
    source = str(data)
    data, pool = resolve_data(data, progress), resolve_pool(pool, progress)
    split_data = AmodalSplit(data, split, holdout=holdout, part=part, verify=True)
    checkpoint_info, model_config = None, {}
    pretrained = "none (not a learned model)"
    if predictions is not None:
        model = OutsidePredictions(predictions)
        model.check(split_data)
        model_name = "predictions"
        pretrained = "unknown (outside predictions)"
    else:
        from ovbench.baselines import create_model

        model = create_model(model_name, checkpoint, pool, device, options)
        model_name = model.name
        if getattr(model, "checkpoint_path", None):
            checkpoint_info = {"file": Path(model.checkpoint_path).name,
                               "sha256": file_sha256(model.checkpoint_path)}
        model_config = getattr(model, "config", {}) or {}
        pretrained = getattr(model, "pretrained_note", pretrained)

    icp_model, icp_reason = load_inception(icp_weights, device)
    ss_model, ss_reason = load_segmenter(ss_weights, device)
    evaluators = [MaskEvaluator(),
                  AppearanceEvaluator(model_name, icp_model, icp_reason, ss_model, ss_reason,
                                      split_data.has_appearance),
                  LayeringEvaluator(split_data)]
    loader = torch.utils.data.DataLoader(split_data, batch_size=batch_size, shuffle=False)
    metrics = inference_on_dataset(model, loader, evaluators, device,
                                   tqdm(total=len(split_data), unit="obj", desc=f"evaluate {model_name}",
                                        disable=not progress))
    manifest_sha = file_sha256(Path(data) / dataset.MANIFEST)
    return _clean({
        "benchmark": split_data.manifest["name"], "model": model_name,
        "dataset": {"name": split_data.manifest["name"], "kind": split_data.manifest["kind"],
                    "split": split_data.name, "instances": len(split_data), "manifest_sha256": manifest_sha,
                    "source": source if is_hub_spec(source) else "folder"},
        "checkpoint": checkpoint_info,
        "pretrained": pretrained,
        "config": {"batch_size": batch_size, "options": options or {}, "device": device,
                   "pool": Path(pool).name if pool else None, "model": model_config},
        "metrics": metrics, "versions": _versions(), "hardware": _hardware(device),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
