"""Training speed per model, in one run on this machine.

    python bench/train.py [--models deeplab,pix2pix,segan,seganv] [--steps 10]

On a GPU: images/s at 256² for batch 4 and for the largest batch that fits (doubling until out of
memory, up to 64), in fp32 and with bfloat16 autocast, channels-last. On the CPU: the `--preset
tiny` figure (64², batch 8), and on both seganv's rate as a share of deeplab's at the same batch and
size (target ≥ 40 %). Synthetic batches (no data loading), so this is the models' cost.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ovbench.baselines import get_model

from ovbench.training_settings import TrainSettings


class RandomPool:
    """Stand-in silhouette pool: ellipses, seen from the horizon."""

    def __init__(self, size: int, count: int = 64):
        yy, xx = np.mgrid[:size, :size]
        rng = np.random.default_rng(0)
        self.masks = [((yy - size / 2) / (size * rng.uniform(0.15, 0.3))) ** 2
                      + ((xx - size / 2) / (size * rng.uniform(0.25, 0.45))) ** 2 <= 1 for _ in range(count)]
        self.elevation = np.zeros(count, np.float32)
        self.bbox = np.array([_box(m) for m in self.masks], np.int32)

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, index):
        return self.masks[index]


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


def batch(size: int, count: int, device) -> dict:
    image = torch.rand(count, 3, size, size, device=device)
    amodal = torch.zeros(count, 1, size, size, device=device)
    amodal[:, :, size // 4: 3 * size // 4, size // 8: 7 * size // 8] = 1
    visible = amodal.clone()
    visible[:, :, :, size // 2:] = 0
    box = torch.tensor([[size / 8, size / 4, 3 * size / 8, size / 2]] * count, device=device)
    return {"image": image, "appearance": image.clone(), "amodal": amodal, "visible": visible,
            "box": box, "occlude_rate": torch.full((count,), 0.5)}


def rate(name: str, size: int, count: int, device: str, amp: bool, steps: int, preset=None) -> float:
    cls = get_model(name)
    settings = TrainSettings(model=name, data="", size=size, preset=preset)
    model = cls(cls.default_config(settings), pool=RandomPool(size), device=device).to(device)
    optimizers = model.make_optimizers(cls.default_lr)
    items = batch(size, count, device)
    if device == "cuda":
        items = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                 for k, v in items.items()}
    model.nets.train()
    for step in range(2):  # warm-up
        model.train_step(items, step, optimizers, amp)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for step in range(steps):
        model.train_step(items, step, optimizers, amp)
    if device == "cuda":
        torch.cuda.synchronize()
    return count * steps / (time.perf_counter() - started)


def largest_batch(name, size, amp, steps, limit) -> tuple[int, float]:
    best = (4, rate(name, size, 4, "cuda", amp, steps))
    count = 8
    while count <= limit:
        try:
            best = (count, rate(name, size, count, "cuda", amp, steps))
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        count *= 2
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="deeplab,pix2pix,segan,seganv")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True,
                        help="also the CPU --preset tiny figure")
    parser.add_argument("--cpu-full", action="store_true",
                        help="also the full-size models on the CPU (256², batch 4, a few steps)")
    args = parser.parse_args()
    names = args.models.split(",")
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        print(f"GPU: {torch.cuda.get_device_name(0)}, 256², channels-last")
        for amp in (False, True):
            rates = {}
            for name in names:
                rates[name] = rate(name, 256, 4, "cuda", amp, args.steps)
                count, most = largest_batch(name, 256, amp, args.steps, args.max_batch)
                print(f"{name:8s} {'bf16 AMP' if amp else 'fp32    '}: batch 4 {rates[name]:7.1f} img/s; "
                      f"batch {count} {most:7.1f} img/s", flush=True)
            share_of_deeplab(rates, "GPU batch 4 " + ("bf16" if amp else "fp32"))
    if not args.cpu:
        return
    torch.set_num_threads(2)
    rates = {}
    for name in names:
        rates[name] = rate(name, 64, 8, "cpu", False, max(2, args.steps // 3), "tiny")
        print(f"{name:8s} CPU --preset tiny (64², batch 8): {rates[name]:.1f} img/s", flush=True)
    share_of_deeplab(rates, "CPU tiny")
    if args.cpu_full:
        rates = {}
        for name in names:
            rates[name] = rate(name, 256, 4, "cpu", False, 2)
            print(f"{name:8s} CPU full size (256², batch 4): {rates[name]:.2f} img/s", flush=True)
        share_of_deeplab(rates, "CPU full size")


def share_of_deeplab(rates: dict, setting: str) -> None:
    if "seganv" in rates and "deeplab" in rates:
        print(f"seganv runs at {rates['seganv'] / rates['deeplab']:.0%} of deeplab's img/s ({setting}; "
              "target ≥ 40 %)")


if __name__ == "__main__":
    main()
