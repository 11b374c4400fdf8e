"""`seganv`: the coupled-discriminator model of Yan et al., "Visualizing the Invisible" (ICCV 2019),
SeGAN's successor for vehicles and the suite's flagship (BASELINES §2).

- G1 (mask): EdgeConnect's dilated residual generator on concat(I, M̂) → M (sigmoid). M̂, the
  incomplete mask, is the dataset's visible mask (the paper's Mask R-CNN step F, done offline).
- Coupled discriminators, eq. (1)-(2): D_obj sees masks alone — real: M_gt and a silhouette M_s
  from the 3D pool, each weighted ½; fake: M. D_ins sees (mask, I, M̂) — real: M_gt; fake: M and
  the mismatched M_s, each ½. Both are 70×70 PatchGANs plus one FC layer. BCE with logits,
  non-saturating generator terms. `--discriminator standard` replaces them with one conditional
  discriminator on (mask, I, M̂), real M_gt, fake M, no pool (Table I's ablation).
  M_s keeps its aspect ratio, fitted inside M_gt's box on its ground line, drawn from views at most
  `--pool-max-elevation` degrees up (silhouettes.py). Generated masks reach every discriminator
  thresholded (straight-through), so that D cannot tell them from the binary real ones by value.
- L_seg, eq. (3) = adversarial + 10·reconstruction(M, M_gt) + 1·perceptual (VGG-19 on the mask as
  RGB). Deviation, on purpose: the reconstruction term is BCE by default (`--mask-loss l1` is the
  paper's L1). On sigmoid outputs L1's gradient vanishes where the network is confidently wrong
  (a hidden pixel at p = 0.01 gets ~1/40 of BCE's push), and heavily occluded vehicles are exactly
  those pixels: on the 3k-image GPU run seganv trailed deeplab (BCE) most at occlusion ≥ 0.5
  (IoU 0.706 vs 0.799).
- G2 (appearance): the same generator, 5 input channels [image, visible slot, M], shared by two
  paths — path 1: (I, M̂, M) → I_gt; path 2: (Î, 0, M) → I_gt with Î the ground truth with the
  vehicle removed — each with a PatchGAN D2, 10·L1 and perceptual terms. `--paths 1` drops path 2.
- Schedule (`--schedule paper`): G1 and G2 trained separately (G2 on M_gt) at the learning rate
  (1e-4) for the first half of the epochs, at a tenth of it for the next 30 %, then end to end at a
  hundredth (1e-6) for the last 20 %: G2 paints on G1's thresholded mask and its losses reach G1.
  `--schedule constant` keeps one rate and separate training throughout.
- Iterative refinement, I_r = G2(G1(F(I))), then I'_r = G2(G1(F(I_r))) …: each iteration's
  incomplete mask is F of the recovered image. F is offline here, and the recovered image shows
  the vehicle wherever the previous iteration painted it, so F(I_r) = M̂ ∪ M_prev (thresholded).
  `--iterations K` (default 2, the paper's best); G2's output is painted into M ∖ M̂ of the input.
- Adam, betas (0.5, 0.999).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import VGG19_Weights

from .learned import Trainable, paint_back, scalars, set_learning_rate, straight_through
from .networks import (
    DilatedResidualGenerator,
    PatchDiscriminator,
    PatchFCDiscriminator,
    VGGPerceptualLoss,
    bce_gan,
    imagenet_state,
    init_normal,
)
from .registry import ModelOption, register
from .silhouettes import SilhouetteBank

L1_WEIGHT, PERCEPTUAL_WEIGHT = 10.0, 1.0
# (share of the epochs at which a phase starts, learning-rate factor, G2 on G1's mask end to end)
PAPER_SCHEDULE = ((0.0, 1.0, False), (0.5, 0.1, False), (0.8, 0.01, True))
BANK_SIDE = 128


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


def schedule_phase(epoch: int, epochs: int, schedule: str) -> tuple[float, bool]:
    """(learning-rate factor, end to end) for an epoch of `epochs`."""
    if schedule == "constant":
        return 1.0, False
    share = epoch / epochs
    return next((factor, joint) for start, factor, joint in reversed(PAPER_SCHEDULE) if share >= start)


@register("seganv", "yan2019", "coupled")
class SeganV(Trainable):
    """Yan et al. 2019: G1 + coupled D_obj/D_ins with 3D-pool silhouettes, two-path G2, iterations."""

    default_lr = 1e-4
    needs_pool = True
    options = (
        ModelOption("discriminator", "coupled", "coupled D_obj + D_ins, or one standard D (Table I)",
                    ("coupled", "standard")),
        ModelOption("paths", 2, "G2's paths: 2, or 1 without the background path (Table I)", (1, 2)),
        ModelOption("iterations", 2, "refinement iterations at prediction (Table II)", (1, 2, 3, 4),
                    at_evaluation=True),
        ModelOption("mask_loss", "bce", "G1's reconstruction term: bce, or the paper's l1", ("bce", "l1")),
        ModelOption("schedule", "paper", "paper: separate, /10, then end to end at /100; or constant",
                    ("paper", "constant")),
        ModelOption("pool_max_elevation", 10.0, "pool views at most this many degrees up feed D_obj"),
    )

    def __init__(self, config: dict, *, pool=None, device="cpu", pretrained=None):
        super().__init__(config, pool=pool, device=device, pretrained=pretrained)
        base, blocks, ndf, size = config["base"], config["blocks"], config["ndf"], config["size"]
        self.nets["g1"] = init_normal(DilatedResidualGenerator(4, 1, base, blocks))
        if config["discriminator"] == "coupled":
            self.nets["d_obj"] = init_normal(PatchFCDiscriminator(1, size, ndf))
            self.nets["d_ins"] = init_normal(PatchFCDiscriminator(5, size, ndf))
        else:
            self.nets["d_std"] = init_normal(PatchFCDiscriminator(5, size, ndf))
        self.nets["g2"] = init_normal(DilatedResidualGenerator(5, 3, base, blocks))
        self.nets["d2"] = init_normal(PatchDiscriminator(3 + 1, ndf))
        self.vgg_state, self.pretrained_note = imagenet_state(pretrained, VGG19_Weights.IMAGENET1K_V1,
                                                              "VGG-19 (perceptual loss)")
        self.perceptual = None
        self.bank = None
        self.end_to_end = False

    @classmethod
    def base_config(cls, settings) -> dict:
        tiny = settings.preset == "tiny"
        return {"size": settings.size, "base": 16 if tiny else 64, "blocks": 2 if tiny else 8,
                "ndf": 16 if tiny else 64, "perceptual_stages": 2 if tiny else 5, "seed": settings.seed}

    def make_optimizers(self, lr):
        return {name: torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
                for name, net in self.nets.items()}

    def start_epoch(self, epoch, epochs, optimizers, lr):
        factor, self.end_to_end = schedule_phase(epoch, epochs, self.config.get("schedule", "constant"))
        set_learning_rate(optimizers, optimizers, lr * factor)

    def _perceptual(self, x, y):
        if self.perceptual is None:
            # Without ImageNet weights VGG is random: draw it from its own seed, not the training
            # RNG, so that it is the same network however a run was interrupted and resumed.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.get("seed", 0))
                self.perceptual = VGGPerceptualLoss(self.vgg_state,
                                                    self.config["perceptual_stages"]).to(self.device)
        return self.perceptual(x, y)

    def _silhouettes(self, truth, step):
        if self.bank is None:
            side = min(BANK_SIDE, self.size)
            self.bank = SilhouetteBank.from_pool(self.pool, side, self.config.get("pool_max_elevation")).to(self.device)
        generator = torch.Generator().manual_seed(self.config.get("seed", 0) * 1_000_003 + step)
        return self.bank.sample(truth, generator)

    def _mask_logits(self, image, visible):
        return self.nets["g1"](torch.cat([image, visible], 1)).float()

    def _paint(self, image, slot, mask):
        return torch.sigmoid(self.nets["g2"](torch.cat([image, slot, mask], 1)).float())

    @staticmethod
    def _step(optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _mask_adversarial(self, items, mask, step, optimizers, amp, losses):
        """Steps G1's discriminator(s) on the thresholded mask; returns G1's adversarial term."""
        image, visible, truth = items["image"], items["visible"], items["amodal"]
        hard = straight_through(mask)

        def conditioned(m):
            return torch.cat([m, image, visible], 1)

        if self.config["discriminator"] == "coupled":
            silhouettes = self._silhouettes(truth, step)
            with self.autocast(amp):
                d_obj = object_discriminator_loss(self.nets["d_obj"], truth, silhouettes, hard)
                d_ins = instance_discriminator_loss(self.nets["d_ins"], conditioned, truth, silhouettes, hard)
            self._step(optimizers["d_obj"], d_obj)
            self._step(optimizers["d_ins"], d_ins)
            losses.update(d_obj=d_obj, d_ins=d_ins)
            with self.autocast(amp):
                return coupled_generator_loss(self.nets["d_obj"], self.nets["d_ins"], conditioned, hard)
        with self.autocast(amp):
            d_std = 0.5 * (bce_gan(self.nets["d_std"](conditioned(truth)), True)
                           + bce_gan(self.nets["d_std"](conditioned(hard.detach())), False))
        self._step(optimizers["d_std"], d_std)
        losses["d_std"] = d_std
        with self.autocast(amp):
            return bce_gan(self.nets["d_std"](conditioned(hard)), True)

    def _reconstruction(self, logits, mask, truth):
        if self.config.get("mask_loss", "l1") == "bce":
            return F.binary_cross_entropy_with_logits(logits, truth)
        return F.l1_loss(mask, truth)

    def train_step(self, items, step, optimizers, amp):
        image, visible, truth, target = items["image"], items["visible"], items["amodal"], items["appearance"]
        losses = {}
        with self.autocast(amp):
            logits = self._mask_logits(image, visible)
        mask = torch.sigmoid(logits)
        adversarial = self._mask_adversarial(items, mask, step, optimizers, amp, losses)
        with self.autocast(amp):
            reconstruction = self._reconstruction(logits, mask, truth)
            g1_loss = adversarial + L1_WEIGHT * reconstruction + PERCEPTUAL_WEIGHT * self._perceptual(mask, truth)

            # G2, both paths stacked in one batch; on M_gt, or end to end on G1's thresholded M.
            painting_mask = straight_through(mask) if self.end_to_end else truth
            images, slots = [image], [visible]
            if self.config["paths"] == 2:
                images.append(target * (1 - truth))
                slots.append(torch.zeros_like(visible))
            paths = len(images)
            masks = painting_mask.repeat(paths, 1, 1, 1)
            outputs = self._paint(torch.cat(images), torch.cat(slots), masks)
            real = torch.cat([target, painting_mask.detach()], 1).repeat(paths, 1, 1, 1)
            fake = torch.cat([outputs.detach(), masks.detach()], 1)
            d2_loss = paths * 0.5 * (bce_gan(self.nets["d2"](real), True) + bce_gan(self.nets["d2"](fake), False))
        self._step(optimizers["d2"], d2_loss)
        with self.autocast(amp):
            targets = target.repeat(paths, 1, 1, 1)
            g2_loss = paths * (bce_gan(self.nets["d2"](torch.cat([outputs, masks], 1)), True)
                               + L1_WEIGHT * F.l1_loss(outputs, targets)) \
                + PERCEPTUAL_WEIGHT * self._perceptual(outputs, target)
        # One backward for both generators: while G2 paints on M_gt the two losses share no
        # parameters; end to end, G2's losses also reach G1 through the straight-through mask.
        optimizers["g1"].zero_grad(set_to_none=True)
        optimizers["g2"].zero_grad(set_to_none=True)
        (g1_loss + g2_loss).backward()
        optimizers["g1"].step()
        optimizers["g2"].step()
        losses.update(g1_adv=adversarial, g1_rec=reconstruction, g1=g1_loss, d2=d2_loss, g2=g2_loss)
        return scalars(**losses)

    def forward_predict(self, image, visible, box):
        current, incomplete = image, visible
        for _ in range(max(1, int(self.config.get("iterations", 2)))):
            mask = torch.sigmoid(self._mask_logits(current, incomplete))
            hard = (mask >= 0.5).float()
            painted = self._paint(current, incomplete, hard)
            current = paint_back(image, painted, mask, visible)
            incomplete = torch.maximum(visible, hard)   # F(I_r): the vehicle as recovered so far
        return mask, current
