"""Appearance scores that need pretrained networks: ICP and SS ("Visualizing the Invisible").

- ICP, Inception conditional probability: torchvision Inception-v3 with ImageNet weights, softmax
  on the recovered image resized to 299, summed over ImageNet's car classes, averaged per instance.
- SS, segmentation score: a torchvision DeepLabv3-ResNet50 (VOC labels) run on the recovered
  image; FCN-score-style class accuracy |predicted vehicle ∩ amodal GT| / |amodal GT| with vehicle
  = car or bus, averaged per instance; pixel accuracy of the vehicle/not-vehicle map is logged too.

Weights come from a local file (`--icp-weights`, `--ss-weights`) or the torch hub cache; nothing is
downloaded. Without them the result says "unavailable" with the reason, never a number.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F

from ovbench.errors import InputError
from ovbench.evaluation.metrics import Metric

# ImageNet classes of cars (BASELINES.md §6).
CAR_CLASSES = (407, 436, 468, 511, 609, 627, 654, 656, 661, 675, 717, 734, 751, 817, 864)
VOC_VEHICLES = (6, 7)  # bus, car
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
DEEPLAB_FILE = "deeplabv3_resnet50_coco-cd0a2569.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _weights_file(given: str | Path | None, cached_name: str, flag: str) -> tuple[Path | None, str]:
    if given:
        if not Path(given).is_file():
            raise InputError(f"`{flag}` file not found: {given}")
        return Path(given), ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / cached_name
    if cached.is_file():
        return cached, ""
    return None, f"no weights: pass --{flag.replace('_', '-')} PATH or place {cached_name} in {cached.parent}"


def _load_weights(model: torch.nn.Module, path: Path, flag: str) -> torch.nn.Module:
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise InputError(f"`{flag}` {path} is not the expected weights file ({str(exc).splitlines()[0]})") from None
    return model.eval()


def _normalise(images: torch.Tensor, size: int) -> torch.Tensor:
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
    return (images - mean) / std


def load_inception(weights: str | Path | None, device="cpu"):
    """(model, "") or (None, reason)."""
    from torchvision.models import inception_v3

    path, reason = _weights_file(weights, INCEPTION_FILE, "icp_weights")
    if path is None:
        return None, reason
    model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    return _load_weights(model, path, "icp_weights").to(device), ""


def load_segmenter(weights: str | Path | None, device="cpu"):
    from torchvision.models.segmentation import deeplabv3_resnet50

    path, reason = _weights_file(weights, DEEPLAB_FILE, "ss_weights")
    if path is None:
        return None, reason
    model = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    return _load_weights(model, path, "ss_weights").to(device), ""


class InceptionCarProbability(Metric):
    higher_is_better = {"icp": True}

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> None:
        self._states_on(images.device)
        logits = self.model(_normalise(images, 299))
        if isinstance(logits, tuple):  # aux logits in train mode
            logits = logits[0]
        probability = logits.softmax(dim=1)[:, list(CAR_CLASSES)].sum(dim=1)
        self.total += probability.double().sum()
        self.count += len(images)

    def compute(self) -> dict:
        count = int(self.count)
        return {"icp": float(self.total) / count if count else float("nan"), "instances": count}


class SegmentationScore(Metric):
    higher_is_better = {"ss": True, "pixel_accuracy": True}

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.add_state("accuracy", torch.zeros((), dtype=torch.float64))
        self.add_state("pixel_accuracy", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, images: torch.Tensor, amodal: torch.Tensor) -> None:
        self._states_on(images.device)
        size = images.shape[-1]
        logits = self.model(_normalise(images, size))["out"]
        vehicle = torch.zeros_like(logits[:, 0], dtype=torch.bool)
        labels = logits.argmax(dim=1)
        for cls in VOC_VEHICLES:
            vehicle |= labels == cls
        truth = amodal[:, 0] > 0.5
        hits = (vehicle & truth).sum(dim=(1, 2)).float()
        area = truth.sum(dim=(1, 2)).float().clamp(min=1)
        self.accuracy += (hits / area).double().sum()
        self.pixel_accuracy += (vehicle == truth).float().mean(dim=(1, 2)).double().sum()
        self.count += len(images)

    def compute(self) -> dict:
        count = int(self.count)
        if not count:
            return {"ss": float("nan"), "pixel_accuracy": float("nan"), "instances": 0}
        return {"ss": float(self.accuracy) / count, "pixel_accuracy": float(self.pixel_accuracy) / count,
                "instances": count}
