"""Network building blocks shared by the zoo, as the reference code defines them (BASELINES.md).

- U-Net generator and 70×70 PatchGAN: junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`.
- Dilated residual generator: knazeri/edge-connect `src/networks.py` (G1/G2 of Yan et al.).
- Patch discriminator + one FC layer: D_obj / D_ins of Yan et al. (our reading, BASELINES §2).
- VGG-19 perceptual loss: EdgeConnect's `PerceptualLoss` (relu1_1 … relu5_1, weights 1).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ovbench.errors import InputError


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix initialisation: conv weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


class _UnetBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, concatenated with the input."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, sub=None,
                 outermost=False, innermost=False, dropout=False, out_channels: int | None = None):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        down = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=False)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, out_channels, 4, 2, 1)
            layers = [down, sub, nn.ReLU(True), up]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, nn.BatchNorm2d(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), sub, nn.ReLU(True), up,
                      nn.BatchNorm2d(outer)] + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """pix2pix U-Net: `downs` halvings (8 for 256² input), ngf 64, dropout in three inner decoders.
    Returns raw outputs (the caller applies tanh or sigmoid)."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, downs: int = 8):
        super().__init__()
        block = _UnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(downs - 5):
            block = _UnetBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
        block = _UnetBlock(ngf * 4, ngf * 8, sub=block)
        block = _UnetBlock(ngf * 2, ngf * 4, sub=block)
        block = _UnetBlock(ngf, ngf * 2, sub=block)
        self.model = _UnetBlock(out_channels, ngf, in_channels=in_channels, sub=block,
                                outermost=True, out_channels=out_channels)

    def forward(self, x):
        return self.model(x)


def unet_downs(size: int) -> int:
    """Levels for a square input: 8 at 256², fewer for small inputs (the innermost is 1×1)."""
    if size & (size - 1) or size < 32:
        raise InputError(f"U-Net models need a power-of-two size ≥ 32, got {size}")
    return min(8, int(math.log2(size)))


class PatchDiscriminator(nn.Module):
    """pix2pix "basic" PatchGAN, n_layers 3: 70×70 receptive field, 30×30 logits at 256²."""

    def __init__(self, in_channels: int, ndf: int = 64, layers: int = 3):
        super().__init__()
        seq = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < layers else 1
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                    nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def patch_map_size(size: int, layers: int = 3) -> int:
    """Side of the PatchGAN's logit map for a size² input (30 at 256)."""
    side = size
    for _ in range(layers):
        side = side // 2
    return side - 2


class PatchFCDiscriminator(nn.Module):
    """Yan et al.'s D_obj / D_ins: "the same structure [PatchGAN] plus an extra FC layer":
    the patch logits flattened into Linear(map², 1) (our reading; BASELINES §2)."""

    def __init__(self, in_channels: int, size: int, ndf: int = 64):
        super().__init__()
        self.patch = PatchDiscriminator(in_channels, ndf)
        self.fc = nn.Linear(patch_map_size(size) ** 2, 1)

    def forward(self, x):
        return self.fc(self.patch(x).flatten(1))


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(dilation), nn.Conv2d(channels, channels, 3, dilation=dilation),
            nn.InstanceNorm2d(channels, track_running_stats=False), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, track_running_stats=False),
        )

    def forward(self, x):
        return x + self.block(x)


class DilatedResidualGenerator(nn.Module):
    """EdgeConnect's generator, G1/G2 of Yan et al.: 7×7 conv, two stride-2 downsamplings
    (256 → 64), `blocks` residual blocks with dilation 2, two upsamplings, 7×7 conv out."""

    def __init__(self, in_channels: int, out_channels: int, base: int = 64, blocks: int = 8):
        super().__init__()

        def norm_relu(c):
            return [nn.InstanceNorm2d(c, track_running_stats=False), nn.ReLU(True)]

        self.model = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, base, 7), *norm_relu(base),
            nn.Conv2d(base, base * 2, 4, 2, 1), *norm_relu(base * 2),
            nn.Conv2d(base * 2, base * 4, 4, 2, 1), *norm_relu(base * 4),
            *[_ResidualBlock(base * 4, 2) for _ in range(blocks)],
            nn.ConvTranspose2d(base * 4, base * 2, 4, 2, 1), *norm_relu(base * 2),
            nn.ConvTranspose2d(base * 2, base, 4, 2, 1), *norm_relu(base),
            nn.ReflectionPad2d(3), nn.Conv2d(base, out_channels, 7),
        )

    def forward(self, x):
        return self.model(x)


