"""Training for every learned model of the zoo: `ovbench train --model NAME --data DIR`.

The model (learned.py) makes its optimisers and runs one step; this module does the rest the same
way for all: seeded data order, mixed precision, channels-last, DDP under torchrun, checkpoints
(checkpoints.py: safetensors + JSON, never pickle), exact resume, loss CSV and plot, a stop on a
non-finite loss that keeps the last good checkpoint, and the model's per-epoch hook (schedules).
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file
from tqdm import tqdm

from ovbench.errors import InputError
from ovbench.formats.fileio import atomic_path, write_json
from ovbench.training_settings import TrainSettings

from .checkpoints import load_model_checkpoint, restore_optimizer, save_checkpoint, steps_saved


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


def _check_finite(losses: dict, step: int, last_good: int, run: Path) -> None:
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise InputError(
            f"loss {', '.join(bad)} became non-finite at step {step}; stopped. The last good "
            f"checkpoint (step {last_good}) is kept in {run}: resume with `resume`, perhaps with a "
            "lower `lr`")


def train(factory, settings: TrainSettings, progress: bool = True) -> dict:
    """Train `factory`'s model per `settings`; returns a summary. Resumes when asked."""
    from ovbench.formats.reader import AmodalSplit
    from ovbench.hub import resolve_data, resolve_pool

    rank, world = _distributed()
    device = _device(settings, world)
    run = Path(settings.out)
    if steps_saved(run) and not settings.resume:
        raise InputError(f"{run} already holds a run; pass `resume` to continue it, or choose `out`")
    run.mkdir(parents=True, exist_ok=True)

    split = AmodalSplit(resolve_data(settings.data, progress), settings.split, size=settings.size,
                        holdout=settings.holdout, part="fit")
    pool = open_pool(resolve_pool(settings.pool, progress), factory.name) if factory.needs_pool else None
    torch.manual_seed(settings.seed)
    model, optimizers, record = _build(factory, settings, run, device, pool, rank)
    lr = settings.lr or factory.default_lr
    nets = model.nets
    model.nets = _wrap_for_ddp(nets, world)
    step, epoch0, skip = (record["step"], record["epoch"], record["batch_in_epoch"]) if record else (0, 0, 0)
    if rank == 0:
        write_json(run / "settings.json", asdict(settings))

    batches_per_epoch = math.ceil(len(split) / (settings.batch_size * world))
    loader_workers = (settings.workers if settings.workers is not None
                      else (min(8, os.cpu_count() or 1) if model.device.type == "cuda" else 0))
    last_epoch = min(settings.epochs, settings.until_epoch or settings.epochs)
    total = last_epoch * batches_per_epoch
    if settings.max_steps:
        total = min(total, settings.max_steps)
    rows, last_good, started, images_done = [], step, time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, unit="step", desc=f"train {factory.name}",
               disable=not progress or rank != 0)
    try:
        for epoch in range(epoch0, last_epoch):
            if step >= total:
                break
            model.start_epoch(epoch, settings.epochs, optimizers, lr)
            order = _epoch_order(len(split), settings.seed, epoch)[rank::world]
            first = skip if epoch == epoch0 else 0
            # Loader workers only read and decode files; the order is ours, and the loader's own
            # generator keeps it from drawing on the global RNG (dropout's), so resume is exact.
            loader = torch.utils.data.DataLoader(
                torch.utils.data.Subset(split, order[first * settings.batch_size:]),
                batch_size=settings.batch_size, shuffle=False, num_workers=loader_workers,
                pin_memory=model.device.type == "cuda", generator=torch.Generator().manual_seed(settings.seed))
            for b, items in enumerate(loader, start=first):
                if step >= total:
                    break
                nets.train()
                losses = model.train_step(_to_device(items, model.device), step, optimizers, settings.amp)
                step += 1
                images_done += len(items["image"])
                _check_finite(losses, step, last_good, run)
                rows.append({"step": step, "epoch": epoch, **{k: f"{v:.6g}" for k, v in losses.items()}})
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(losses.items())[:3]})
                end_of_epoch = b == batches_per_epoch - 1
                if settings.time_limit and time.perf_counter() - started >= settings.time_limit:
                    total = step  # out of time: save now and stop
                due = settings.save_every and step % settings.save_every == 0
                if rank == 0 and (due or end_of_epoch or step >= total):
                    next_epoch, next_batch = (epoch + 1, 0) if end_of_epoch else (epoch, b + 1)
                    save_checkpoint(run, model, optimizers, settings, step, next_epoch, next_batch, nets)
                    _write_losses(run, rows, record["step"] if record else None)
                    last_good = step
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
    from ovbench.formats.poolfile import SilhouettePool

    if not path:
        raise InputError(f"{model_name} needs the silhouette pool: pass --pool FILE.h5 "
                        "(make one with `ovbench generate pool`)")
    if not Path(path).is_file():
        raise InputError(f"silhouette pool not found: {path} (make one with `ovbench generate pool`)")
    return SilhouettePool(Path(path), in_memory=True)
