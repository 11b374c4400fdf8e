"""`convex-hull`: the convex hull of the visible mask as the amodal prediction, the input image
as the appearance. Vehicles are close to convex seen from the side, so the hull bridges thin
occluders (poles, people) for free."""

import numpy as np
import torch
from skimage.morphology import convex_hull_image

from ovbench.evaluation.protocol import Batch, Prediction

from .registry import Reference, register


@register("convex-hull", "hull")
class ConvexHullReference(Reference):
    """Non-learned reference: convex hull of the visible mask."""

    def predict(self, batch: Batch) -> Prediction:
        masks = batch.visible_mask[:, 0].detach().cpu().numpy() > 0.5
        hulls = np.stack([convex_hull_image(m) if m.any() else m for m in masks])
        hull = torch.from_numpy(hulls)[:, None].float().to(batch.visible_mask.device)
        return Prediction(hull, batch.image)
