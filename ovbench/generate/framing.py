"""How an instance is framed: a seeded square around its box, inside the photo where it fits,
mirrored where not, resized to the dataset's size. OVD frames its photo bases so, and imported real
test sets their instances, so that a model trained on one sees the other framed alike."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ovbench.formats.masks import box_slices


def _crop_start(span: slice, side: int, length: int) -> int:
    """Start of a crop of `side` centred on `span`, shifted to lie inside [0, length) where it fits;
    a longer crop is centred on [0, length), its padding split evenly. Either way the span stays
    inside the crop (side ≥ its length + 2)."""
    if side > length:
        return -((side - length) // 2)
    centred = int(round((span.start + span.stop - side) / 2))
    return min(max(centred, 0), length - side)


def frame_crop(mask: np.ndarray, rng, grow=(1.15, 1.5)) -> tuple[int, int, int]:
    """A square (x0, y0, side) around the mask's box, grown by a seeded factor but no more than the
    photo's shorter side allows (a pixel of margin always), and inside the photo where it fits."""
    rows, cols = box_slices(mask)
    longest = max(rows.stop - rows.start, cols.stop - cols.start)
    side = int(math.ceil(longest * rng.uniform(*grow)))
    side = max(min(side, *mask.shape), longest + 2)
    return _crop_start(cols, side, mask.shape[1]), _crop_start(rows, side, mask.shape[0]), side


def square_crop(image: np.ndarray, x0: int, y0: int, side: int, mode: str = "reflect") -> np.ndarray:
    """The side×side square at (x0, y0); what lies outside the image is padded by `mode` (np.pad:
    reflect mirrors the photo, constant is zero)."""
    h, w = image.shape[:2]
    pad = [(max(0, -y0), max(0, y0 + side - h)), (max(0, -x0), max(0, x0 + side - w))]
    padded = np.pad(image, pad + [(0, 0)] * (image.ndim - 2), mode=mode)
    y, x = y0 + pad[0][0], x0 + pad[1][0]
    return padded[y:y + side, x:x + side]


def frame_image(rgb: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square of a photo (mirrored where the square leaves it), resized to size²."""
    return np.asarray(Image.fromarray(square_crop(rgb, x0, y0, side)).resize((size, size), Image.BILINEAR))


def frame_mask(mask: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The same square of a mask: empty outside the photo, bilinear, kept where at least half covered."""
    canvas = square_crop(mask.astype(np.uint8) * 255, x0, y0, side, mode="constant")
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR)) >= 128
