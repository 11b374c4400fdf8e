"""`pix2pix` (Isola et al.) as "Visualizing the Invisible" used it, twice: mask completion
(image + visible mask → amodal mask) and appearance recovery (image + amodal mask → RGB), each a
U-Net-256 generator with a conditional 70×70 PatchGAN; vanilla GAN loss, L1 × 100, D loss × ½,
Adam 2e-4 (0.5, 0.999), N(0, 0.02) init (BASELINES §3). The appearance generator is trained on the
ground-truth amodal mask and used on the predicted one; its output is painted into the predicted
hidden part of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .learned import Trainable, scalars
from .networks import PatchDiscriminator, UnetGenerator, bce_gan, init_normal, unet_downs
from .registry import register

L1_WEIGHT = 100.0


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


@register("pix2pix")
class Pix2Pix(Trainable):
    """U-Net + PatchGAN for the mask and for the appearance."""

    default_lr = 2e-4

    def __init__(self, config: dict, *, pool=None, device="cpu", pretrained=None):
        super().__init__(config, pool=pool, device=device, pretrained=pretrained)
        ngf, ndf, downs = config["ngf"], config["ndf"], unet_downs(config["size"])
        self.nets["g_mask"] = init_normal(UnetGenerator(4, 1, ngf, downs))
        self.nets["d_mask"] = init_normal(PatchDiscriminator(4 + 1, ndf))
        self.nets["g_app"] = init_normal(UnetGenerator(4, 3, ngf, downs))
        self.nets["d_app"] = init_normal(PatchDiscriminator(4 + 3, ndf))

    @classmethod
    def base_config(cls, settings) -> dict:
        width = 16 if settings.preset == "tiny" else 64
        return {"size": settings.size, "ngf": width, "ndf": width}

    def make_optimizers(self, lr):
        return {name: adam(self.nets[name].parameters(), lr) for name in self.nets}

    def _gan_step(self, generator, discriminator, condition, target, optimizers, amp):
        with self.autocast(amp):
            fake = (torch.tanh(self.nets[generator](condition).float()) + 1) / 2
            d_fake = self.nets[discriminator](torch.cat([condition, fake.detach()], 1))
            d_real = self.nets[discriminator](torch.cat([condition, target], 1))
            d_loss = 0.5 * (bce_gan(d_fake.float(), False) + bce_gan(d_real.float(), True))
        optimizers[discriminator].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers[discriminator].step()
        with self.autocast(amp):
            adversarial = bce_gan(self.nets[discriminator](torch.cat([condition, fake], 1)).float(), True)
            l1 = F.l1_loss(fake, target)
            g_loss = adversarial + L1_WEIGHT * l1
        optimizers[generator].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers[generator].step()
        return d_loss, adversarial, l1

    def train_step(self, items, step, optimizers, amp):
        image = items["image"]
        mask_in = torch.cat([image, items["visible"]], 1)
        d_mask, g_mask, l1_mask = self._gan_step("g_mask", "d_mask", mask_in, items["amodal"],
                                                 optimizers, amp)
        app_in = torch.cat([image, items["amodal"]], 1)
        d_app, g_app, l1_app = self._gan_step("g_app", "d_app", app_in, items["appearance"],
                                              optimizers, amp)
        return scalars(d_mask=d_mask, g_mask_gan=g_mask, mask_l1=l1_mask,
                       d_app=d_app, g_app_gan=g_app, app_l1=l1_app)

    def forward_predict(self, image, visible, box):
        mask = (torch.tanh(self.nets["g_mask"](torch.cat([image, visible], 1)).float()) + 1) / 2
        hard = (mask >= 0.5).float()
        appearance = (torch.tanh(self.nets["g_app"](torch.cat([image, hard], 1)).float()) + 1) / 2
        return mask, appearance
