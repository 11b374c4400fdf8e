"""Colour harmonisation of a pasted occluder toward its surroundings; pluggable by name.

"Visualizing the Invisible" used Deep Image Harmonization; the default here is Reinhard et al.'s
colour transfer in Lab: the occluder's mean and spread per channel move part of the way toward
those of the base image around it.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from ovbench.errors import InputError
from ovbench.formats.masks import box_slices

STRENGTH = 0.5     # how far the statistics move toward the surroundings
CONTEXT = 0.25     # the surroundings: the occluder's box grown by this share of its size


def reinhard(rgb: np.ndarray, mask: np.ndarray, background: np.ndarray,
             strength: float = STRENGTH) -> np.ndarray:
    """`rgb` (frame-sized) with its pixels under `mask` moved toward the Lab statistics of
    `background` around the mask; pixels outside the mask are returned unchanged."""
    if not mask.any():
        return rgb
    window = box_slices(mask, margin=2, grow=CONTEXT)
    inside, around = mask[window], ~mask[window]
    if not around.any():
        return rgb
    # One conversion for both sets of pixels, in float32: the call's overhead dominates.
    pixels = np.concatenate([rgb[window][inside], background[window][around]])
    lab = rgb2lab(pixels[None].astype(np.float32) / np.float32(255.0))[0]
    count = np.count_nonzero(inside)
    source = lab[:count]
    channels = np.ascontiguousarray(lab.T)  # statistics along contiguous rows are several times faster
    mean_s, std_s = channels[:, :count].mean(axis=1), channels[:, :count].std(axis=1) + 1e-6
    mean_t, std_t = channels[:, count:].mean(axis=1), channels[:, count:].std(axis=1) + 1e-6
    new_mean = mean_s + strength * (mean_t - mean_s)
    new_std = std_s + strength * (std_t - std_s)
    moved = (source - mean_s) * (new_std / std_s) + new_mean
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as intended
        warnings.simplefilter("ignore", UserWarning)
        back = lab2rgb(moved[None])[0]
    out = rgb.copy()
    region = out[window]
    region[inside] = np.clip(np.round(back * 255.0), 0, 255).astype(np.uint8)
    out[window] = region
    return out


def no_harmonization(rgb: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    return rgb


HARMONIZERS: dict[str, Callable] = {"none": no_harmonization, "reinhard": reinhard}


def get_harmonizer(name: str) -> Callable:
    if name not in HARMONIZERS:
        raise InputError(f"unknown `harmonize` {name!r}; choose from {', '.join(HARMONIZERS)}")
    return HARMONIZERS[name]
