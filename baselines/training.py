"""Training for every learned model of the zoo: `ovbench train --model NAME --data DIR`.

A learned model subclasses `Trainable`: it holds its networks in `self.nets`, makes its optimisers,
and runs one training step on a batch of instances (GANs step several optimisers). This module
does the rest the same way for all: seeded data order, mixed precision, channels-last, DDP under
torchrun, checkpoints (safetensors + JSON, never pickle), exact resume, loss CSV and plot, and a
stop on a non-finite loss that keeps the last good checkpoint.

Checkpoint files under the run folder, per saved step S:
  model-S.safetensors   the networks' weights
  state-S.safetensors   optimiser tensors and RNG state (to resume)
  checkpoint-S.json     model name and config, training settings, step, optimiser hyper-parameters;
                        written last, so it marks a complete checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ovbench import __version__
from ovbench.errors import UserError
from ovbench.fileio import atomic_path, write_json
from ovbench.protocol import Batch, Prediction

KEEP_CHECKPOINTS = 2


@dataclass
class TrainSettings:
    model: str
    data: str
    split: str = "train"
    pool: str | None = None
    epochs: int = 10
    batch_size: int = 4
    lr: float | None = None           # None: the model's own default
    size: int = 256
    device: str = "cpu"
    amp: bool = False
    seed: int = 0
    preset: str | None = None
    out: str = "runs/model"
    pretrained: str | None = None
    save_every: int = 0               # steps; 0: at the end of each epoch
    max_steps: int | None = None      # stop early (tests, smoke runs)
    time_limit: float | None = None   # seconds of training, then checkpoint and stop
    workers: int | None = None        # data-loading processes (default: 0 on CPU, up to 8 on GPU)
    resume: bool = False
    options: dict = field(default_factory=dict)   # model switches, e.g. discriminator, paths


class Trainable:
    """Base of the learned models: networks in `self.nets`, a config that rebuilds them
    (`Model(config, pool=..., device=..., pretrained=...)`)."""

    name = "trainable"
    trainable = True
    needs_pool = False
    default_lr = 2e-4

    def __init__(self, config: dict, pool=None, pretrained: str | None = None, device="cpu"):
        self.config = dict(config)
        self.pool = pool
        self.device = torch.device(device)
        self.nets = nn.ModuleDict()
        self.pretrained_note = "none (random initialisation)"

    # -- to be provided by each model -------------------------------------------------------
    @classmethod
    def default_config(cls, settings: "TrainSettings") -> dict:
        """The architecture for these settings (size, widths, preset, model switches)."""
        raise NotImplementedError

    def make_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, items: dict, step: int, optimizers: dict, amp: bool) -> dict[str, float]:
        raise NotImplementedError

    def forward_predict(self, image, visible, box) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(amodal probabilities, appearance or None) at the model's own size."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return int(self.config["size"])

    def to(self, device):
        self.device = torch.device(device)
        self.nets.to(self.device)
        if self.device.type == "cuda":
            self.nets.to(memory_format=torch.channels_last)
        return self

    def autocast(self, enabled: bool):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def predict(self, batch: Batch) -> Prediction:
        """The protocol: any input size; the model runs at its own size and maps back."""
        self.nets.eval()
        height, width = batch.image.shape[-2:]
        image, visible, box = batch.image.to(self.device), batch.visible_mask.to(self.device), batch.box
        scale = self.size / height
        if (height, width) != (self.size, self.size):
            image = resize(image, self.size, "bilinear")
            visible = resize(visible, self.size, "nearest")
        mask, appearance = self.forward_predict(image.float(), visible.float(), box.to(self.device) * scale)
        if (height, width) != (self.size, self.size):
            mask = resize(mask, height, "bilinear").clamp(0, 1)
            appearance = None if appearance is None else resize(appearance, height, "bilinear").clamp(0, 1)
        if appearance is not None:
            appearance = paint_back(batch.image.to(self.device), appearance, mask,
                                    batch.visible_mask.to(self.device))
        return Prediction(mask.float(), None if appearance is None else appearance.float())


def scalars(**losses: torch.Tensor) -> dict[str, float]:
    """Loss tensors as plain floats for logging."""
    return {name: value.detach().item() for name, value in losses.items()}


def resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return torch.nn.functional.interpolate(x, size=(size, size), mode=mode, **kwargs)


def paint_back(image, generated, mask, visible) -> torch.Tensor:
    """The input everywhere except the predicted hidden part (mask ∖ visible), which is painted."""
    hidden = ((mask >= 0.5) & (visible < 0.5)).float()
    return image * (1 - hidden) + generated * hidden


# --------------------------------------------------------------------------- checkpoints

def _flatten_optimizer(name: str, optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, meta = {}, {"param_groups": state["param_groups"], "scalars": {}}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{name}.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                meta["scalars"][f"{index}.{key}"] = value
    return tensors, meta


def _restore_optimizer(name: str, optimizer, tensors: dict, meta: dict) -> None:
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


def save_checkpoint(run: Path, model: Trainable, optimizers: dict, settings: TrainSettings,
                    step: int, epoch: int, batch_in_epoch: int, nets: nn.ModuleDict | None = None) -> Path:
    """`nets`: the unwrapped networks when model.nets holds DDP wrappers."""
    nets = model.nets if nets is None else nets
    weights = {k: v.detach().cpu().contiguous() for k, v in nets.state_dict().items()}
    with atomic_path(run / f"model-{step}.safetensors") as tmp:
        save_file(weights, str(tmp))
    tensors, optimizer_meta = {}, {}
    for name, optimizer in optimizers.items():
        flat, meta = _flatten_optimizer(name, optimizer)
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


def _steps_saved(run: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in run.glob("checkpoint-*.json"))


def _prune(run: Path) -> None:
    for step in _steps_saved(run)[:-KEEP_CHECKPOINTS]:
        for name in (f"checkpoint-{step}.json", f"model-{step}.safetensors", f"state-{step}.safetensors"):
            (run / name).unlink(missing_ok=True)


def find_checkpoint(path: Path) -> Path:
    """The checkpoint JSON for a run folder (its newest), a JSON, or a model-S.safetensors file."""
    path = Path(path)
    if path.is_dir():
        steps = _steps_saved(path)
        if not steps:
            raise UserError(f"no checkpoint in {path}")
        return path / f"checkpoint-{steps[-1]}.json"
    if path.suffix == ".safetensors" and path.stem.startswith("model-"):
        path = path.with_name(f"checkpoint-{path.stem.split('-', 1)[1]}.json")
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return path


def load_model_checkpoint(factory, checkpoint: Path, device: str, pool=None,
                          overrides: dict | None = None):
    """Rebuild a model from its checkpoint; clear errors for another model's or shape's weights."""
    record_path = find_checkpoint(checkpoint)
    record = json.loads(record_path.read_text())
    if record.get("model") != factory.name:
        raise UserError(f"{record_path} is a checkpoint of {record.get('model')!r}, not {factory.name!r}")
    config = {**record["config"], **(overrides or {})}
    model = factory(config, pool=pool, device=device)
    weights = load_file(str(record_path.with_name(f"model-{record['step']}.safetensors")))
    try:
        model.nets.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise UserError(f"{record_path.name} does not fit {factory.name} as configured ({first})") from exc
    model.pretrained_note = record.get("pretrained", "unknown")
    model.checkpoint_path = record_path.with_name(f"model-{record['step']}.safetensors")
    return model.to(device), record


# --------------------------------------------------------------------------- the loop

def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return rank, world


def _epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100003 + epoch)
    return torch.randperm(count, generator=generator).tolist()


def _write_losses(run: Path, rows: list[dict], resume_step: int | None) -> None:
    path = run / "losses.csv"
    keep = []
    if resume_step is not None and path.exists():
        with open(path) as handle:
            keep = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
    fields = sorted({k for r in keep + rows for k in r} - {"step", "epoch"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "epoch", *fields])
        writer.writeheader()
        writer.writerows(keep + rows)


def plot_losses(run: Path) -> Path | None:
    path = run / "losses.csv"
    if not path.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = [int(r["step"]) for r in rows]
    for key in rows[0]:
        if key in ("step", "epoch"):
            continue
        ax.plot(steps, [float(r[key]) if r[key] else math.nan for r in rows], label=key, linewidth=1)
    ax.set_xlabel("step")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out


def train(factory, settings: TrainSettings, progress: bool = True) -> dict:
    """Train `factory`'s model per `settings`; returns a summary. Resumes when asked."""
    from ovbench.data import AmodalSplit
    from ovbench.hub import resolve_data, resolve_pool

    rank, world = _distributed()
    device = settings.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but torch sees no CUDA device")
        if world > 1:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    run = Path(settings.out)
    resuming = run.exists() and bool(_steps_saved(run))
    if resuming and not settings.resume:
        raise UserError(f"{run} already holds a run; pass --resume to continue it, or choose --out")
    run.mkdir(parents=True, exist_ok=True)

    split = AmodalSplit(resolve_data(settings.data, progress), settings.split, size=settings.size)
    pool = None
    if factory.needs_pool:
        pool = open_pool(resolve_pool(settings.pool, progress), factory.name)
    torch.manual_seed(settings.seed)
    resume_record = None
    if resuming:
        model, resume_record = load_model_checkpoint(factory, run, device, pool)
    else:
        config = factory.default_config(settings)
        model = factory(config, pool=pool, device=device, pretrained=settings.pretrained)
    model.to(device)
    lr = settings.lr or factory.default_lr
    optimizers = model.make_optimizers(lr)
    nets = model.nets
    if world > 1:
        model.nets = nn.ModuleDict({k: torch.nn.parallel.DistributedDataParallel(v) if any(
            p.requires_grad for p in v.parameters()) else v for k, v in nets.items()})
    step, epoch0, skip = 0, 0, 0
    if resume_record:
        step, epoch0, skip = resume_record["step"], resume_record["epoch"], resume_record["batch_in_epoch"]
        state = load_file(str(run / f"state-{step}.safetensors"))
        for name, optimizer in optimizers.items():
            _restore_optimizer(name, optimizer, state, resume_record["optimizers"][name])
        torch.set_rng_state(state["rng.torch"])
        if "rng.cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["rng.cuda"], model.device)
    if rank == 0:
        write_json(run / "settings.json", asdict(settings))

    batches_per_epoch = math.ceil(len(split) / (settings.batch_size * world))
    loader_workers = (settings.workers if settings.workers is not None
                      else (min(8, os.cpu_count() or 1) if model.device.type == "cuda" else 0))
    total = settings.epochs * batches_per_epoch
    if settings.max_steps:
        total = min(total, settings.max_steps)
    rows, last_good, started = [], step, time.perf_counter()
    images_done = 0
    bar = tqdm(total=total, initial=step, unit="step", desc=f"train {factory.name}",
               disable=not progress or rank != 0)
    try:
        for epoch in range(epoch0, settings.epochs):
            order = _epoch_order(len(split), settings.seed, epoch)[rank::world]
            first = skip if epoch == epoch0 else 0
            remaining = order[first * settings.batch_size:]
            # Loader workers only read and decode files; the order is ours, and the loader's own
            # generator keeps it from drawing on the global RNG (dropout's), so resume is exact.
            loader = torch.utils.data.DataLoader(
                torch.utils.data.Subset(split, remaining), batch_size=settings.batch_size,
                shuffle=False, num_workers=loader_workers, pin_memory=model.device.type == "cuda",
                generator=torch.Generator().manual_seed(settings.seed))
            for b, items in enumerate(loader, start=first):
                if step >= total:
                    break
                items = {k: (v.to(model.device, non_blocking=True) if torch.is_tensor(v) else v)
                         for k, v in items.items()}
                if model.device.type == "cuda":
                    items = {k: v.contiguous(memory_format=torch.channels_last)
                             if torch.is_tensor(v) and v.dim() == 4 else v for k, v in items.items()}
                nets.train()
                losses = model.train_step(items, step, optimizers, settings.amp)
                step += 1
                images_done += len(items["image"])
                bad = [k for k, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise UserError(
                        f"loss {', '.join(bad)} became non-finite at step {step}; stopped. The last "
                        f"good checkpoint (step {last_good}) is kept in {run}: resume with --resume, "
                        "perhaps with a lower --lr")
                rows.append({"step": step, "epoch": epoch, **{k: f"{v:.6g}" for k, v in losses.items()}})
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(losses.items())[:3]})
                end_of_epoch = b == batches_per_epoch - 1
                due = settings.save_every and step % settings.save_every == 0
                if settings.time_limit and time.perf_counter() - started >= settings.time_limit:
                    total = step  # out of time: save now and stop
                if rank == 0 and (due or end_of_epoch or step >= total):
                    next_epoch, next_batch = (epoch + 1, 0) if end_of_epoch else (epoch, b + 1)
                    save_checkpoint(run, model, optimizers, settings, step, next_epoch, next_batch, nets)
                    _write_losses(run, rows, resume_record["step"] if resume_record else None)
                    last_good = step
            if step >= total:
                break
    finally:
        bar.close()
        model.nets = nets
    seconds = time.perf_counter() - started
    if rank == 0:
        plot_losses(run)
    return {"run": run, "steps": step, "seconds": seconds, "rank": rank,
            "images_per_second": images_done / seconds if seconds else 0.0,
            "pretrained": model.pretrained_note}


