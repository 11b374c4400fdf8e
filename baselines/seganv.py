"""`seganv`: the coupled-discriminator model of Yan et al., "Visualizing the Invisible" (ICCV 2019),
SeGAN's successor for vehicles and the suite's flagship (BASELINES §2).

- G1 (mask): EdgeConnect's dilated residual generator on concat(I, M̂) → M (sigmoid). M̂, the
  incomplete mask, is the dataset's visible mask (the paper's Mask R-CNN step, done offline).
- Coupled discriminators, eq. (1)-(2): D_obj sees masks alone — real: M_gt and a silhouette M_s
  from the 3D pool (rescaled to M_gt's box), each weighted ½; fake: M. D_ins sees (mask, I, M̂) —
  real: M_gt; fake: M and the mismatched M_s, each ½. Both are 70×70 PatchGANs plus one FC layer.
  BCE with logits, non-saturating generator terms. `--discriminator standard` replaces them with
  one conditional discriminator on (mask, I, M̂), real M_gt, fake M, no pool (Table I's ablation).
- L_seg, eq. (3) = adversarial + 10·L1(M, M_gt) + 1·perceptual (VGG-19 on the mask as RGB).
- G2 (appearance): the same generator, 5 input channels [image, visible slot, M], shared by two
  paths — path 1: (I, M̂, M) → I_gt; path 2: (Î, 0, M) → I_gt with Î the ground truth with the
  vehicle removed — each with a PatchGAN D2, 10·L1 and perceptual terms. `--paths 1` drops path 2.
  G2 trains on M_gt (G1 and G2 are trained separately in the paper); test uses path 1 on M.
- Iterative refinement: I_r = G2(G1(I)), then I'_r = G2(G1(I_r)) …; `--iterations K` (default 2,
  the paper's best). The output of G2 is painted into M ∖ M̂ of the input.
- Adam lr 1e-4, betas (0.5, 0.999).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ovbench.errors import UserError

from .networks import (DilatedResidualGenerator, PatchDiscriminator, PatchFCDiscriminator,
                       VGGPerceptualLoss, bce_gan, hub_weights, init_normal)
from .registry import register
from .training import Trainable, paint_back, scalars

VGG19_FILE = "vgg19-dcbb9e9d.pth"
L1_WEIGHT, PERCEPTUAL_WEIGHT = 10.0, 1.0


def pool_masks(pool, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One pool silhouette per target mask, cropped to its box and rescaled onto the target's box
    (so that location carries no information), as (B, 1, H, W) float."""
    out = torch.zeros_like(targets)
    for k, target in enumerate(targets[:, 0] > 0.5):
        ys, xs = torch.nonzero(target, as_tuple=True)
        if len(ys) == 0:
            continue
        index = int(torch.randint(len(pool), (1,), generator=generator))
        silhouette = torch.from_numpy(np.ascontiguousarray(pool[index]))
        sy, sx = torch.nonzero(silhouette, as_tuple=True)
        crop = silhouette[sy.min():sy.max() + 1, sx.min():sx.max() + 1].float()
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        resized = F.interpolate(crop[None, None], size=(h, w), mode="bilinear", align_corners=False)
        out[k, 0, ys.min():ys.min() + h, xs.min():xs.min() + w] = (resized[0, 0] >= 0.5).float()
    return out


def object_discriminator_loss(d_obj, truth, silhouettes, fake):
    """Eq. (1), discriminator side: real = M_gt and the pool silhouette M_s (½ each), fake = M."""
    return (0.5 * bce_gan(d_obj(truth), True) + 0.5 * bce_gan(d_obj(silhouettes), True)
            + bce_gan(d_obj(fake.detach()), False))


def instance_discriminator_loss(d_ins, condition, truth, silhouettes, fake):
    """Eq. (2), discriminator side: real = (M_gt, I, M̂); fake = (M, I, M̂) and the mismatched
    (M_s, I, M̂), ½ each. `condition(m)` builds the 5-channel input."""
    return (bce_gan(d_ins(condition(truth)), True)
            + 0.5 * bce_gan(d_ins(condition(fake.detach())), False)
            + 0.5 * bce_gan(d_ins(condition(silhouettes)), False))


def coupled_generator_loss(d_obj, d_ins, condition, fake):
    """The generator's side of eqs. (1) + (2), non-saturating: fool D_obj, and D_ins at weight ½."""
    return bce_gan(d_obj(fake), True) + 0.5 * bce_gan(d_ins(condition(fake)), True)


