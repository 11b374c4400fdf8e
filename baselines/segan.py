"""`segan`: SeGAN (Ehsani et al., CVPR 2018), as the paper and its Torch code define it (BASELINES §1).

- Segmentor: the image resized to 500² (RGB + visible mask), ImageNet ResNet-18 with a 4-channel
  conv1 (the mask filter copies the red one), the 7×7 stride-1 average pool kept (stride 50), ROI
  max-pooling 6×6 of the visible box grown by U(0.1, 0.3) per side in training (0.2 at test), a
  6×6 conv to 58×58 logits, sigmoid, bilinear upsampling into the box.
- Segmentor loss: BCE averaged separately over background, visible (SV) and invisible (SI) pixels
  of the 58×58 box crop, weighted 1, 5, 3 (per-set means, as the paper writes it).
- Painter: eq. (1) on the box crop at 256²: visible pixels keep the image, the rest of the
  predicted object is red, everything else blue (visible first); U-Net-256 → RGB of the crop;
  conditional 70×70 PatchGAN; L* = GAN + 100·L1; end to end L = 0.1·L* + L_segm, the mask reaching
  the painter through a straight-through threshold.
- Optimisers: painter Adam 2e-4 (0.5, 0.999); segmentor plain SGD lr 1e-3 as the code (the tiny
  preset uses Adam so that it learns in a few CPU minutes).
The painter's output is painted into the predicted hidden part of the input.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.ops import roi_align, roi_pool

from .learned import Trainable, scalars
from .networks import (
    PatchDiscriminator,
    UnetGenerator,
    bce_gan,
    four_channel_conv1,
    imagenet_state,
    init_normal,
    unet_downs,
)
from .registry import register

SET_WEIGHTS = {"background": 1.0, "visible": 5.0, "invisible": 3.0}
PAINTER_L1, END_TO_END = 100.0, 0.1
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def resnet_feature_side(size: int) -> int:
    """Side of ResNet's layer-4 map for a size² input: conv1, the max-pool and layers 2-4 each
    halve it, rounding up (padding): 500 → 250 → 125 → 63 → 32 → 16."""
    for _ in range(5):
        size = -(-size // 2)
    return size


class Segmentor(nn.Module):
    def __init__(self, seg_size: int, roi_out: int, state: dict | None = None):
        super().__init__()
        net = resnet18()
        if state is not None:
            net.load_state_dict(state)
        net.conv1 = four_channel_conv1(net.conv1, "red")
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                  net.layer1, net.layer2, net.layer3, net.layer4)
        feature = resnet_feature_side(seg_size)
        self.pool = nn.AvgPool2d(7, 1) if feature >= 7 else nn.Identity()  # kept, as the code
        # The kept 7×7 stride-1 pool trims 6: at 500², 16 → 10 cells, one per 50 input pixels.
        self.feature = feature - 6 if feature >= 7 else feature
        self.seg_size, self.roi_out = seg_size, roi_out
        self.head = nn.Conv2d(512, roi_out * roi_out, 6)

    @property
    def spatial_scale(self) -> float:
        """Feature cells per input pixel, for ROI pooling (1/50 at 500², as SeGAN's code)."""
        return self.feature / self.seg_size

    def forward(self, image_and_mask, boxes_in_seg):
        features = self.pool(self.body(image_and_mask))
        pooled = roi_pool(features.float(), _rois(boxes_in_seg).float(), (6, 6), self.spatial_scale)
        return self.head(pooled.to(features.dtype)).view(-1, 1, self.roi_out, self.roi_out)


def expand_boxes(box_xywh: torch.Tensor, size: int, rates: torch.Tensor) -> torch.Tensor:
    """x1, y1, x2, y2 of visible boxes grown by `rates` (B, 4: left, top, right, bottom shares of
    width/height), clipped to the image."""
    x, y, w, h = box_xywh.unbind(1)
    x1 = (x - rates[:, 0] * w).clamp(0, size)
    y1 = (y - rates[:, 1] * h).clamp(0, size)
    x2 = (x + w + rates[:, 2] * w).clamp(0, size)
    y2 = (y + h + rates[:, 3] * h).clamp(0, size)
    return torch.stack([x1, y1, torch.maximum(x2, x1 + 1), torch.maximum(y2, y1 + 1)], 1)


def _rois(boxes):
    return torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], 1)


def crop(tensor: torch.Tensor, boxes: torch.Tensor, out: int, maximum: bool = False) -> torch.Tensor:
    """Box crops resized to out²: ROI max-pooling (masks, as SeGAN's code) or bilinear ROI align."""
    if maximum:
        return roi_pool(tensor.float(), _rois(boxes).float(), (out, out), 1.0)
    return roi_align(tensor.float(), _rois(boxes).float(), (out, out), 1.0, sampling_ratio=2, aligned=True)


