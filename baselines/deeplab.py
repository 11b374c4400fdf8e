"""`deeplab`: DeepLabv3 on ResNet-50 (torchvision, output stride 8, ASPP 12/24/36 + image pooling)
with a 4-channel input (RGB + visible mask) → one logit map of the amodal mask; BCE loss.

"Visualizing the Invisible" cites DeepLab without a version (BASELINES §4); torchvision's
DeepLabv3-ResNet50 is the reading here. conv1 takes RGB + mask: the RGB filters are kept and the
mask filter is their mean. ImageNet initialisation from --pretrained (resnet50 weights) or the
torch hub cache (resnet50-0676ba61.pth); otherwise random, and recorded as such.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import resnet50
from torchvision.models.segmentation import deeplabv3_resnet50

from .networks import four_channel_conv1, hub_weights
from .registry import register
from .training import Trainable, scalars

RESNET50_FILE = "resnet50-0676ba61.pth"


@register("deeplab", "deeplabv3")
class DeepLab(Trainable):
    """DeepLabv3-ResNet50, RGB + visible mask → amodal mask (BCE)."""

    default_lr = 1e-4

    def __init__(self, config: dict, pool=None, device="cpu", pretrained=None):
        super().__init__(config, pool, pretrained, device)
        net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
        weights = hub_weights(pretrained, RESNET50_FILE) if config.get("imagenet", True) else None
        if weights is not None:
            backbone = resnet50()
            backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            net.backbone.load_state_dict(backbone.state_dict(), strict=False)
            self.pretrained_note = f"ImageNet ResNet-50 ({weights.name})"
        net.backbone.conv1 = four_channel_conv1(net.backbone.conv1, "mean")
        self.nets["deeplab"] = net

    @classmethod
    def default_config(cls, settings) -> dict:
        return {"size": settings.size, **settings.options}

    def make_optimizers(self, lr):
        return {"deeplab": torch.optim.Adam(self.nets["deeplab"].parameters(), lr=lr)}

    def _logits(self, image, visible):
        return self.nets["deeplab"](torch.cat([image, visible], 1))["out"]

    def train_step(self, items, step, optimizers, amp):
        with self.autocast(amp):
            logits = self._logits(items["image"], items["visible"])
            loss = F.binary_cross_entropy_with_logits(logits.float(), items["amodal"])
        optimizers["deeplab"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["deeplab"].step()
        return scalars(bce=loss)

    def forward_predict(self, image, visible, box):
        return torch.sigmoid(self._logits(image, visible).float()), None