def open_pool(path, model_name: str):
    from ovbench.pool import SilhouettePool

    if not path:
        raise UserError(f"{model_name} needs the silhouette pool: pass --pool FILE.h5 "
                        "(make one with `ovbench generate pool`)")
    if not Path(path).is_file():
        raise UserError(f"silhouette pool not found: {path} (make one with `ovbench generate pool`)")
    return SilhouettePool(Path(path), in_memory=True)


def checkpoint_status(cls, runs: Path = Path("runs")) -> str:
    steps = _steps_saved(runs / cls.name) if (runs / cls.name).is_dir() else []
    return f"trained: {runs / cls.name}, step {steps[-1]}" if steps else "not trained yet"


def load_for_evaluation(cls, checkpoint=None, pool=None, device="cpu", iterations=None,
                        runs: Path = Path("runs")):
    """A trained model: the newest checkpoint under runs/NAME, or --checkpoint; when there is
    none, a UserError that says how to train it."""
    path = Path(checkpoint) if checkpoint else runs / cls.name
    if checkpoint is None and not (path.is_dir() and _steps_saved(path)):
        pool_hint = " --pool ovbench-data/pool.h5" if cls.needs_pool else ""
        raise UserError(f"{cls.name} is not trained yet (no checkpoint under {path}); train it with: "
                        f"ovbench train --model {cls.name} --data ovbench-data/ovd{pool_hint} --preset tiny")
    pool_file = open_pool(pool, cls.name) if cls.needs_pool and pool else None
    overrides = {"iterations": iterations} if iterations else None
    model, _ = load_model_checkpoint(cls, path, device, pool_file, overrides)
    return model