@register("seganv", "yan2019", "coupled")
class SeganV(Trainable):
    """Yan et al. 2019: G1 + coupled D_obj/D_ins with 3D-pool silhouettes, two-path G2, iterations."""

    default_lr = 1e-4
    needs_pool = True

    def __init__(self, config: dict, pool=None, device="cpu", pretrained=None):
        super().__init__(config, pool, pretrained, device)
        if config["discriminator"] not in ("coupled", "standard") or config["paths"] not in (1, 2):
            raise UserError("--discriminator must be coupled or standard and --paths 1 or 2")
        base, blocks, ndf, size = config["base"], config["blocks"], config["ndf"], config["size"]
        self.nets["g1"] = init_normal(DilatedResidualGenerator(4, 1, base, blocks))
        if config["discriminator"] == "coupled":
            self.nets["d_obj"] = init_normal(PatchFCDiscriminator(1, size, ndf))
            self.nets["d_ins"] = init_normal(PatchFCDiscriminator(5, size, ndf))
        else:
            self.nets["d_std"] = init_normal(PatchFCDiscriminator(5, size, ndf))
        self.nets["g2"] = init_normal(DilatedResidualGenerator(5, 3, base, blocks))
        self.nets["d2"] = init_normal(PatchDiscriminator(3 + 1, ndf))
        self.perceptual = None
        self.vgg_weights = hub_weights(pretrained, VGG19_FILE)
        self.pretrained_note = (f"VGG-19 perceptual loss: ImageNet ({self.vgg_weights.name})"
                                if self.vgg_weights else "none: VGG-19 perceptual loss randomly initialised")

    @classmethod
    def default_config(cls, settings) -> dict:
        tiny = settings.preset == "tiny"
        config = {"size": settings.size, "base": 16 if tiny else 64, "blocks": 2 if tiny else 8,
                  "ndf": 16 if tiny else 64, "perceptual_stages": 2 if tiny else 5,
                  "discriminator": "coupled", "paths": 2, "iterations": 2, "seed": settings.seed}
        return {**config, **settings.options}

    def make_optimizers(self, lr):
        return {name: torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
                for name, net in self.nets.items()}

    def _perceptual(self, x, y):
        if self.perceptual is None:
            # Without ImageNet weights VGG is random: draw it from its own seed, not the training
            # RNG, so that it is the same network however a run was interrupted and resumed.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.get("seed", 0))
                self.perceptual = VGGPerceptualLoss(self.vgg_weights,
                                                    self.config["perceptual_stages"]).to(self.device)
        return self.perceptual(x, y)

    def _mask(self, image, visible):
        return torch.sigmoid(self.nets["g1"](torch.cat([image, visible], 1)).float())

    def _paint(self, image, slot, mask):
        return torch.sigmoid(self.nets["g2"](torch.cat([image, slot, mask], 1)).float())

    @staticmethod
    def _step(optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def train_step(self, items, step, optimizers, amp):
        image, visible, truth, target = items["image"], items["visible"], items["amodal"], items["appearance"]
        losses = {}
        with self.autocast(amp):
            mask = self._mask(image, visible)

            def conditioned(m):
                return torch.cat([m, image, visible], 1)

            if self.config["discriminator"] == "coupled":
                generator = torch.Generator().manual_seed(self.config.get("seed", 0) * 1_000_003 + step)
                silhouettes = pool_masks(self.pool, truth, generator).to(truth.device)
                d_obj_loss = object_discriminator_loss(self.nets["d_obj"], truth, silhouettes, mask)
                d_ins_loss = instance_discriminator_loss(self.nets["d_ins"], conditioned, truth,
                                                         silhouettes, mask)
                losses.update(d_obj=d_obj_loss, d_ins=d_ins_loss)
        if self.config["discriminator"] == "coupled":
            self._step(optimizers["d_obj"], d_obj_loss)
            self._step(optimizers["d_ins"], d_ins_loss)
            with self.autocast(amp):
                adversarial = coupled_generator_loss(self.nets["d_obj"], self.nets["d_ins"], conditioned, mask)
        else:
            with self.autocast(amp):
                d_loss = 0.5 * (bce_gan(self.nets["d_std"](conditioned(truth)), True)
                                + bce_gan(self.nets["d_std"](conditioned(mask.detach())), False))
            self._step(optimizers["d_std"], d_loss)
            losses["d_std"] = d_loss
            with self.autocast(amp):
                adversarial = bce_gan(self.nets["d_std"](conditioned(mask)), True)
        with self.autocast(amp):
            l1 = F.l1_loss(mask, truth)
            g1_loss = adversarial + L1_WEIGHT * l1 + PERCEPTUAL_WEIGHT * self._perceptual(mask, truth)
        self._step(optimizers["g1"], g1_loss)
        losses.update(g1_adv=adversarial, g1_l1=l1, g1=g1_loss)

        # G2 on the ground-truth mask; path 2 sees the image with the vehicle removed.
        with self.autocast(amp):
            paths = [(image, visible)]
            if self.config["paths"] == 2:
                paths.append((target * (1 - truth), torch.zeros_like(visible)))
            outputs = [self._paint(img, slot, truth) for img, slot in paths]
            real = torch.cat([target, truth], 1)
            d2_loss = sum(0.5 * (bce_gan(self.nets["d2"](real), True)
                                 + bce_gan(self.nets["d2"](torch.cat([o.detach(), truth], 1)), False))
                          for o in outputs)
        self._step(optimizers["d2"], d2_loss)
        with self.autocast(amp):
            g2_loss = sum(bce_gan(self.nets["d2"](torch.cat([o, truth], 1)), True)
                          + L1_WEIGHT * F.l1_loss(o, target)
                          + PERCEPTUAL_WEIGHT * self._perceptual(o, target) for o in outputs)
        self._step(optimizers["g2"], g2_loss)
        losses.update(d2=d2_loss, g2=g2_loss)
        return scalars(**losses)

    def forward_predict(self, image, visible, box):
        current = image
        for _ in range(max(1, int(self.config.get("iterations", 2)))):
            mask = self._mask(current, visible)
            painted = self._paint(current, visible, (mask >= 0.5).float())
            current = paint_back(image, painted, mask, visible)
        return mask, current
