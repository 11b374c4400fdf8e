"""Training settings: everything a training run depends on, with every default written once.

Saved as settings.json in the run folder and inside every checkpoint; read by `ovbench train`,
`ovbench reproduce` and the trainer (baselines/training.py). No torch here: the command line reads
the defaults for its help without loading the model zoo.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ovbench.errors import InputError

# What `--preset tiny` changes: narrow networks (each model's base_config) at 64 px, briefly.
PRESETS = {"tiny": {"epochs": 3, "batch_size": 8, "size": 64}}


@dataclass
class TrainSettings:
    """Everything a training run depends on; saved in settings.json and in every checkpoint."""

    model: str
    data: str
    split: str = "train"
    pool: str | None = None
    epochs: int = 20
    batch_size: int = 4
    lr: float | None = None           # None: the model's own default
    size: int = 256
    device: str = "cpu"
    amp: bool = False
    seed: int = 0
    preset: str | None = None
    out: str = "runs/model"
    pretrained: str | None = "imagenet"   # "imagenet", a weights file, or None (random)
    save_every: int = 0               # steps; 0: at the end of each epoch
    max_steps: int | None = None      # stop early (tests, smoke runs)
    until_epoch: int | None = None    # stop after this many epochs of the `epochs` planned
    time_limit: float | None = None   # seconds of training, then checkpoint and stop
    workers: int | None = None        # data-loading processes (default: 0 on CPU, up to 8 on GPU)
    holdout: float = 0.0              # share of the split's images kept out for validation
    resume: bool = False
    checkpoint: str | None = None     # weights to start from (a checkpoint path or hub:ORG/NAME)
    options: dict = field(default_factory=dict)   # the model's own options, e.g. discriminator

    def __post_init__(self):
        for name in ("epochs", "batch_size", "size"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "until_epoch", "time_limit"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"`{name}` must be positive, got {value}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"`lr` must be a positive number, got {self.lr}")
        if not 0 <= self.holdout < 1:
            raise InputError(f"`holdout` must be in [0, 1), got {self.holdout}")

    @classmethod
    def with_preset(cls, preset: str | None, **given) -> "TrainSettings":
        """Settings from the values given (None: not given), the preset's, then the defaults."""
        chosen = {k: v for k, v in given.items() if v is not None}
        return cls(**{**PRESETS.get(preset or "", {}), **chosen, "preset": preset})


def default_of(name: str, preset: str | None = None):
    """A training setting's default, for help texts: written once, here."""
    if preset:
        return PRESETS[preset].get(name, default_of(name))
    return next(f.default for f in dataclasses.fields(TrainSettings) if f.name == name)
