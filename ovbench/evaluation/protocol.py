"""The one interface between the evaluator (and trainer) and every model of the zoo.

    class AmodalModel(Protocol):
        name: str
        def predict(self, batch: Batch) -> Prediction: ...

A model sees the input image, the visible mask of one instance and its visible box; it returns the
instance's amodal mask as probabilities and, if it paints, the de-occluded appearance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, runtime_checkable

import torch


@dataclass
class Batch:
    image: torch.Tensor                # (B, 3, H, W) float in [0, 1]
    visible_mask: torch.Tensor         # (B, 1, H, W) float 0/1
    box: torch.Tensor                  # (B, 4) visible box x, y, w, h in pixels
    pool: Optional[Callable] = None    # pool sampler: rng → (H, W) bool silhouette (seganv)
    annotation_ids: Optional[torch.Tensor] = None  # (B,) the instances' ids (outside predictions read them)

    def to(self, device) -> "Batch":
        return Batch(self.image.to(device), self.visible_mask.to(device), self.box.to(device), self.pool,
                     self.annotation_ids)


@dataclass
class Prediction:
    amodal_mask: torch.Tensor                  # (B, 1, H, W) probabilities in [0, 1]
    appearance: Optional[torch.Tensor] = None  # (B, 3, H, W) in [0, 1], or None


@runtime_checkable
class AmodalModel(Protocol):
    name: str

    def predict(self, batch: Batch) -> Prediction: ...
