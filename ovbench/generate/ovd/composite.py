"""Pasting occluder cut-outs over a whole vehicle: placement toward a target occlusion, feathered
pasting with contact shadows, and the exact masks that follow. Plain functions on arrays."""

from __future__ import annotations

import functools
import math
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
SHADOW_DARKEN = 0.45           # a contact shadow's centre keeps 55% of the ground's light
SHADOW_SPREAD = 1.3            # its half-width × the half-width of the occluder's feet
SHADOW_FLATTEN = 0.3           # its half-height × its half-width: the ground is seen at a glancing angle


@dataclass(frozen=True)
class Cutout:
    """An occluder cut-out: RGBA uint8 cropped to the object (alpha ≥ 128 is the object)."""

    rgba: np.ndarray
    category: str
    source: str
    origin: str = ""      # the instance it was cut from, named as bases' model_id (coco-<id>)
    height_m: float | None = None  # how tall the object stands, where known (built-in renders)

    @property
    def height(self) -> int:
        return self.rgba.shape[0]

    @functools.cached_property
    def solid(self) -> np.ndarray:
        """The hard mask (alpha ≥ 128), computed once: placement tries many scales of it."""
        return self.rgba[..., 3] >= 128


@dataclass(frozen=True)
class Ground:
    """The ground plane (z = 0, metres) as a rendered base's camera saw it, so that a pasted thing
    standing on it gets the vehicle's scale: pose is camera-to-world (OpenGL, looking down -Z)."""

    pose: np.ndarray
    yfov: float
    size: int

    def standing_height(self, column: float, row: float, height_m: float) -> float | None:
        """Pixel height of an upright thing `height_m` tall whose foot is at pixel (column, row);
        None for a row at or above the horizon, where no ground is seen."""
        focal = self.size / 2 / math.tan(self.yfov / 2)
        ray = self.pose[:3, :3] @ np.array([column + 0.5 - self.size / 2, self.size / 2 - row - 0.5, -focal])
        eye = self.pose[:3, 3]
        if ray[2] >= 0:
            return None
        top = eye + ray * (-eye[2] / ray[2]) + (0.0, 0.0, height_m)
        _, y, z = self.pose[:3, :3].T @ (top - eye)   # camera coordinates of the top
        return row + 0.5 - (self.size / 2 - focal * y / -z)


@dataclass
class Placement:
    """Where one occluder went: its hard mask in the frame and its pixels there."""

    cutout: Cutout
    x: int
    y: int
    scale: float
    mask: np.ndarray      # bool, frame-sized
    rgb: np.ndarray       # uint8 frame-sized (valid under mask)
    standing: bool = False  # on the ground line: it casts a contact shadow


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
    return cutout.solid[rows][:, cols]


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


def standing_height_m(cutout: Cutout) -> float | None:
    """How tall a ground-standing cut-out's object is (m): a render knows it, a photo cut-out's
    comes from its category; None for things that do not stand on the ground."""
    return cutout.height_m if cutout.height_m is not None else STANDING_HEIGHT_M.get(cutout.category)


def standing_ratio(cutout: Cutout, base_category: str) -> float | None:
    """Height of a ground-standing cut-out relative to a base vehicle of `base_category`, or None
    for cut-outs placed freely (things that do not stand; bases of unknown height)."""
    height = standing_height_m(cutout)
    if height is None or base_category not in STANDING_HEIGHT_M:
        return None
    return height / STANDING_HEIGHT_M[base_category]


def _unused(bank: list[Cutout], used: set[int], base_origin: str) -> list[int]:
    """Bank indices not yet in this image (nor cut from the base itself); the whole bank once
    none is left."""
    fresh = [i for i, c in enumerate(bank) if i not in used and c.origin != base_origin]
    return fresh or list(range(len(bank)))


def _propose(cutout: Cutout, box: tuple, base_category: str, rng, relative_height: tuple,
             ground: Ground | None) -> tuple[float, int, int, bool]:
    """(scale, x, y, standing) of one candidate: ground-standing cut-outs stand on the vehicle's
    ground line (its amodal box bottom) or a little in front of it, sized by the base's camera
    where it is known (rendered bases) and else by their real height ratio to the vehicle; others
    anywhere over the vehicle. The occluder's centre falls on the vehicle's box, so the two overlap."""
    top, bottom, left, right = box
    vehicle_height = bottom - top + 1
    centre = rng.uniform(left, right + 1)
    height_m = standing_height_m(cutout)
    ratio = standing_ratio(cutout, base_category)
    if height_m is not None:
        foot = bottom + rng.uniform(*GROUND_JITTER) * vehicle_height
        pixels = None if ground is None else ground.standing_height(centre, foot, height_m)
        if pixels is None and ratio is not None:
            pixels = ratio * rng.uniform(*SIZE_JITTER) * vehicle_height
        if pixels is not None:
            scale = pixels / cutout.height
            w, h = _scaled_size(cutout, scale)
            return scale, int(round(centre - w / 2)), int(round(foot)) - h + 1, True
    scale = rng.uniform(*relative_height) * vehicle_height / cutout.height
    w, h = _scaled_size(cutout, scale)
    y = int(round(rng.uniform(top, bottom + 1) - h / 2 + rng.uniform(0, 0.5) * h))
    return scale, int(round(centre - w / 2)), y, False