def paste(crops: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each crop resized (bilinear) into its box on an empty size² canvas."""
    canvas = crops.new_zeros(len(crops), crops.shape[1], size, size)
    for k, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        canvas[k, :, y1:y2, x1:x2] = F.interpolate(crops[k:k + 1], size=(y2 - y1, x2 - x1),
                                                   mode="bilinear", align_corners=False)[0]
    return canvas


def painter_input(image_crop, visible_crop, object_crop):
    """Eq. (1), labels with visible first: V → the image, O ∖ V → red, the rest → blue."""
    red = image_crop.new_tensor(RED).view(1, 3, 1, 1)
    blue = image_crop.new_tensor(BLUE).view(1, 3, 1, 1)
    hidden = object_crop * (1 - visible_crop)
    rest = (1 - visible_crop) * (1 - object_crop)
    return image_crop * visible_crop + red * hidden + blue * rest


@register("segan", "ehsani2018")
class SeGAN(Trainable):
    """SeGAN: ResNet-18 + ROI segmentor to 58×58, eq. (1) painter U-Net + PatchGAN."""

    default_lr = 2e-4

    def __init__(self, config: dict, *, pool=None, device="cpu", pretrained=None):
        super().__init__(config, pool=pool, device=device, pretrained=pretrained)
        state, self.pretrained_note = imagenet_state(pretrained, ResNet18_Weights.IMAGENET1K_V1, "ResNet-18")
        self.nets["segmentor"] = Segmentor(config["seg_size"], config["roi_out"], state)
        init_normal(self.nets["segmentor"].head)
        self.nets["painter"] = init_normal(UnetGenerator(3, 3, config["ngf"], unet_downs(config["paint_size"])))
        self.nets["d_paint"] = init_normal(PatchDiscriminator(6, config["ndf"]))

    @classmethod
    def base_config(cls, settings) -> dict:
        tiny = settings.preset == "tiny"
        return {"size": settings.size, "seg_size": 128 if tiny else 500, "roi_out": 28 if tiny else 58,
                "paint_size": 64 if tiny else 256, "ngf": 16 if tiny else 64, "ndf": 16 if tiny else 64,
                "seg_optimizer": "adam" if tiny else "sgd", "seed": settings.seed}

    def make_optimizers(self, lr):
        segmentor = self.nets["segmentor"].parameters()
        seg = (torch.optim.SGD(segmentor, lr=1e-3) if self.config["seg_optimizer"] == "sgd"
               else torch.optim.Adam(segmentor, lr=lr, betas=(0.5, 0.999)))
        return {"segmentor": seg,
                "painter": torch.optim.Adam(self.nets["painter"].parameters(), lr=lr, betas=(0.5, 0.999)),
                "d_paint": torch.optim.Adam(self.nets["d_paint"].parameters(), lr=lr, betas=(0.5, 0.999))}

    def _segment(self, image, visible, boxes):
        seg = self.config["seg_size"]
        inputs = F.interpolate(torch.cat([image, visible], 1), size=(seg, seg), mode="bilinear",
                               align_corners=False)
        return self.nets["segmentor"](inputs, boxes * (seg / self.size))

    def _boxes(self, box, step=None):
        if step is None:
            rates = box.new_full((len(box), 4), 0.2)
        else:
            generator = torch.Generator().manual_seed(self.config.get("seed", 0) * 1_000_003 + step)
            rates = (0.1 + 0.2 * torch.rand(len(box), 4, generator=generator)).to(box.device)
        return expand_boxes(box, self.size, rates)

    def train_step(self, items, step, optimizers, amp):
        image, visible, truth, target = items["image"], items["visible"], items["amodal"], items["appearance"]
        boxes = self._boxes(items["box"], step)
        r, p = self.config["roi_out"], self.config["paint_size"]
        with self.autocast(amp):
            logits = self._segment(image, visible, boxes).float()
            full, seen = crop(truth, boxes, r, maximum=True), crop(visible, boxes, r, maximum=True)
            sets = {"background": 1 - full, "visible": seen, "invisible": full * (1 - seen)}
            bce = F.binary_cross_entropy_with_logits(logits, full, reduction="none")
            segm = sum(w * (bce * sets[k]).sum() / sets[k].sum().clamp(min=1) for k, w in SET_WEIGHTS.items())
            soft = paste(torch.sigmoid(logits), boxes, self.size)
            hard = (soft >= 0.5).float()
            straight = hard + soft - soft.detach()   # threshold forward, identity backward
            condition = painter_input(crop(image, boxes, p), crop(visible, boxes, p), crop(straight, boxes, p))
            goal = crop(target, boxes, p)
            painted = (torch.tanh(self.nets["painter"](condition).float()) + 1) / 2
            fixed = condition.detach()
            d_loss = 0.5 * (bce_gan(self.nets["d_paint"](torch.cat([fixed, goal], 1)), True)
                            + bce_gan(self.nets["d_paint"](torch.cat([fixed, painted.detach()], 1)), False))
        optimizers["d_paint"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["d_paint"].step()
        with self.autocast(amp):
            adversarial = bce_gan(self.nets["d_paint"](torch.cat([condition, painted], 1)), True)
            l1 = F.l1_loss(painted, goal)
            painter_loss = adversarial + PAINTER_L1 * l1
            total = END_TO_END * painter_loss + segm
        optimizers["segmentor"].zero_grad(set_to_none=True)
        optimizers["painter"].zero_grad(set_to_none=True)
        total.backward()
        optimizers["segmentor"].step()
        optimizers["painter"].step()
        return scalars(segm=segm, painter_gan=adversarial, painter_l1=l1, d_paint=d_loss)

    def forward_predict(self, image, visible, box):
        boxes = self._boxes(box)
        p = self.config["paint_size"]
        mask = paste(torch.sigmoid(self._segment(image, visible, boxes).float()), boxes, self.size)
        condition = painter_input(crop(image, boxes, p), crop(visible, boxes, p),
                                  crop((mask >= 0.5).float(), boxes, p))
        painted = (torch.tanh(self.nets["painter"](condition).float()) + 1) / 2
        canvas = paste(painted, boxes, self.size)
        return mask, canvas
