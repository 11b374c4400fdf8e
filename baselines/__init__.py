"""The model zoo (imported as ovbench.baselines): one module per model, registered by name."""

from . import convex_hull, deeplab, pix2pix, pool_nn, segan, seganv, visible  # noqa: F401  (registration)
from .registry import available_models, create_model, get_model, register

__all__ = ["available_models", "create_model", "get_model", "register"]
