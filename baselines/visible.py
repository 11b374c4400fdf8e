"""`visible`: the input's visible mask as the amodal prediction, the input image as the appearance.
The floor every model must beat: it scores recall = 1 − occlusion and perfect precision."""

from ovbench.protocol import Batch, Prediction

from .registry import register


@register("visible", "identity")
class VisibleReference:
    """Non-learned reference: predicts the visible mask, paints nothing."""

    trainable = False

    def __init__(self, **_options):
        pass

    def predict(self, batch: Batch) -> Prediction:
        return Prediction(batch.visible_mask.float(), batch.image)
