"""Training for every learned model of the zoo: `ovbench train --model NAME --data DIR`.

The model (learned.py) makes its optimisers and runs one step; this module does the rest the same
way for all: seeded data order, mixed precision, channels-last, DDP under torchrun and exact resume.
The loop is a skeleton; what happens after each step is its hooks' (detectron2's HookBase): the
loss log and plot, the stop on a non-finite loss (the last good checkpoint stays), the time limit
and the checkpointer (checkpoints.py: safetensors + JSON, never pickle). The model's own per-epoch
hook, `start_epoch`, runs its schedules.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ovbench.errors import InputError
from ovbench.formats.fileio import atomic_path, write_json
from ovbench.training_settings import TrainSettings

from .checkpoints import load_model_checkpoint, resolve_checkpoint, restore_optimizer, save_checkpoint, steps_saved


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


def _device(settings: TrainSettings, world: int) -> str:
    if not settings.device.startswith("cuda"):
        return settings.device
    if not torch.cuda.is_available():
        raise InputError("device cuda asked for, but torch sees no CUDA device")
    if world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
        return device
    return settings.device


def _build(factory, settings: TrainSettings, run: Path, device: str, pool, rank: int):
    """The model and its optimisers, fresh or from the run's last checkpoint (record, or None)."""
    record = None
    if steps_saved(run):
        model, record = load_model_checkpoint(factory, run, device, pool)
    elif settings.checkpoint:
        model, _ = load_model_checkpoint(factory, resolve_checkpoint(settings.checkpoint), device, pool,
                                         overrides=settings.options)
        model.pretrained_note = f"fine-tuned from {settings.checkpoint} ({model.pretrained_note})"
    else:
        model = factory(factory.default_config(settings), pool=pool, device=device,
                        pretrained=settings.pretrained)
        if rank == 0 and model.pretrained_note.startswith("random"):
            print(f"ovbench: warning: {factory.name} starts from random weights, not ImageNet: "
                  f"{model.pretrained_note}", file=sys.stderr)
    model.to(device)
    optimizers = model.make_optimizers(settings.lr or factory.default_lr)
    if record:
        state = load_file(str(run / f"state-{record['step']}.safetensors"))
        for name, optimizer in optimizers.items():
            restore_optimizer(name, optimizer, state, record["optimizers"][name])
        torch.set_rng_state(state["rng.torch"])
        if "rng.cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["rng.cuda"], model.device)
    return model, optimizers, record


def _wrap_for_ddp(nets: nn.ModuleDict, world: int) -> nn.ModuleDict:
    if world == 1:
        return nets
    return nn.ModuleDict({k: torch.nn.parallel.DistributedDataParallel(v)
                          if any(p.requires_grad for p in v.parameters()) else v for k, v in nets.items()})


def _to_device(items: dict, device: torch.device) -> dict:
    items = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in items.items()}
    if device.type == "cuda":
        items = {k: v.contiguous(memory_format=torch.channels_last)
                 if torch.is_tensor(v) and v.dim() == 4 else v for k, v in items.items()}
    return items


@dataclass
class Loop:
    """What the hooks see and may change: the run's state after each step."""

    run: Path
    settings: TrainSettings
    model: object
    optimizers: dict
    nets: nn.ModuleDict            # unwrapped (model.nets may hold DDP wrappers)
    rank: int
    step: int
    epoch: int
    total: int                     # the step to stop at
    record: dict | None            # the checkpoint resumed from
    batch: int = 0                 # index of the last batch in its epoch
    end_of_epoch: bool = False
    losses: dict = field(default_factory=dict)
    last_good: int = 0             # the step of the last checkpoint written
    rows: list = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


class Hook:
    """detectron2's HookBase: the trainer calls every hook after each step and at the end."""

    def after_step(self, loop: Loop) -> None: ...

    def after_train(self, loop: Loop) -> None: ...


class LossLog(Hook):
    def after_step(self, loop: Loop) -> None:
        loop.rows.append({"step": loop.step, "epoch": loop.epoch, **{k: f"{v:.6g}" for k, v in loop.losses.items()}})

    def after_train(self, loop: Loop) -> None:
        if loop.rank == 0:
            plot_losses(loop.run)


class NonFiniteStop(Hook):
    """A NaN or infinite loss stops the run; the last good checkpoint stays."""

    def after_step(self, loop: Loop) -> None:
        bad = [k for k, v in loop.losses.items() if not math.isfinite(v)]
        if bad:
            raise InputError(
                f"loss {', '.join(bad)} became non-finite at step {loop.step}; stopped. The last good "
                f"checkpoint (step {loop.last_good}) is kept in {loop.run}: resume with `resume`, perhaps with "
                "a lower `lr`")


class TimeLimit(Hook):
    def after_step(self, loop: Loop) -> None:
        if loop.settings.time_limit and time.perf_counter() - loop.started >= loop.settings.time_limit:
            loop.total = loop.step  # out of time: the checkpointer saves now, and the loop stops


