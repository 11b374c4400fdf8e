"""Binary masks as COCO RLE (counts stored as str, as JSON needs), boxes and areas."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from ovbench.errors import InputError


def _str_counts(rle: dict) -> dict:
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a 2-D boolean mask, with str counts."""
    return _str_counts(mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8)))


def encode_crops(crops: list[tuple[tuple, np.ndarray]], shape: tuple[int, int]) -> list[dict]:
    """`encode` of each H×W mask given as (box, crop): the mask is the crop inside box (row0,
    row1, col0, col1; half-open) and False elsewhere. One pycocotools call for them all."""
    frames = np.zeros((*shape, len(crops)), np.uint8, order="F")
    for n, ((row0, row1, col0, col1), crop) in enumerate(crops):
        frames[row0:row1, col0:col1, n] = crop
    return [_str_counts(rle) for rle in mask_utils.encode(frames)] if crops else []


def decode(rle: dict) -> np.ndarray:
    """Boolean H×W mask from an RLE with str or bytes counts."""
    counts = rle["counts"]
    return mask_utils.decode({"size": rle["size"],
                              "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
                             ).astype(bool)


def rle_counts(counts: str | bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString, in Python):
    six-bit groups from '0', five data bits each, the sixth bit "more"; runs after the second are
    stored as differences from the run two back."""
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    runs, position = [], 0
    while position < len(data):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(data) or not 48 <= data[position] < 48 + 64:
                raise ValueError("not a COCO RLE string")
            chunk = data[position] - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position, shift = position + 1, shift + 5
            if not more and chunk & 0x10:
                value -= 1 << shift
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
    return runs


def check_rle(rle, shape: tuple[int, int], what: str) -> None:
    """A compressed binary RLE of exactly this H×W shape: runs non-negative and covering every
    pixel once (what `decode` reads)."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        kind = "a polygon" if isinstance(rle, list) else type(rle).__name__
        raise InputError(f"{what} is {kind}, not an RLE {{size, counts}}: encode masks with pycocotools")
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) for s in size)):
        raise InputError(f"{what} has a malformed RLE size {size!r}: use [height, width]")
    if size != list(shape):
        raise InputError(f"{what} is {size[1]}×{size[0]}, the image is {shape[1]}×{shape[0]}")
    if not isinstance(rle["counts"], (str, bytes)):
        raise InputError(f"{what} has uncompressed RLE counts: compress them with pycocotools' mask.encode")
    try:
        runs = rle_counts(rle["counts"])
    except (ValueError, UnicodeEncodeError):
        raise InputError(f"{what} has unreadable RLE counts") from None
    if any(run < 0 for run in runs) or sum(runs) != shape[0] * shape[1]:
        raise InputError(f"{what}: its RLE runs cover {sum(runs)} pixels, the image has {shape[0] * shape[1]}")


def bbox(mask: np.ndarray) -> list[int]:
    """[x, y, w, h] of the True pixels (COCO order, inclusive extents); zeros when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def bbox_in(crop: np.ndarray, box: tuple) -> list[int]:
    """`bbox` of a mask given as the crop of box (row0, row1, col0, col1), in the whole frame."""
    found = bbox(crop)
    return [found[0] + box[2], found[1] + box[0], *found[2:]] if found[2] else found


def paste(crop: np.ndarray, box: tuple, shape: tuple[int, int]) -> np.ndarray:
    """The H×W(×C) array that holds `crop` inside box (row0, row1, col0, col1), zeros elsewhere."""
    frame = np.zeros((*shape, *crop.shape[2:]), crop.dtype)
    frame[box[0]:box[1], box[2]:box[3]] = crop
    return frame


def box_slices(mask: np.ndarray, margin: int = 0, grow: float = 0.0) -> tuple[slice, slice]:
    """Row and column slices of a non-empty mask's bounding box, grown on each side by
    max(margin, grow × its extent) pixels and clipped to the frame."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    pad_r = max(margin, int(grow * (rows[-1] - rows[0] + 1)))
    pad_c = max(margin, int(grow * (cols[-1] - cols[0] + 1)))
    h, w = mask.shape
    return (slice(max(rows[0] - pad_r, 0), min(rows[-1] + pad_r + 1, h)),
            slice(max(cols[0] - pad_c, 0), min(cols[-1] + pad_c + 1, w)))
