"""Edge antialiasing of a rendered colour image, in the spirit of FXAA: ovbench renders every pass
single-sampled (on llvmpipe, 4× multisampling costs up to 2× a lit pass), so masks, depth and
colour agree pixel for pixel, and colour edges are softened afterwards, on the image."""

from __future__ import annotations

import numpy as np

# Luma contrast (0-255) across a pixel's 4-neighbourhood above which the pixel is on an edge
# (FXAA's "edge threshold" is 1/8 relative, 1/32 absolute; this sits between).
EDGE_CONTRAST = 24.0
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601


def soften_edges(rgb: np.ndarray) -> np.ndarray:
    """A uint8 H×W×3 image with each edge pixel blended with its 4 neighbours (half its own value,
    an eighth each, rounded), as a multisampled pass blends the two sides of an edge. Pixels off
    edges keep their values exactly; the image border repeats itself."""
    luma = np.pad(rgb.astype(np.float32) @ _LUMA, 1, mode="edge")
    around = (luma[:-2, 1:-1], luma[2:, 1:-1], luma[1:-1, :-2], luma[1:-1, 2:], luma[1:-1, 1:-1])
    edge = (np.maximum.reduce(around) - np.minimum.reduce(around)) > EDGE_CONTRAST
    padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge").astype(np.uint16)
    total = 4 * padded[1:-1, 1:-1] + padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
    out = rgb.copy()
    np.copyto(out, ((total + 4) >> 3).astype(np.uint8), where=edge[..., None])
    return out
