"""Every random choice comes from a Generator derived from (seed, item keys), never from call order,
so results do not depend on how work is split across workers or resumed."""

from __future__ import annotations

import hashlib

import numpy as np


def _key(value) -> int:
    if isinstance(value, (int, np.integer)) and value >= 0:
        return int(value)
    digest = hashlib.sha256(repr(value).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(seed: int, *keys) -> np.random.Generator:
    """An independent, reproducible generator for one item, e.g. rng_for(seed, "view", 12)."""
    return np.random.default_rng(np.random.SeedSequence([_key(seed), *map(_key, keys)]))
