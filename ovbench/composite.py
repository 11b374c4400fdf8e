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


def _scaled_size(cutout: Cutout, scale: float) -> tuple[int, int]:
    h, w = cutout.rgba.shape[:2]
    return max(1, round(w * scale)), max(1, round(h * scale))


def scaled(cutout: Cutout, scale: float) -> np.ndarray:
    """The cut-out resized (bilinear RGBA): what is pasted."""
    return np.asarray(Image.fromarray(cutout.rgba).resize(_scaled_size(cutout, scale), Image.BILINEAR))


def scaled_mask(cutout: Cutout, scale: float) -> np.ndarray:
    """A cheap nearest-neighbour preview of the scaled cut-out's mask, for trying placements."""
    w, h = _scaled_size(cutout, scale)
    rows = np.minimum(((np.arange(h) + 0.5) * cutout.rgba.shape[0] / h).astype(int), cutout.rgba.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * cutout.rgba.shape[1] / w).astype(int), cutout.rgba.shape[1] - 1)
    return cutout.rgba[rows[:, None], cols[None, :], 3] >= 128


def _window(x: int, y: int, h: int, w: int, frame: int):
    """Frame and patch slices where a patch with top-left (x, y) lands; None if it misses."""
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame), min(y + h, frame)
    if x1 <= x0 or y1 <= y0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))


def place(rgba: np.ndarray, x: int, y: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame-sized (hard mask, RGB) of an RGBA patch whose top-left corner goes to (x, y);
    the patch may leave the frame."""
    mask = np.zeros((frame, frame), bool)
    rgb = np.zeros((frame, frame, 3), np.uint8)
    window = _window(x, y, *rgba.shape[:2], frame)
    if window is not None:
        inside, patch = window
        mask[inside] = rgba[patch][..., 3] >= 128
        rgb[inside] = rgba[patch][..., :3]
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
        hidden_before = int((amodal & covered).sum())
        best, best_error = None, np.inf
        for _ in range(CANDIDATES):
            cutout = bank[int(rng.integers(len(bank)))]
            scale = rng.uniform(*relative_height) * vehicle_height / cutout.height
            preview = scaled_mask(cutout, scale)
            h, w = preview.shape
            # The occluder's centre falls on the vehicle's box, so the two overlap.
            cx, cy = rng.uniform(left, right + 1), rng.uniform(top, bottom + 1)
            x, y = int(round(cx - w / 2)), int(round(cy - h / 2 + rng.uniform(0, 0.5) * h))
            window = _window(x, y, h, w, frame)
            newly = 0
            if window is not None:
                inside, patch = window
                newly = int((amodal[inside] & ~covered[inside] & preview[patch]).sum())
            hidden = hidden_before + newly
            if area - hidden < min_visible:
                continue
            error = abs(hidden / area - goal)
            if error < best_error:
                best, best_error = (cutout, x, y, scale), error
        if best is None:
            continue
        cutout, x, y, scale = best
        mask, rgb = place(scaled(cutout, scale), x, y, frame)
        if area - int((amodal & (covered | mask)).sum()) < min_visible:
            continue  # the exact resize hid a few more pixels than the preview: drop it
        placements.append(Placement(cutout, x, y, float(scale), mask, rgb))
        covered |= mask
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
