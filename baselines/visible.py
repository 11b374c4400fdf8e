"""`visible`: the input's visible mask as the amodal prediction, the input image as the appearance.
The floor every model must beat: it scores recall = 1 − occlusion and perfect precision."""

from ovbench.evaluation.protocol import Batch, Prediction

from .registry import Reference, register


@register("visible", "identity")
class VisibleReference(Reference):
    """Non-learned reference: predicts the visible mask, paints nothing."""

    def predict(self, batch: Batch) -> Prediction:
        return Prediction(batch.visible_mask.float(), batch.image)
