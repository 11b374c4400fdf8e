"""`deeplab`: DeepLabv3 on ResNet-50 (torchvision, output stride 8, ASPP 12/24/36 + image pooling)
with a 4-channel input (RGB + visible mask) → one logit map of the amodal mask; BCE loss.

"Visualizing the Invisible" cites DeepLab without a version (BASELINES §4); torchvision's
DeepLabv3-ResNet50 is the reading here. conv1 takes RGB + mask: the RGB filters are kept and the
mask filter is their mean. ImageNet initialisation (ResNet-50) through torchvision's weights API
(the torch hub cache, downloaded when missing) or from --pretrained FILE; without them random, with
a warning, and recorded as such.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import ResNet50_Weights, resnet50
from torchvision.models.segmentation import deeplabv3_resnet50

from .learned import Trainable, scalars
from .networks import four_channel_conv1, imagenet_state
from .registry import register


@register("deeplab", "deeplabv3")
class DeepLab(Trainable):
    """DeepLabv3-ResNet50, RGB + visible mask → amodal mask (BCE)."""

    default_lr = 1e-4

    def __init__(self, config: dict, *, pool=None, device="cpu", pretrained=None):
        super().__init__(config, pool=pool, device=device, pretrained=pretrained)
        net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
        state, self.pretrained_note = imagenet_state(pretrained, ResNet50_Weights.IMAGENET1K_V1, "ResNet-50")
        if state is not None:
            backbone = resnet50()
            backbone.load_state_dict(state)
            net.backbone.load_state_dict(backbone.state_dict(), strict=False)
        net.backbone.conv1 = four_channel_conv1(net.backbone.conv1, "mean")
        self.nets["deeplab"] = net

    @classmethod
    def base_config(cls, settings) -> dict:
        return {"size": settings.size}

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