def plan_occlusion(amodal: np.ndarray, bank: list[Cutout], count: int, target: float,
                   min_visible: int, rng: np.random.Generator, base_category: str = "",
                   base_origin: str = "", relative_height=(0.5, 1.5),
                   ground: Ground | None = None) -> list[Placement]:
    """Place `count` occluders one by one (later ones in front), each the best of random
    candidates (a cut-out not yet used here, a scale, a position overlapping the vehicle) for
    bringing the occluded share of the vehicle toward `target`."""
    frame = amodal.shape[0]
    area = int(np.count_nonzero(amodal))
    rows, cols = np.flatnonzero(amodal.any(axis=1)), np.flatnonzero(amodal.any(axis=0))
    box = (rows[0], rows[-1], cols[0], cols[-1])
    free = amodal.copy()       # the vehicle's pixels no occluder covers yet
    hidden = 0
    placements: list[Placement] = []
    used: set[int] = set()
    for j in range(1, count + 1):
        goal = target * j / count
        best, best_error = None, np.inf
        choices = _unused(bank, used, base_origin)
        for _ in range(CANDIDATES):
            index = choices[int(rng.integers(len(choices)))]
            scale, x, y, standing = _propose(bank[index], box, base_category, rng, relative_height, ground)
            preview = scaled_mask(bank[index], scale)
            window = _window(x, y, *preview.shape, frame)
            newly = 0
            if window is not None:
                inside, patch = window
                newly = np.count_nonzero(free[inside] & preview[patch])
            if area - hidden - newly < min_visible:
                continue
            error = abs((hidden + newly) / area - goal)
            if error < best_error:
                best, best_error = (index, x, y, scale, standing), error
        if best is None:
            continue
        index, x, y, scale, standing = best
        mask, rgb = place(scaled(bank[index], scale), x, y, frame)
        newly = np.count_nonzero(free & mask)
        if area - hidden - newly < min_visible:
            continue  # the exact resize hid a few more pixels than the preview: drop it
        placements.append(Placement(bank[index], x, y, float(scale), mask, rgb, standing))
        free &= ~mask
        hidden += newly
        used.add(index)
    return placements


def feathered_alpha(mask: np.ndarray) -> np.ndarray:
    """Alpha in [0, 1] that rises over FEATHER_PX pixels inside the hard mask and is 0 outside,
    so pixels outside the mask keep the base image exactly."""
    return np.clip(distance_transform_edt(mask) / FEATHER_PX, 0.0, 1.0).astype(np.float32)


def contact_shadow(mask: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Where a standing occluder darkens the ground, and by how much (a factor ≤ 1 per pixel): a
    soft flat ellipse centred under its feet (the lowest tenth of its mask); None when its feet
    are below the frame."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0 or rows[-1] >= mask.shape[0] - 1:
        return None
    bottom, height = rows[-1], rows[-1] - rows[0] + 1
    feet = np.flatnonzero(mask[max(bottom - height // 10, rows[0]):bottom + 1].any(axis=0))
    half_width = SHADOW_SPREAD * (feet[-1] - feet[0] + 1) / 2 + 1.0
    half_height = max(1.5, SHADOW_FLATTEN * half_width)
    centre_x = (feet[0] + feet[-1]) / 2
    window = (slice(max(0, int(bottom - half_height)), min(mask.shape[0], int(math.ceil(bottom + half_height)) + 1)),
              slice(max(0, int(centre_x - half_width)), min(mask.shape[1], int(math.ceil(centre_x + half_width)) + 1)))
    y, x = np.ogrid[window[0], window[1]]
    reach = ((x - centre_x) / half_width) ** 2 + ((y - bottom) / half_height) ** 2
    return window, (1.0 - SHADOW_DARKEN * np.clip(1.0 - reach, 0.0, 1.0) ** 2).astype(np.float32)


def composite(base: np.ndarray, placements: list[Placement], keep: np.ndarray | None = None) -> np.ndarray:
    """Paint the placements over the base image in order (later in front), after the contact
    shadows of the standing ones, which darken the ground but never the pixels in `keep` (the
    vehicle, whose appearance must stay exact)."""
    out = base.copy()
    for p in placements:
        shadow = contact_shadow(p.mask) if p.standing else None
        if shadow is None:
            continue
        window, factor = shadow
        if keep is not None:
            factor = np.where(keep[window], np.float32(1.0), factor)
        out[window] = np.round(out[window] * factor[..., None]).astype(np.uint8)
    for p in placements:
        if not p.mask.any():
            continue
        window = box_slices(p.mask, margin=1)
        alpha = feathered_alpha(p.mask[window])[..., None]
        blended = out[window] * (1 - alpha) + p.rgb[window] * alpha
        out[window] = np.round(blended).astype(np.uint8)
    return out
