"""Pasting occluder cut-outs over a whole vehicle: placement toward a target occlusion, feathered
pasting, and the exact masks that follow. Plain functions on arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from ovbench.masks import box_slices

FEATHER_PX = 2.0  # edges soften over at most this many pixels, inward only
CANDIDATES = 12   # placements tried per occluder


@dataclass(frozen=True)
class Cutout:
    """An occluder cut-out: RGBA uint8 cropped to the object (alpha ≥ 128 is the object)."""

    rgba: np.ndarray
    category: str
    source: str

    @property
    def height(self) -> int:
        return self.rgba.shape[0]


@dataclass
class Placement:
    """Where one occluder went: its hard mask in the frame and its pixels there."""

    cutout: Cutout
    x: int
    y: int
    scale: float
    mask: np.ndarray      # bool, frame-sized
    rgb: np.ndarray       # uint8 frame-sized (valid under mask)


def scaled(cutout: Cutout, scale: float) -> np.ndarray:
    h, w = cutout.rgba.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(cutout.rgba).resize(size, Image.BILINEAR))


def place(rgba: np.ndarray, x: int, y: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame-sized (hard mask, RGB) of an RGBA patch whose top-left corner goes to (x, y);
    the patch may leave the frame."""
    mask = np.zeros((frame, frame), bool)
    rgb = np.zeros((frame, frame, 3), np.uint8)
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame), min(y + h, frame)
    if x1 > x0 and y1 > y0:
        patch = rgba[y0 - y:y1 - y, x0 - x:x1 - x]
        mask[y0:y1, x0:x1] = patch[..., 3] >= 128
        rgb[y0:y1, x0:x1] = patch[..., :3]
    return mask, rgb


def plan_occlusion(amodal: np.ndarray, bank: list[Cutout], count: int, target: float,
                   min_visible: int, rng: np.random.Generator,
                   relative_height=(0.5, 1.5)) -> list[Placement]:
    """Place `count` occluders one by one (later ones in front), each the best of random
    candidates (a cut-out from the bank, a scale, a position overlapping the vehicle) for
    bringing the occluded share of the vehicle toward `target`."""
    frame = amodal.shape[0]
    area = int(amodal.sum())
    ys, xs = np.nonzero(amodal)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    vehicle_height = bottom - top + 1
    covered = np.zeros_like(amodal)
    placements: list[Placement] = []
    for j in range(1, count + 1):
        goal = target * j / count
        best, best_error = None, np.inf
        for _ in range(CANDIDATES):
            cutout = bank[int(rng.integers(len(bank)))]
            scale = rng.uniform(*relative_height) * vehicle_height / cutout.height
            rgba = scaled(cutout, scale)
            h, w = rgba.shape[:2]
            # The occluder's centre falls on the vehicle's box, so the two overlap.
            cx, cy = rng.uniform(left, right + 1), rng.uniform(top, bottom + 1)
            x, y = int(round(cx - w / 2)), int(round(cy - h / 2 + rng.uniform(0, 0.5) * h))
            mask, rgb = place(rgba, x, y, frame)
            hidden = int((amodal & (covered | mask)).sum())
            if area - hidden < min_visible:
                continue
            error = abs(hidden / area - goal)
            if error < best_error:
                best, best_error = Placement(cutout, x, y, float(scale), mask, rgb), error
        if best is not None:
            placements.append(best)
            covered |= best.mask
    return placements


def feathered_alpha(mask: np.ndarray) -> np.ndarray:
    """Alpha in [0, 1] that rises over FEATHER_PX pixels inside the hard mask and is 0 outside,
    so pixels outside the mask keep the base image exactly."""
    return np.clip(distance_transform_edt(mask) / FEATHER_PX, 0.0, 1.0).astype(np.float32)


def composite(base: np.ndarray, placements: list[Placement]) -> np.ndarray:
    """Paint the placements over the base image in order (later in front)."""
    out = base.copy()
    for p in placements:
        if not p.mask.any():
            continue
        window = box_slices(p.mask, margin=1)
        alpha = feathered_alpha(p.mask[window])[..., None]
        blended = out[window] * (1 - alpha) + p.rgb[window].astype(np.float32) * alpha
        out[window] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out
