"""Name → model registry behind `--model NAME` (pix2pix-style: one module per model)."""

from __future__ import annotations

from typing import Callable

from ovbench.errors import UserError

_MODELS: dict[str, Callable] = {}
_ALIASES: dict[str, str] = {}


def register(name: str, *aliases: str):
    """Class decorator: make a model available as `--model name` (and its aliases)."""

    def decorate(factory):
        factory.name = name
        factory.aliases = aliases
        _MODELS[name] = factory
        for alias in aliases:
            _ALIASES[alias] = name
        return factory

    return decorate


def available_models() -> dict[str, Callable]:
    return dict(sorted(_MODELS.items()))


def get_model(name: str):
    key = _ALIASES.get(name, name)
    if key not in _MODELS:
        known = ", ".join(available_models()) or "none yet"
        raise UserError(f"unknown model {name!r}; registered models: {known}")
    return _MODELS[key]


def create_model(name: str, checkpoint=None, pool=None, device="cpu", iterations=None):
    """A ready model: references are built directly; learned models load their checkpoint."""
    cls = get_model(name)
    if getattr(cls, "trainable", False):
        from .training import load_for_evaluation

        return load_for_evaluation(cls, checkpoint, pool, device, iterations)
    if checkpoint is not None:
        raise UserError(f"{cls.name} is not a learned model: it takes no --checkpoint")
    return cls(pool=pool, device=device, iterations=iterations)
