"""The checkpoint format of every learned model (safetensors + JSON, never pickle).

Files under the run folder, per saved step S:
  model-S.safetensors   the networks' weights
  state-S.safetensors   optimiser tensors and RNG state (to resume)
  checkpoint-S.json     model name and config, training settings, step, optimiser hyper-parameters;
                        written last, so it marks a complete checkpoint.
The newest KEEP_CHECKPOINTS are kept, plus any copied elsewhere (reproduce keeps the best).
A published model (ovbench.hub.models: `config.json` + `model.safetensors`, from `--to` or
downloaded for `hub:ORG/NAME`) loads the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ovbench import __version__
from ovbench.errors import InputError
from ovbench.formats.fileio import atomic_path, write_json

KEEP_CHECKPOINTS = 2


def flatten_optimizer(name: str, optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, meta = {}, {"param_groups": state["param_groups"], "scalars": {}}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{name}.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                meta["scalars"][f"{index}.{key}"] = value
    return tensors, meta


def restore_optimizer(name: str, optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    prefix = f"{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field_name = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[field_name] = value
    for key, value in meta["scalars"].items():
        index, field_name = key.split(".", 1)
        state.setdefault(int(index), {})[field_name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run: Path, model, optimizers: dict, settings,
                    step: int, epoch: int, batch_in_epoch: int, nets: nn.ModuleDict | None = None) -> Path:
    """`nets`: the unwrapped networks when model.nets holds DDP wrappers."""
    nets = model.nets if nets is None else nets
    weights = {k: v.detach().cpu().contiguous() for k, v in nets.state_dict().items()}
    with atomic_path(run / f"model-{step}.safetensors") as tmp:
        save_file(weights, str(tmp))
    tensors, optimizer_meta = {}, {}
    for name, optimizer in optimizers.items():
        flat, meta = flatten_optimizer(name, optimizer)
        tensors.update(flat)
        optimizer_meta[name] = meta
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and model.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(model.device)
    with atomic_path(run / f"state-{step}.safetensors") as tmp:
        save_file(tensors, str(tmp))
    record = {"model": model.name, "config": model.config, "train": asdict(settings), "step": step,
              "epoch": epoch, "batch_in_epoch": batch_in_epoch, "optimizers": optimizer_meta,
              "pretrained": model.pretrained_note, "ovbench_version": __version__}
    path = run / f"checkpoint-{step}.json"
    write_json(path, record)
    _prune(run)
    return path


def steps_saved(run: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in run.glob("checkpoint-*.json"))


def _prune(run: Path) -> None:
    for step in steps_saved(run)[:-KEEP_CHECKPOINTS]:
        for name in (f"checkpoint-{step}.json", f"model-{step}.safetensors", f"state-{step}.safetensors"):
            (run / name).unlink(missing_ok=True)


PUBLISHED_RECORD, PUBLISHED_WEIGHTS = "config.json", "model.safetensors"


def find_checkpoint(path: Path) -> Path:
    """The checkpoint JSON for a run folder (its newest), a published model's folder, a JSON, or a
    model-S.safetensors file."""
    path = Path(path)
    if path.is_dir():
        steps = steps_saved(path)
        if not steps and (path / PUBLISHED_RECORD).is_file():
            return path / PUBLISHED_RECORD
        if not steps:
            raise InputError(f"no checkpoint in {path}")
        return path / f"checkpoint-{steps[-1]}.json"
    if path.suffix == ".safetensors" and path.stem.startswith("model-"):
        path = path.with_name(f"checkpoint-{path.stem.split('-', 1)[1]}.json")
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    if path.suffix != ".json":
        raise InputError(f"{path} is not a checkpoint: give a run folder, checkpoint-S.json or "
                        "model-S.safetensors")
    return path


def weights_of(record_path: Path, record: dict) -> Path:
    if record_path.name == PUBLISHED_RECORD:
        return record_path.with_name(PUBLISHED_WEIGHTS)
    return record_path.with_name(f"model-{record['step']}.safetensors")


def read_record(path: Path) -> dict:
    """A checkpoint's JSON record, refused in one line when it is not one."""
    try:
        record = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a checkpoint record ({type(exc).__name__})") from exc
    if not isinstance(record, dict) or not {"model", "config", "step"} <= record.keys():
        raise InputError(f"{path} is not a checkpoint record (no model, config and step)")
    return record


def load_model_checkpoint(factory, checkpoint: Path, device: str, pool=None,
                          overrides: dict | None = None):
    """Rebuild a model from its checkpoint; clear errors for another model's or shape's weights."""
    record_path = find_checkpoint(checkpoint)
    record = read_record(record_path)
    if record.get("model") != factory.name:
        raise InputError(f"{record_path} is a checkpoint of {record.get('model')!r}, not {factory.name!r}")
    config = {**record["config"], **(overrides or {})}
    model = factory(config, pool=pool, device=device)
    weights_path = weights_of(record_path, record)
    try:
        weights = load_file(str(weights_path))
    except (OSError, SafetensorError) as exc:
        raise InputError(f"{weights_path}: cannot read the checkpoint's weights ({exc})") from exc
    try:
        model.nets.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise InputError(f"{record_path.name} does not fit {factory.name} as configured ({first})") from exc
    model.pretrained_note = record.get("pretrained", "unknown")
    model.checkpoint_path = weights_path
    return model.to(device), record


def checkpoint_status(cls, runs: Path = Path("runs")) -> str:
    steps = steps_saved(runs / cls.name) if (runs / cls.name).is_dir() else []
    return f"trained: {runs / cls.name}, step {steps[-1]}" if steps else "not trained yet"


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """A local checkpoint path, or the folder a published model (hub:ORG/NAME) is cached in."""
    from ovbench.hub import is_hub_spec

    if is_hub_spec(str(checkpoint)):
        from ovbench.hub.models import download_model

        return download_model(str(checkpoint))
    return Path(checkpoint)


def load_for_evaluation(cls, checkpoint=None, pool=None, device="cpu", overrides: dict | None = None,
                        runs: Path = Path("runs")):
    """A trained model: the newest checkpoint under runs/NAME, or --checkpoint (a path, or
    hub:ORG/NAME: a published model, from the Hub cache); when there is none, a InputError that
    says how to train it."""
    checkpoint = resolve_checkpoint(checkpoint) if checkpoint else None
    path = Path(checkpoint) if checkpoint else runs / cls.name
    if checkpoint is None and not (path.is_dir() and steps_saved(path)):
        pool_hint = " --pool ovbench-data/pool.h5" if cls.needs_pool else ""
        raise InputError(f"{cls.name} is not trained yet (no checkpoint under {path}); train it with: "
                        f"ovbench train --model {cls.name} --data ovbench-data/ovd{pool_hint} --preset tiny")
    from .training import open_pool

    pool_file = open_pool(pool, cls.name) if cls.needs_pool and pool else None
    model, _ = load_model_checkpoint(cls, path, device, pool_file, overrides)
    return model
