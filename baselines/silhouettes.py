"""Pool silhouettes as the object discriminator's second kind of real mask (Yan et al. §3.1),
sampled and placed on the training device, a whole batch at once.

The bank holds each usable pool silhouette cropped to its box and resized to side×side (uint8),
with its true aspect ratio. Placing one on a target box keeps that ratio: it is fitted inside the
box, centred horizontally and standing on the box's bottom edge (the vehicle's ground line), so
that neither location nor a stretched outline tells it apart from the ground truth. Views from
high above (elevation > `max_elevation`) are left out when the pool has lower ones: OVD-style
cameras sit a few degrees above the horizon, and a roof seen from 40° is not a street view.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

CHUNK = 1024


class SilhouetteBank:
    def __init__(self, crops: torch.Tensor, aspects: torch.Tensor):
        """crops: (N, 1, S, S) uint8 0/1, each silhouette's box resized to S²; aspects: (N,) w / h."""
        self.crops, self.aspects = crops, aspects.float()

    @classmethod
    def from_pool(cls, pool, side: int, max_elevation: float | None) -> "SilhouetteBank":
        chosen = np.arange(len(pool))
        if max_elevation is not None:
            low = chosen[pool.elevation <= max_elevation]
            chosen = low if len(low) else chosen
        crops = []
        for start in range(0, len(chosen), CHUNK):
            part = chosen[start:start + CHUNK]
            masks = torch.from_numpy(np.stack([pool[int(i)] for i in part]))[:, None].float()
            x, y, w, h = torch.from_numpy(pool.bbox[part].astype(np.float32)).unbind(1)
            boxes = torch.stack([torch.arange(len(part), dtype=torch.float32), x, y, x + w, y + h], 1)
            crops.append((roi_align(masks, boxes, (side, side), 1.0, sampling_ratio=2, aligned=True)
                          >= 0.5).to(torch.uint8))
        bbox = pool.bbox[chosen].astype(np.float32)
        return cls(torch.cat(crops), torch.from_numpy(bbox[:, 2] / np.maximum(bbox[:, 3], 1)))

    def __len__(self) -> int:
        return len(self.crops)

    def to(self, device) -> "SilhouetteBank":
        return SilhouetteBank(self.crops.to(device), self.aspects.to(device))

    def sample(self, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random silhouette per target mask (B, 1, H, W), placed on its box; empty targets
        get an empty mask."""
        index = torch.randint(len(self), (len(targets),), generator=generator).to(self.crops.device)
        return place(self.crops[index], self.aspects[index], mask_boxes(targets), targets.shape[-1])


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(B, 4) x, y, w, h of each (B, 1, H, W) mask's pixels ≥ 0.5; all zeros for an empty mask."""
    binary = masks[:, 0] >= 0.5
    rows, cols = binary.any(dim=2), binary.any(dim=1)

    def span(line):
        first = line.float().argmax(dim=1)
        last = line.shape[1] - 1 - line.flip(1).float().argmax(dim=1)
        return first, (last - first + 1) * line.any(dim=1)

    x, w = span(cols)
    y, h = span(rows)
    return torch.stack([x, y, w, h], 1).float()


def place(crops: torch.Tensor, aspects: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each crop (B, 1, S, S) with aspect w/h fitted inside its box (x, y, w, h), centred
    horizontally, bottom on the box's bottom; (B, 1, size, size) float 0/1."""
    x, y, w, h = boxes.unbind(1)
    empty = (w < 1) | (h < 1)
    w, h = w.clamp(min=1), h.clamp(min=1)
    fit_w = torch.minimum(w, h * aspects)
    fit_h = fit_w / aspects
    centre_x, centre_y = x + w / 2, y + h - fit_h / 2
    theta = torch.zeros(len(crops), 2, 3, device=crops.device)
    theta[:, 0, 0] = size / fit_w
    theta[:, 0, 2] = (size - 2 * centre_x) / fit_w
    theta[:, 1, 1] = size / fit_h
    theta[:, 1, 2] = (size - 2 * centre_y) / fit_h
    grid = F.affine_grid(theta, [len(crops), 1, size, size], align_corners=False)
    placed = F.grid_sample(crops.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (placed >= 0.5).float() * (~empty).float().view(-1, 1, 1, 1)
