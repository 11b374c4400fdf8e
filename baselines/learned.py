"""The base of every learned model of the zoo, and the helpers their steps share.

A learned model subclasses `Trainable` and provides:
  options           its switches (`ModelOption`s), with their defaults: the CLI's flags come from here
  base_config(s)    the architecture for training settings `s` (size, widths, preset)
  make_optimizers   its optimisers by name
  train_step        one step on a batch of instances (GANs step several optimisers)
  forward_predict   (amodal probabilities, appearance or None) at the model's own size
and may override `start_epoch` (learning-rate schedules, training phases). The trainer
(training.py) and the checkpoint format (checkpoints.py) do the rest the same way for all.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ovbench.evaluation.protocol import Batch, Prediction

from .registry import ModelOption, option_values


class Trainable:
    """Networks in `self.nets`; `config` rebuilds them: `Model(config, pool=, device=, pretrained=)`.
    `pretrained`: "imagenet" (torchvision's weights: hub cache, else downloaded), a weights file,
    or None (random; a checkpoint's weights follow)."""

    name = "trainable"
    learned = True
    needs_pool = False
    default_lr = 2e-4
    options: tuple[ModelOption, ...] = ()

    def __init__(self, config: dict, *, pool=None, device: str = "cpu", pretrained: str | None = None):
        self.config = dict(config)
        self.pool = pool
        self.device = torch.device(device)
        self.nets = nn.ModuleDict()
        self.pretrained_note = "none (random initialisation)"

    # -- to be provided by each model -------------------------------------------------------
    @classmethod
    def base_config(cls, settings) -> dict:
        """The architecture for these training settings (size, widths, preset)."""
        raise NotImplementedError

    def make_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, items: dict, step: int, optimizers: dict, amp: bool) -> dict[str, float]:
        raise NotImplementedError

    def forward_predict(self, image, visible, box) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def start_epoch(self, epoch: int, epochs: int, optimizers: dict, lr: float) -> None:
        """Called before each epoch (and again on resume): a constant learning rate by default."""

    # -- shared ----------------------------------------------------------------------------
    @classmethod
    def default_config(cls, settings) -> dict:
        """The architecture plus the model's options (defaults overlaid with settings.options)."""
        return {**cls.base_config(settings), **option_values(cls, settings.options)}

    @classmethod
    def build(cls, checkpoint=None, pool=None, device: str = "cpu", options: dict | None = None):
        """The registry's contract: a trained model from its checkpoint (default runs/NAME)."""
        from .checkpoints import load_for_evaluation

        return load_for_evaluation(cls, checkpoint, pool, device, option_values(cls, options, evaluation=True))

    @classmethod
    def status(cls) -> str:
        from .checkpoints import checkpoint_status

        return checkpoint_status(cls)

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
    return F.interpolate(x, size=(size, size), mode=mode, **kwargs)


def paint_back(image, generated, mask, visible) -> torch.Tensor:
    """The input everywhere except the predicted hidden part (mask ∖ visible), which is painted."""
    hidden = ((mask >= 0.5) & (visible < 0.5)).float()
    return image * (1 - hidden) + generated * hidden


def straight_through(probability: torch.Tensor) -> torch.Tensor:
    """The mask thresholded at 0.5 in the forward pass, the identity in the backward pass: a
    discriminator then sees generated masks as binary as real ones, and cannot tell them by value."""
    return (probability >= 0.5).float() + probability - probability.detach()


def set_learning_rate(optimizers: dict, names, lr: float) -> None:
    for name in names:
        for group in optimizers[name].param_groups:
            group["lr"] = lr
