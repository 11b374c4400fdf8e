"""Metrics of both source papers, defined exactly, accumulated torchmetrics-style: `update` per batch
(vectorised over it, on any device), `compute` once. Memory is bounded by the batch, not the split.

Definitions (BASELINES.md §6):
- Mask, per instance then averaged ("Visualizing the Invisible"): precision, recall, F1, IoU of the
  prediction binarised at 0.5 against the full (amodal) ground truth over the whole image; L1 and
  L2 (mean squared error) of the soft prediction. Empty cases: a ratio whose denominator is empty
  is 1 when prediction and ground truth are both empty, else 0. Also pooled IoU = ΣI / ΣU.
- SeGAN's full / visible / invisible IoU, per instance then averaged, both variants:
  paper — full IoU(P, F); visible IoU(P ∩ V, V); invisible IoU(P ∖ V, F ∖ V) (both empty → 1);
  code — full IoU(P, F); "visible" IoU(P, V); "invisible" |P ∩ (F ∖ V)| / |F ∖ V|, 0 when
  nothing is hidden (the released code zeroes both masks outside F ∖ V). V is the visible mask
  given as input, F the amodal ground truth, P the binarised prediction. Computed at full image
  resolution (the code did it on 58×58 box crops).
- Every mask metric also by occlusion bucket: < 0.25, 0.25–0.5, ≥ 0.5 of the amodal area hidden.
- State: every metric accumulates sums and counts in tensors on the batch's device (`Metric`),
  so `update` waits for no GPU; `compute` reads them once.
- Appearance, per instance then averaged: L1 and L2 (MSE) on [0, 1] RGB over the image and over
  the invisible region (instances with nothing hidden are left out of the latter), PSNR
  (10·log10(1/MSE), MSE floored at 1e-10) and SSIM (Wang et al. 2004: 11×11 Gaussian window,
  σ 1.5, K1 0.01, K2 0.03, data range 1, mean over channels and valid pixels).
"""

from __future__ import annotations

import math

import torch

from ovbench.errors import InputError

BUCKETS = (("<0.25", 0.0, 0.25), ("0.25-0.5", 0.25, 0.5), (">=0.5", 0.5, 1.01))
MASK_KEYS = ("precision", "recall", "f1", "iou", "l1", "l2",
             "segan_paper_full", "segan_paper_visible", "segan_paper_invisible",
             "segan_code_full", "segan_code_visible", "segan_code_invisible")


def _as_maps(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """(B, H, W) float from (B, 1, H, W) or (B, H, W)."""
    if tensor.dim() == 4:
        if tensor.shape[1] != 1:
            raise InputError(f"{name} must have one channel, got shape {tuple(tensor.shape)}")
        tensor = tensor[:, 0]
    if tensor.dim() != 3:
        raise InputError(f"{name} must be (B, H, W) or (B, 1, H, W), got {tuple(tensor.shape)}")
    return tensor.float()


def check_probabilities(prediction: torch.Tensor, name: str = "prediction") -> None:
    low, high = torch.aminmax(prediction)  # one pass; NaN propagates into both
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"{name} contains NaN or infinite values")
    if low < 0 or high > 1:
        raise InputError(f"{name} must hold values in [0, 1], got [{low:.3g}, {high:.3g}]")


def _ratio(numerator, denominator, both_empty):
    """numerator / denominator, with 1 where `both_empty` and 0 elsewhere the denominator is 0."""
    safe = torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.zeros_like(numerator))
    return torch.where(both_empty, torch.ones_like(safe), safe)


def _binary(tensor: torch.Tensor, name: str) -> torch.Tensor:
    maps = _as_maps(tensor, name) if tensor.dtype != torch.bool else tensor.reshape(
        tensor.shape[0], *tensor.shape[-2:]) if tensor.dim() == 4 else tensor
    return maps if maps.dtype == torch.bool else maps > 0.5