class Checkpointer(Hook):
    """Every `save_every` steps, at the end of each epoch and at the last step: weights, optimiser
    and RNG state, and the loss log, so that a resumed run takes exactly the next steps."""

    def after_step(self, loop: Loop) -> None:
        due = loop.settings.save_every and loop.step % loop.settings.save_every == 0
        if loop.rank == 0 and (due or loop.end_of_epoch or loop.step >= loop.total):
            next_epoch, next_batch = (loop.epoch + 1, 0) if loop.end_of_epoch else (loop.epoch, loop.batch + 1)
            save_checkpoint(loop.run, loop.model, loop.optimizers, loop.settings, loop.step, next_epoch,
                            next_batch, loop.nets)
            _write_losses(loop.run, loop.rows, loop.record["step"] if loop.record else None)
            loop.last_good = loop.step


HOOKS = (LossLog, NonFiniteStop, TimeLimit, Checkpointer)  # in this order: a bad step is never saved


def _open_run(settings: TrainSettings) -> Path:
    run = Path(settings.out)
    if steps_saved(run) and not settings.resume:
        raise InputError(f"{run} already holds a run; pass `resume` to continue it, or choose `out`")
    run.mkdir(parents=True, exist_ok=True)
    return run


def _loader(split, order: list[int], first: int, settings: TrainSettings, workers: int, device) -> DataLoader:
    # Loader workers only read and decode files; the order is ours, and the loader's own
    # generator keeps it from drawing on the global RNG (dropout's), so resume is exact.
    return DataLoader(Subset(split, order[first * settings.batch_size:]), batch_size=settings.batch_size,
                      shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(settings.seed))


def _run_epochs(loop: Loop, split, world: int, batches_per_epoch: int, hooks: list[Hook], bar) -> int:
    """The steps from the loop's position to its total; returns the images seen."""
    settings, model, images = loop.settings, loop.model, 0
    workers = (settings.workers if settings.workers is not None
               else (min(8, os.cpu_count() or 1) if model.device.type == "cuda" else 0))
    first_epoch, skip = loop.epoch, loop.record["batch_in_epoch"] if loop.record else 0
    for epoch in range(first_epoch, min(settings.epochs, settings.until_epoch or settings.epochs)):
        if loop.step >= loop.total:
            break
        loop.epoch = epoch
        model.start_epoch(epoch, settings.epochs, loop.optimizers, settings.lr or type(model).default_lr)
        order = _epoch_order(len(split), settings.seed, epoch)[loop.rank::world]
        first = skip if epoch == first_epoch else 0
        for b, items in enumerate(_loader(split, order, first, settings, workers, model.device), start=first):
            if loop.step >= loop.total:
                break
            loop.nets.train()
            loop.losses = model.train_step(_to_device(items, model.device), loop.step, loop.optimizers, settings.amp)
            loop.step, loop.batch, loop.end_of_epoch = loop.step + 1, b, b == batches_per_epoch - 1
            images += len(items["image"])
            for hook in hooks:
                hook.after_step(loop)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(loop.losses.items())[:3]})
    return images


def train(factory, settings: TrainSettings, progress: bool = True) -> dict:
    """Train `factory`'s model per `settings`; returns a summary. Resumes when asked."""
    from ovbench.formats.reader import AmodalSplit
    from ovbench.hub import resolve_data, resolve_pool

    rank, world = _distributed()
    device = _device(settings, world)
    run = _open_run(settings)
    split = AmodalSplit(resolve_data(settings.data, progress), settings.split, size=settings.size,
                        holdout=settings.holdout, part="fit")
    pool = open_pool(resolve_pool(settings.pool, progress), factory.name) if factory.needs_pool else None
    torch.manual_seed(settings.seed)
    model, optimizers, record = _build(factory, settings, run, device, pool, rank)
    if rank == 0:
        write_json(run / "settings.json", asdict(settings))
    batches_per_epoch = math.ceil(len(split) / (settings.batch_size * world))
    total = min(settings.epochs, settings.until_epoch or settings.epochs) * batches_per_epoch
    step = record["step"] if record else 0
    loop = Loop(run, settings, model, optimizers, model.nets, rank, step, record["epoch"] if record else 0,
                min(total, settings.max_steps or total), record, last_good=step)
    hooks = [hook() for hook in HOOKS]
    model.nets = _wrap_for_ddp(loop.nets, world)
    bar = tqdm(total=loop.total, initial=step, unit="step", desc=f"train {factory.name}",
               disable=not progress or rank != 0)
    try:
        with bar:
            images = _run_epochs(loop, split, world, batches_per_epoch, hooks, bar)
    finally:
        model.nets = loop.nets
    for hook in hooks:
        hook.after_train(loop)
    seconds = time.perf_counter() - loop.started
    return {"run": run, "steps": loop.step, "seconds": seconds, "rank": rank,
            "images_per_second": images / seconds if seconds else 0.0, "pretrained": model.pretrained_note}


def open_pool(path, model_name: str):
    from ovbench.formats.poolfile import SilhouettePool

    if not path:
        raise InputError(f"{model_name} needs the silhouette pool: pass --pool FILE.h5 "
                        "(make one with `ovbench generate pool`)")
    if not Path(path).is_file():
        raise InputError(f"silhouette pool not found: {path} (make one with `ovbench generate pool`)")
    return SilhouettePool(Path(path), in_memory=True)
