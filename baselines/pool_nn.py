"""`pool-nn`: the silhouette from the 3D pool, scaled and flipped, that best explains the
visible mask, united with it. Needs `--pool FILE.h5` (`ovbench generate pool`).

For each instance a few candidate full boxes are tried around the visible box (wider to either
side, taller upward, as occluders hide ends and bottoms); in each, the visible mask and every pool
silhouette (cropped to its box, plus its mirror image) are compared at 48×48 by IoU; the best
(box, silhouette) is pasted at the box's size and united with the visible mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ovbench.errors import InputError
from ovbench.evaluation.protocol import Batch, Prediction

from .registry import Reference, register

GRID = 48
WIDER = (1.0, 1.25, 1.5)
TALLER = (1.0, 1.2)
MAX_SILHOUETTES = 4000


def _resize(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(mask[None, None].float(), size=(height, width), mode="bilinear",
                         align_corners=False)[0, 0]


@register("pool-nn", "pool-nearest")
class PoolNearestReference(Reference):
    """Non-learned reference: best-matching pool silhouette fitted to the visible mask."""

    def __init__(self, pool: str | Path | None = None, device: str = "cpu", seed: int = 0):
        super().__init__(pool, device)
        from ovbench.formats.poolfile import SilhouettePool

        if pool is None:
            raise InputError("pool-nn needs a silhouette pool: pass --pool FILE.h5 "
                            "(make one with `ovbench generate pool`)")
        with SilhouettePool(Path(pool), in_memory=True) as silhouettes:
            count = len(silhouettes)
            chosen = np.sort(np.random.default_rng(seed).choice(
                count, min(count, MAX_SILHOUETTES), replace=False))
            crops = []
            for i in chosen:
                x, y, w, h = silhouettes.bbox[i]
                crop = torch.from_numpy(silhouettes[int(i)][y:y + h, x:x + w])
                crops.append(_resize(crop, GRID, GRID))
        self.crops = torch.stack(crops)                              # (N, G, G) float
        both = torch.cat([self.crops, self.crops.flip(-1)])           # mirror images too
        self.library = (both >= 0.5).float().reshape(len(both), -1)  # (2N, G·G)
        self.library_area = self.library.sum(dim=1)

    @staticmethod
    def _frames(box):
        x, y, w, h = (float(v) for v in box)
        for wide in WIDER:
            for anchor in ((0.0,) if wide == 1.0 else (0.0, 0.5, 1.0)):  # grow right, both, left
                for tall in TALLER:
                    fw, fh = w * wide, h * tall
                    fx = x - (fw - w) * anchor
                    yield int(round(fx)), int(round(y - (fh - h))), max(1, round(fw)), max(1, round(fh))

    def _fit(self, visible: torch.Tensor, box) -> torch.Tensor:
        height, width = visible.shape
        best = (-1.0, None, None)
        for frame in self._frames(box):
            fx, fy, fw, fh = frame
            padded = torch.zeros(fh, fw)
            x0, y0, x1, y1 = max(fx, 0), max(fy, 0), min(fx + fw, width), min(fy + fh, height)
            if x1 > x0 and y1 > y0:
                padded[y0 - fy:y1 - fy, x0 - fx:x1 - fx] = visible[y0:y1, x0:x1]
            target = (_resize(padded, GRID, GRID) >= 0.5).float().reshape(-1)
            inter = self.library @ target
            iou = inter / (self.library_area + target.sum() - inter).clamp(min=1)
            score, index = iou.max(dim=0)
            if float(score) > best[0]:
                best = (float(score), frame, int(index))
        _, (fx, fy, fw, fh), index = best
        n = len(self.crops)
        silhouette = self.crops[index % n].flip(-1) if index >= n else self.crops[index]
        placed = torch.zeros(height, width)
        pasted = _resize(silhouette, fh, fw) >= 0.5
        x0, y0, x1, y1 = max(fx, 0), max(fy, 0), min(fx + fw, width), min(fy + fh, height)
        if x1 > x0 and y1 > y0:
            placed[y0:y1, x0:x1] = pasted[y0 - fy:y1 - fy, x0 - fx:x1 - fx].float()
        return torch.maximum(placed, visible)

    def predict(self, batch: Batch) -> Prediction:
        visible = (batch.visible_mask[:, 0] > 0.5).float().cpu()
        masks = [self._fit(v, b) if v.any() else v for v, b in zip(visible, batch.box.cpu())]
        return Prediction(torch.stack(masks)[:, None].to(batch.visible_mask.device), batch.image)