def per_instance_mask_metrics(probability: torch.Tensor, amodal: torch.Tensor,
                              visible: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every mask metric for each instance of the batch: dict of (B,) tensors."""
    p = _as_maps(probability, "prediction")
    gt, vis = _binary(amodal, "amodal ground truth"), _binary(visible, "visible mask")
    if p.shape != gt.shape or vis.shape != gt.shape:
        raise InputError(f"size mismatch: prediction {tuple(p.shape)}, ground truth {tuple(gt.shape)}, "
                        f"visible {tuple(vis.shape)}")
    check_probabilities(p)
    # Flat (B, H·W) views: reductions over one contiguous dimension run several times faster.
    p, gt, vis = p.reshape(len(p), -1), gt.reshape(len(gt), -1), vis.reshape(len(vis), -1)
    pred = p >= 0.5
    dims = 1

    def count(mask):  # int32 sums of bool maps are several times faster than the default int64
        return mask.sum(dim=dims, dtype=torch.int32).float()

    pred_and_gt = pred & gt
    tp, pred_n, gt_n, vis_n = count(pred_and_gt), count(pred), count(gt), count(vis)
    pred_vis, gt_vis, all_three = count(pred & vis), count(gt & vis), count(pred_and_gt & vis)
    fp, fn = pred_n - tp, gt_n - tp
    none_either = (pred_n == 0) & (gt_n == 0)
    union = tp + fp + fn
    iou = _ratio(tp, union, none_either)
    hidden_n, pred_hidden_n = gt_n - gt_vis, pred_n - pred_vis      # |F∖V|, |P∖V|
    found_hidden = tp - all_three                                    # |P ∩ (F∖V)|
    diff = p - gt.float()
    return {
        "precision": _ratio(tp, pred_n, none_either), "recall": _ratio(tp, gt_n, none_either),
        "f1": _ratio(2 * tp, pred_n + gt_n, none_either),  # = 2PR/(P+R)
        "iou": iou, "l1": diff.abs().mean(dim=dims), "l2": (diff * diff).mean(dim=dims),
        "segan_paper_full": iou,
        "segan_paper_visible": _ratio(pred_vis, vis_n, vis_n == 0),
        "segan_paper_invisible": _ratio(found_hidden, pred_hidden_n + hidden_n - found_hidden,
                                        (hidden_n == 0) & (pred_hidden_n == 0)),
        "segan_code_full": iou,
        "segan_code_visible": _ratio(pred_vis, pred_n + vis_n - pred_vis, (pred_n == 0) & (vis_n == 0)),
        "segan_code_invisible": torch.where(hidden_n > 0, found_hidden / hidden_n.clamp(min=1),
                                            torch.zeros_like(hidden_n)),
        "_intersection": tp, "_union": union,
    }


class Metric:
    """torchmetrics' pattern: tensor states declared with their default (`add_state`), updated
    on the batch's device without host syncs, `compute` once, `reset` to start again.
    `higher_is_better` says, per result key, which way is better (the leaderboard marks it)."""

    higher_is_better: dict[str, bool] = {}

    def __init__(self):
        self._defaults: dict[str, torch.Tensor] = {}

    def add_state(self, name: str, default: torch.Tensor) -> None:
        """A summed state (sums and counts: what every metric here accumulates)."""
        self._defaults[name] = default
        setattr(self, name, default.clone())

    def reset(self) -> None:
        for name, default in self._defaults.items():
            setattr(self, name, default.clone())

    def _states_on(self, device: torch.device) -> None:
        for name in self._defaults:
            if getattr(self, name).device != device:
                setattr(self, name, getattr(self, name).to(device))


class MaskMetrics(Metric):
    """Per-instance mask metrics averaged over the split, overall and by occlusion bucket."""

    GROUPS = ("all", *(name for name, _, _ in BUCKETS))
    higher_is_better = {**dict.fromkeys(MASK_KEYS, True), "l1": False, "l2": False, "pooled_iou": True}

    def __init__(self):
        super().__init__()
        groups = len(self.GROUPS)
        self.add_state("sums", torch.zeros(groups, len(MASK_KEYS), dtype=torch.float64))
        self.add_state("counts", torch.zeros(groups, dtype=torch.float64))
        self.add_state("intersection", torch.zeros(groups, dtype=torch.float64))
        self.add_state("union", torch.zeros(groups, dtype=torch.float64))

    def update(self, probability, amodal, visible, occlude_rate) -> None:
        values = per_instance_mask_metrics(probability, amodal, visible)
        device = values["iou"].device
        self._states_on(device)
        rates = torch.as_tensor(occlude_rate, dtype=torch.float32, device=device)
        membership = torch.stack([torch.ones_like(rates, dtype=torch.bool)]
                                 + [(rates >= lo) & (rates < hi) for _, lo, hi in BUCKETS], 1).double()
        per_instance = torch.stack([values[key] for key in MASK_KEYS], 1).double()      # (B, K)
        self.sums += membership.T @ per_instance                                       # (G, K)
        self.counts += membership.sum(dim=0)
        self.intersection += membership.T @ values["_intersection"].double()
        self.union += membership.T @ values["_union"].double()

    def compute(self) -> dict:
        sums, counts = self.sums.cpu().tolist(), self.counts.cpu().tolist()
        intersection, union = self.intersection.cpu().tolist(), self.union.cpu().tolist()
        result = {}
        for g, group in enumerate(self.GROUPS):
            n = int(counts[g])
            if n == 0:
                result[group] = {"instances": 0}
                continue
            entry = {key: sums[g][k] / n for k, key in enumerate(MASK_KEYS)}
            entry["pooled_iou"] = intersection[g] / union[g] if union[g] else 1.0
            entry["instances"] = n
            result[group] = entry
        return {"all": result["all"], "by_occlusion": {name: result[name] for name, _, _ in BUCKETS}}


def _valid_blur_matrix(length: int, size: int, sigma: float, device) -> torch.Tensor:
    """(length − size + 1) × length matrix applying a normalised 1-D Gaussian ('valid' placement)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).float()
    out = length - size + 1
    matrix = torch.zeros(out, length)
    index = torch.arange(out)[:, None] + torch.arange(size)[None, :]
    matrix.scatter_(1, index, g.expand(out, -1))
    return matrix.to(device)


def ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image of (B, C, H, W) tensors in [0, 1] (valid pixels, no padding)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    height, width = x.shape[-2:]
    if min(height, width) < window_size:
        raise InputError(f"SSIM needs images of at least {window_size}×{window_size} pixels")
    rows = _valid_blur_matrix(height, window_size, sigma, x.device)
    cols = _valid_blur_matrix(width, window_size, sigma, x.device)
    x, y = x.float(), y.float()

    def blur(t):  # separable Gaussian as two matrix products: far faster than conv2d on CPUs
        return rows @ t @ cols.T

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return score.mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mse = ((x.float() - y.float()) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return 10 * torch.log10(1.0 / mse)


class AppearanceMetrics(Metric):
    """L1, L2 over the image and the invisible region, PSNR and SSIM, averaged per instance."""

    KEYS = ("l1", "l2", "l1_invisible", "l2_invisible", "psnr", "ssim")
    higher_is_better = {"l1": False, "l2": False, "l1_invisible": False, "l2_invisible": False,
                        "psnr": True, "ssim": True}

    def __init__(self):
        super().__init__()
        self.add_state("sums", torch.zeros(len(self.KEYS), dtype=torch.float64))
        self.add_state("counts", torch.zeros(len(self.KEYS), dtype=torch.float64))

    def update(self, prediction, target, invisible) -> None:
        if prediction.shape != target.shape:
            raise InputError(f"size mismatch: appearance {tuple(prediction.shape)} vs ground truth "
                            f"{tuple(target.shape)}")
        if not torch.isfinite(prediction).all():
            raise InputError("appearance prediction contains NaN or infinite values")
        if prediction.min() < 0 or prediction.max() > 1:
            raise InputError("appearance prediction must hold values in [0, 1]")
        self._states_on(prediction.device)
        diff = prediction.float() - target.float()
        region = _as_maps(invisible, "invisible mask")[:, None] > 0.5
        pixels = region.sum(dim=(1, 2, 3)).float() * prediction.shape[1]
        has = (pixels > 0).double()
        values = {
            "l1": diff.abs().mean(dim=(1, 2, 3)), "l2": (diff ** 2).mean(dim=(1, 2, 3)),
            "l1_invisible": (diff.abs() * region).sum(dim=(1, 2, 3)) / pixels.clamp(min=1),
            "l2_invisible": (diff ** 2 * region).sum(dim=(1, 2, 3)) / pixels.clamp(min=1),
            "psnr": psnr(prediction, target), "ssim": ssim(prediction, target),
        }
        # Instances with nothing hidden count for the whole-image keys only.
        keep = torch.stack([has if key.endswith("_invisible") else torch.ones_like(has)
                            for key in self.KEYS], 1)                                 # (B, K)
        stacked = torch.stack([values[key].double() for key in self.KEYS], 1)
        self.sums += (stacked * keep).sum(dim=0)
        self.counts += keep.sum(dim=0)

    def compute(self) -> dict:
        sums, counts = self.sums.cpu().tolist(), self.counts.cpu().tolist()
        return {key: (sums[k] / counts[k] if counts[k] else math.nan)
                for k, key in enumerate(self.KEYS)} | {"instances": int(counts[0])}


def depth_layering(pairs: list[tuple[int, int]], visible: dict, predicted_invisible: dict,
                   threshold: float = 0.05) -> float | None:
    """SeGAN's depth-layering accuracy for one image: the share of ground-truth pairs (q in front
    of p) predicted right. q is predicted to occlude p when IoU(visible_q, predicted invisible_p)
    exceeds `threshold`; of the two directions the larger IoU wins; a pair where neither passes
    counts as wrong. None when the image has no occlusion pair."""
    if not pairs:
        return None

    def iou(a, b):
        union = (a | b).sum()
        return float((a & b).sum() / union) if union else 0.0

    correct = 0
    for front, back in pairs:
        forward = iou(visible[front], predicted_invisible[back])
        backward = iou(visible[back], predicted_invisible[front])
        correct += forward > threshold and forward >= backward
    return correct / len(pairs)
