"""The Hugging Face Hub: publishing datasets (publish.py) and reading them back (fetch.py).

Kept import-light: a `hub:ORG/NAME[/CONFIG]` spec pulls in `datasets` and the Hub client only
when one is given.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "hub:"


def is_hub_spec(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def resolve_data(spec, progress: bool = True) -> Path:
    """A dataset folder from a path or a hub: spec (rebuilt from the Hub copy, cached)."""
    if not is_hub_spec(spec):
        return Path(spec)
    from ovbench.hub.fetch import materialize

    return materialize(spec, "dataset", progress)


def resolve_pool(spec, progress: bool = True) -> Path | None:
    """A pool file from a path or a hub: spec (the repository's pool config unless one is named)."""
    if spec is None or not is_hub_spec(spec):
        return None if spec is None else Path(spec)
    from ovbench.hub.fetch import materialize

    return materialize(spec, "pool", progress)
