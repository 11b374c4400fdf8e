"""The model zoo (imported as ovbench.baselines): one module per model, registered by name."""

from . import convex_hull, pool_nn, visible  # noqa: F401  (registration)
from .registry import available_models, get_model, register

__all__ = ["available_models", "get_model", "register"]
