"""What every street scene shares, whether composited (ovd) or rendered whole (dyce): the camera's
field of view, sun and sky, and the category each built-in vehicle type belongs to."""

from __future__ import annotations

import math

import numpy as np

from ovbench.renderers import Lighting

YFOV = math.radians(40.0)
CATEGORY_OF_TYPE = {"sedan": "car", "hatchback": "car", "suv": "car", "pickup": "car",
                    "van": "car", "bus": "bus", "truck": "truck", "coupe": "car", "wagon": "car",
                    "minivan": "car", "citycar": "car", "minibus": "bus"}


def street_lighting(rng) -> Lighting:
    elevation, azimuth = rng.uniform(0.35, 1.2), rng.uniform(0, 2 * np.pi)
    direction = -np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                           np.sin(elevation)])
    return Lighting(tuple(direction), rng.uniform(2.0, 4.0), rng.uniform(0.25, 0.45))


def sky_colours(rng) -> tuple[np.ndarray, np.ndarray]:
    """A random sky: RGB (0-255) at the zenith and at the horizon."""
    top = np.array([rng.uniform(60, 120), rng.uniform(110, 160), rng.uniform(190, 240)])
    horizon = np.array([rng.uniform(190, 235)] * 3) + rng.normal(0, 6, 3)
    return top, horizon


def sky_image(size: int, rng) -> np.ndarray:
    """A size×size sky gradient, zenith at the top."""
    top, horizon = sky_colours(rng)
    t = np.linspace(0, 1, size)[:, None, None]
    return np.broadcast_to(top * (1 - t) + horizon * t, (size, size, 3))
