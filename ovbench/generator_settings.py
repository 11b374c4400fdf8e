"""Every generator's settings, with every default written once: the generators read them, the
command line builds its flags and help from them, and manifests store them (`record`). Light on
purpose (no renderer, no mesh code), so that `ovbench --help` stays quick."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

from ovbench.errors import InputError
from ovbench.formats.dataset import check_split_name

MAX_UPSCALE = 4    # the default --base-min-size keeps photo bases from being enlarged more than this
LAYOUTS = ("street", "open")
DEFAULT_OBJECTS = {"street": (50, 70), "open": (3, 6)}
MAX_OBJECTS = {"street": 150, "open": 30}


@dataclass(frozen=True)
class PoolConfig:
    source: str = "procedural"
    synset: str = "car"
    models: int | None = None      # None: 401 procedural models, or every model of a file source
    views: int = 80
    size: int = 256
    seed: int = 0
    up: str | None = None          # source orientation override (file sources)
    front: str | None = None

    def orientation(self):
        """The file meshes' axes as given (None: each format's own)."""
        from ovbench.assets.meshes import orientation_option

        return orientation_option(self.up, self.front)


@dataclass(frozen=True)
class OvdConfig:
    base: str = "builtin"
    base_categories: tuple = ("car", "truck", "bus")
    base_min_size: int | None = None   # None: size / MAX_UPSCALE
    occluders: str = "builtin"
    occluder_categories: tuple = ("person", "bicycle", "motorcycle", "car", "truck", "bus")
    occluder_min_size: int = 16
    keep_border_occluders: bool = False
    occluder_bank: int | None = None   # builtin: rendered cut-outs; file sources: a seeded subset
    max_occluders: int = 3
    occlusion: tuple = (0.1, 0.7)
    harmonize: str = "reinhard"
    splits: tuple = (("train", 200), ("test", 50))
    size: int = 256
    seed: int = 0
    reuse: int = 2                     # composites per built-in base (OVD: 33,100 from 16,185)
    min_visible: int = 10

    def min_base_size(self) -> int:
        """Smallest longer box side of a photo base: the frame is at least that, so upscaling is
        below MAX_UPSCALE by default."""
        return self.base_min_size or math.ceil(self.size / MAX_UPSCALE)

    def record(self) -> dict:
        """The settings as stored in the manifest: file sources by kind and fingerprint only."""
        data = asdict(self)
        data["base_min_size"] = self.min_base_size()
        for key in ("base", "occluders"):
            kind = data[key].split(":", 1)[0]
            if kind != "builtin":
                data[key] = f"{kind}:{hashlib.sha256(data[key].encode()).hexdigest()[:12]}"
        data["splits"] = [list(s) for s in self.splits]
        data["base_categories"], data["occluder_categories"] = (list(self.base_categories),
                                                                list(self.occluder_categories))
        data["occlusion"] = list(self.occlusion)
        return data


@dataclass(frozen=True)
class DyceConfig:
    vehicles: str = "procedural"
    models: int | None = None            # procedural: 200 models; file sources: all
    layout: str = "street"
    objects: tuple | None = None         # None: the layout's DEFAULT_OBJECTS
    views_per_scene: int = 4
    splits: tuple = (("train", 60), ("test", 20))
    size: int = 256
    seed: int = 0
    min_visible: int = 10
    up: str | None = None                # file vehicles' own axes (as for the pool)
    front: str | None = None

    def orientation(self):
        """The file meshes' axes as given (None: each format's own)."""
        from ovbench.assets.meshes import orientation_option

        return orientation_option(self.up, self.front)

    def object_range(self) -> tuple[int, int]:
        return tuple(self.objects) if self.objects else DEFAULT_OBJECTS.get(self.layout, (0, 0))

    def record(self) -> dict:
        data = asdict(self)
        data["vehicles"] = self.vehicles.split(":", 1)[0]
        data["objects"], data["splits"] = list(self.object_range()), [list(s) for s in self.splits]
        return data


def parse_splits(text: str) -> tuple:
    """'train=N,test=M' → (('train', N), ('test', M))."""
    splits = []
    for part in text.split(","):
        name, _, count = part.partition("=")
        if not name.strip() or not count.strip().isdigit() or int(count) < 1:
            raise InputError(f"bad `splits` {text!r}: use e.g. train=1000,test=100")
        splits.append((check_split_name(name.strip()), int(count)))
    if len({name for name, _ in splits}) != len(splits):
        raise InputError(f"bad `splits` {text!r}: a split is named twice")
    return tuple(splits)


def parse_range(text: str) -> tuple:
    low, _, high = text.partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = -1.0
    if not 0.0 <= lo <= hi < 1.0:
        raise InputError(f"bad `occlusion` {text!r}: use LOW:HIGH with 0 ≤ LOW ≤ HIGH < 1")
    return (lo, hi)


def parse_objects(text: str) -> tuple[int, int]:
    """'MIN:MAX' → (MIN, MAX) objects per scene."""
    low, _, high = text.partition(":")
    if not (low.isdigit() and high.isdigit()):
        raise InputError(f"bad `objects` {text!r}: use MIN:MAX, e.g. 3:6")
    return int(low), int(high)
