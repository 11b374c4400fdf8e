"""Name → model registry behind `--model NAME` (pix2pix-style: one module per model).

Every registered model has one constructor contract, `Model.build(checkpoint=None, pool=None,
device="cpu", options=None)`, and declares its own options (`Model.options`, a tuple of
`ModelOption`): the command line asks the chosen model for its flags and their defaults, as
pix2pix's `modify_commandline_options` does, so each default is written once, in the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovbench.errors import InputError

_MODELS: dict[str, type] = {}
_ALIASES: dict[str, str] = {}


@dataclass(frozen=True)
class ModelOption:
    """One switch of one model: its config key, default, help and allowed values.
    `at_evaluation`: may be changed when a trained model is evaluated (seganv's iterations)."""

    name: str
    default: object
    help: str
    choices: tuple = ()
    at_evaluation: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def option_values(cls, given: dict | None, evaluation: bool = False) -> dict:
    """`cls`'s option defaults overlaid with `given` (unknown names and bad values refused)."""
    declared = {o.name: o for o in cls.options if o.at_evaluation or not evaluation}
    values = {} if evaluation else {name: o.default for name, o in declared.items()}
    for name, value in (given or {}).items():
        option = declared.get(name)
        if option is None:
            raise InputError(f"{cls.name} has no option {name!r}"
                            + (f" (its options: {', '.join(declared)})" if declared else ""))
        if option.choices and value not in option.choices:
            raise InputError(f"{cls.name} option {name} must be one of "
                            f"{', '.join(map(str, option.choices))}, got {value!r}")
        values[name] = value
    return values


class Reference:
    """Base of the non-learned references: nothing to train, no checkpoint."""

    options: tuple[ModelOption, ...] = ()
    learned = False

    def __init__(self, pool=None, device: str = "cpu"):
        self.pool, self.device = pool, device

    @classmethod
    def build(cls, checkpoint=None, pool=None, device: str = "cpu", options: dict | None = None):
        if checkpoint is not None:
            raise InputError(f"{cls.name} is not a learned model: it takes no checkpoint")
        option_values(cls, options, evaluation=True)
        return cls(pool=pool, device=device)

    @classmethod
    def status(cls) -> str:
        return "no training needed"


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


def available_models() -> dict[str, type]:
    return dict(sorted(_MODELS.items()))


def get_model(name: str):
    key = _ALIASES.get(name, name)
    if key not in _MODELS:
        known = ", ".join(available_models()) or "none yet"
        raise InputError(f"unknown model {name!r}; registered models: {known}")
    return _MODELS[key]


def create_model(name: str, checkpoint=None, pool=None, device: str = "cpu", options: dict | None = None):
    """A ready model: references are built directly; learned models load their checkpoint.
    `options`: the model's evaluation-time options (e.g. seganv's iterations)."""
    return get_model(name).build(checkpoint=checkpoint, pool=pool, device=device, options=options)
