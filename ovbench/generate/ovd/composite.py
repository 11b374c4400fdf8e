"""Pasting occluder cut-outs over a whole vehicle: placement toward a target occlusion, feathered
pasting, and the exact masks that follow. Plain functions on arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from ovbench.formats.masks import box_slices

FEATHER_PX = 2.0  # edges soften over at most this many pixels, inward only
CANDIDATES = 12   # placements tried per occluder
# Typical heights (m) of things that stand on the ground, occluders and base vehicles alike: a
# ground-standing cut-out from a photo is sized by its ratio to the base vehicle's.
STANDING_HEIGHT_M = {"person": 1.7, "pedestrian": 1.7, "rider": 1.75, "cyclist": 1.75,
                     "bicycle": 1.05, "motorcycle": 1.2, "car": 1.5, "van": 2.0, "truck": 3.2,
                     "bus": 3.2, "tram": 3.4, "train": 3.8, "pole": 4.0, "bin": 1.0,
                     "trash can": 1.0, "barrier": 1.0, "fire hydrant": 0.8, "parking meter": 1.3,
                     "bench": 0.85}
SIZE_JITTER = (0.9, 1.15)      # × the height ratio: a little nearer or farther than the vehicle
GROUND_JITTER = (-0.03, 0.12)  # × vehicle height below its ground line: occluders stand in front


@dataclass(frozen=True)
class Cutout:
    """An occluder cut-out: RGBA uint8 cropped to the object (alpha ≥ 128 is the object)."""

    rgba: np.ndarray
    category: str
    source: str
    origin: str = ""      # the instance it was cut from, named as bases' model_id (coco-<id>)

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


def standing_ratio(cutout: Cutout, base_category: str) -> float | None:
    """Height of a ground-standing photo cut-out relative to the base vehicle, or None for cut-outs
    placed freely (built-in renders, OVD-style; things that do not stand; bases of unknown height)."""
    if cutout.source == "builtin" or base_category not in STANDING_HEIGHT_M:
        return None
    height = STANDING_HEIGHT_M.get(cutout.category)
    return None if height is None else height / STANDING_HEIGHT_M[base_category]


def _unused(bank: list[Cutout], used: set[int], base_origin: str) -> list[int]:
    """Bank indices not yet in this image (nor cut from the base itself); the whole bank once
    none is left."""
    fresh = [i for i, c in enumerate(bank) if i not in used and c.origin != base_origin]
    return fresh or list(range(len(bank)))


def _propose(cutout: Cutout, box: tuple, base_category: str, rng,
             relative_height: tuple) -> tuple[float, int, int]:
    """(scale, x, y) of one candidate: ground-standing cut-outs stand on the vehicle's ground line
    (its amodal box bottom) at their real height ratio; others anywhere over the vehicle."""
    top, bottom, left, right = box
    vehicle_height = bottom - top + 1
    ratio = standing_ratio(cutout, base_category)
    relative = rng.uniform(*relative_height) if ratio is None else ratio * rng.uniform(*SIZE_JITTER)
    scale = relative * vehicle_height / cutout.height
    w, h = _scaled_size(cutout, scale)
    # The occluder's centre falls on the vehicle's box, so the two overlap.
    x = int(round(rng.uniform(left, right + 1) - w / 2))
    if ratio is None:
        y = int(round(rng.uniform(top, bottom + 1) - h / 2 + rng.uniform(0, 0.5) * h))
    else:  # feet on the ground line, a little in front of the vehicle
        y = int(round(bottom + rng.uniform(*GROUND_JITTER) * vehicle_height - h + 1))
    return scale, x, y


def plan_occlusion(amodal: np.ndarray, bank: list[Cutout], count: int, target: float,
                   min_visible: int, rng: np.random.Generator, base_category: str = "",
                   base_origin: str = "", relative_height=(0.5, 1.5)) -> list[Placement]:
    """Place `count` occluders one by one (later ones in front), each the best of random
    candidates (a cut-out not yet used here, a scale, a position overlapping the vehicle) for
    bringing the occluded share of the vehicle toward `target`."""
    frame = amodal.shape[0]
    area = int(amodal.sum())
    ys, xs = np.nonzero(amodal)
    box = (ys.min(), ys.max(), xs.min(), xs.max())
    covered = np.zeros_like(amodal)
    placements: list[Placement] = []
    used: set[int] = set()
    for j in range(1, count + 1):
        goal = target * j / count
        hidden_before = int((amodal & covered).sum())
        best, best_error = None, np.inf
        choices = _unused(bank, used, base_origin)
        for _ in range(CANDIDATES):
            index = choices[int(rng.integers(len(choices)))]
            scale, x, y = _propose(bank[index], box, base_category, rng, relative_height)
            preview = scaled_mask(bank[index], scale)
            window = _window(x, y, *preview.shape, frame)
            newly = 0
            if window is not None:
                inside, patch = window
                newly = int((amodal[inside] & ~covered[inside] & preview[patch]).sum())
            hidden = hidden_before + newly
            if area - hidden < min_visible:
                continue
            error = abs(hidden / area - goal)
            if error < best_error:
                best, best_error = (index, x, y, scale), error
        if best is None:
            continue
        index, x, y, scale = best
        mask, rgb = place(scaled(bank[index], scale), x, y, frame)
        if area - int((amodal & (covered | mask)).sum()) < min_visible:
            continue  # the exact resize hid a few more pixels than the preview: drop it
        placements.append(Placement(bank[index], x, y, float(scale), mask, rgb))
        covered |= mask
        used.add(index)
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