VGG_LAYERS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in vgg19.features


DOWNLOAD_TIMEOUT = float(os.environ.get("OVBENCH_DOWNLOAD_TIMEOUT", "20"))  # seconds per read


def imagenet_state(pretrained: str | Path | None, weights, label: str) -> tuple[dict | None, str]:
    """ImageNet weights as the papers initialise, and a note saying what was used.

    `pretrained`: "imagenet" (torchvision's weights API: the torch hub cache, downloaded there when
    missing), "none" (opted out), a weights file, or None (random: a checkpoint's weights follow).
    `weights`: the torchvision weights enum member (e.g. ResNet18_Weights.IMAGENET1K_V1). Without
    network or cache the state is None and the note starts with "random". Only tensors are loaded
    (`weights_only=True`), never pickled objects."""
    if pretrained is None:
        return None, "none (random initialisation)"
    if pretrained == "none":
        return None, "random (--no-pretrained)"
    if pretrained != "imagenet":
        path = Path(pretrained)
        if not path.is_file():
            raise InputError(f"pretrained weights file not found: {path}")
        return torch.load(path, map_location="cpu", weights_only=True), f"ImageNet {label} ({path.name})"
    file_name = weights.url.rsplit("/", 1)[-1]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # torch.hub announces each download try
            state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False,
                                                       check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(getattr(exc, "reason", exc)).splitlines()[0][:120]
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        return None, (f"random: ImageNet {label} weights could not be had ({reason}); put {file_name} "
                      f"in {cache} or pass --pretrained FILE")
    finally:
        socket.setdefaulttimeout(previous)
    return state, f"ImageNet {label} ({file_name})"


class VGGPerceptualLoss(nn.Module):
    """L1 between VGG-19 activations at relu1_1 … relu5_1 (weights 1), inputs in [0, 1].
    `state`: ImageNet weights (`imagenet_state`), or None for random (recorded by the caller)."""

    def __init__(self, state: dict | None, stages: int = 5):
        super().__init__()
        from torchvision.models import vgg19

        vgg = vgg19(weights=None)
        if state is not None:
            vgg.load_state_dict(state)
        self.layers = VGG_LAYERS[:stages]
        self.features = vgg.features[: self.layers[-1] + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1))

    def forward(self, x, y):
        """Σ over stages of L1(features(x), features(y)). `x` may stack k batches against one `y`
        (G2's two paths share their target): y's features are computed once, without a graph, and
        the loss is the sum of the k batches' losses."""
        if x.shape[1] == 1:  # masks: repeated to three channels
            x, y = x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)
        repeats = x.shape[0] // y.shape[0]
        with torch.no_grad():
            targets, h = [], (y - self.mean) / self.std
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i in self.layers:
                    targets.append(h.repeat(repeats, 1, 1, 1))
        loss, h = x.new_zeros(()), (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.layers:
                loss = loss + F.l1_loss(h, targets[self.layers.index(i)])
        return loss * repeats


def four_channel_conv1(conv: nn.Conv2d, mask_init: str = "mean") -> nn.Conv2d:
    """conv1 taking RGB + mask: RGB filters copied; the mask filter is their mean ('mean') or a
    copy of the red filter ('red', as SeGAN's code does)."""
    new = nn.Conv2d(4, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        new.weight[:, :3] = conv.weight
        new.weight[:, 3:] = (conv.weight[:, :1] if mask_init == "red"
                             else conv.weight.mean(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def bce_gan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss with logits (pix2pix 'vanilla'; the non-saturating G term when real=True)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
