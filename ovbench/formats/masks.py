"""Binary masks as COCO RLE (counts stored as str, as JSON needs), boxes and areas."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a 2-D boolean mask, with str counts."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict) -> np.ndarray:
    """Boolean H×W mask from an RLE with str or bytes counts."""
    counts = rle["counts"]
    return mask_utils.decode({"size": rle["size"],
                              "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
                             ).astype(bool)


def bbox(mask: np.ndarray) -> list[int]:
    """[x, y, w, h] of the True pixels (COCO order, inclusive extents); zeros when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def box_slices(mask: np.ndarray, margin: int = 0, grow: float = 0.0) -> tuple[slice, slice]:
    """Row and column slices of a non-empty mask's bounding box, grown on each side by
    max(margin, grow × its extent) pixels and clipped to the frame."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    pad_r = max(margin, int(grow * (rows[-1] - rows[0] + 1)))
    pad_c = max(margin, int(grow * (cols[-1] - cols[0] + 1)))
    h, w = mask.shape
    return (slice(max(rows[0] - pad_r, 0), min(rows[-1] + pad_r + 1, h)),
            slice(max(cols[0] - pad_c, 0), min(cols[-1] + pad_c + 1, w)))
