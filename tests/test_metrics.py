"""Metrics against independent implementations (scikit-learn, pycocotools, scikit-image) and
hand-computed cases."""

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import jaccard_score, precision_recall_fscore_support

from ovbench.errors import InputError
from ovbench.evaluation.metrics import (
    AppearanceMetrics,
    MaskMetrics,
    depth_layering,
    per_instance_mask_metrics,
    psnr,
    ssim,
)


def blobs(rng, n, size=48):
    """Random blob masks: unions of rectangles, so that P, R and IoU vary widely."""
    masks = np.zeros((n, size, size), bool)
    for m in masks:
        for _ in range(rng.integers(1, 4)):
            x, y = rng.integers(0, size - 8, 2)
            w, h = rng.integers(4, size // 2, 2)
            m[y:y + h, x:x + w] = True
    return masks


def test_per_instance_metrics_equal_sklearn_and_pycocotools():
    rng = np.random.default_rng(0)
    gt, pred = blobs(rng, 40), blobs(rng, 40)
    soft = np.clip(pred * 0.8 + rng.uniform(0, 0.3, pred.shape), 0, 1).astype(np.float32)
    visible = gt & blobs(rng, 40)
    values = per_instance_mask_metrics(torch.from_numpy(soft), torch.from_numpy(gt),
                                       torch.from_numpy(visible))
    binary = soft >= 0.5
    for i in range(len(gt)):
        p, r, f, _ = precision_recall_fscore_support(gt[i].ravel(), binary[i].ravel(),
                                                     average="binary", zero_division=0)
        assert values["precision"][i] == pytest.approx(p, abs=1e-6)
        assert values["recall"][i] == pytest.approx(r, abs=1e-6)
        assert values["f1"][i] == pytest.approx(f, abs=1e-6)
        assert values["iou"][i] == pytest.approx(jaccard_score(gt[i].ravel(), binary[i].ravel()), abs=1e-6)
        rle = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in (binary[i], gt[i])]
        assert values["iou"][i] == pytest.approx(mask_utils.iou([rle[0]], [rle[1]], [0])[0, 0], abs=1e-6)
        assert values["l1"][i] == pytest.approx(np.abs(soft[i] - gt[i]).mean(), abs=1e-6)
        assert values["l2"][i] == pytest.approx(((soft[i] - gt[i]) ** 2).mean(), abs=1e-6)


def test_empty_cases():
    empty = torch.zeros(1, 8, 8)
    full = torch.zeros(1, 8, 8)
    full[0, 2:5, 2:5] = 1
    both_empty = per_instance_mask_metrics(empty, empty, empty)
    assert [float(both_empty[k]) for k in ("precision", "recall", "f1", "iou")] == [1, 1, 1, 1]
    no_prediction = per_instance_mask_metrics(empty, full, full)
    assert [float(no_prediction[k]) for k in ("precision", "recall", "f1", "iou")] == [0, 0, 0, 0]
    no_truth = per_instance_mask_metrics(full, empty, empty)
    assert [float(no_truth[k]) for k in ("precision", "recall", "f1", "iou")] == [0, 0, 0, 0]


def test_segan_variants_on_a_hand_case():
    # A 1×16 strip: amodal F = px 0-9, visible V = px 0-5, hidden F∖V = px 6-9.
    amodal = torch.zeros(1, 1, 16)
    amodal[..., :10] = 1
    visible = torch.zeros(1, 1, 16)
    visible[..., :6] = 1
    prediction = visible.clone()
    prediction[..., 6:8] = 1   # two hidden pixels found
    prediction[..., 12] = 1    # one false pixel outside
    v = {k: float(t) for k, t in per_instance_mask_metrics(prediction, amodal, visible).items()}
    assert v["segan_paper_full"] == pytest.approx(8 / 11)
    assert v["segan_paper_visible"] == pytest.approx(6 / 6)
    assert v["segan_paper_invisible"] == pytest.approx(2 / 5)   # {6,7,12} vs {6..9}
    assert v["segan_code_full"] == pytest.approx(8 / 11)
    assert v["segan_code_visible"] == pytest.approx(6 / 9)      # IoU(P, V)
    assert v["segan_code_invisible"] == pytest.approx(2 / 4)    # recall on F∖V


def test_segan_variants_when_nothing_is_hidden():
    amodal = torch.zeros(1, 4, 4)
    amodal[0, 1:3, 1:3] = 1
    exact = {k: float(t) for k, t in per_instance_mask_metrics(amodal, amodal, amodal).items()}
    assert exact["segan_paper_invisible"] == 1.0   # nothing hidden, nothing predicted hidden
    assert exact["segan_code_invisible"] == 0.0    # the released code scores such objects 0
    over = amodal.clone()
    over[0, 0, 0] = 1
    spilled = {k: float(t) for k, t in per_instance_mask_metrics(over, amodal, amodal).items()}
    assert spilled["segan_paper_invisible"] == 0.0


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1])
def test_bad_predictions_are_clear_errors(bad):
    prediction = torch.zeros(1, 1, 4, 4)
    prediction[0, 0, 0, 0] = bad
    with pytest.raises(InputError, match="NaN|\\[0, 1\\]"):
        per_instance_mask_metrics(prediction, torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))


def test_size_mismatch_is_a_clear_error():
    with pytest.raises(InputError, match="size mismatch"):
        per_instance_mask_metrics(torch.zeros(1, 4, 4), torch.zeros(1, 5, 4), torch.zeros(1, 5, 4))
    with pytest.raises(InputError, match="size mismatch"):
        AppearanceMetrics().update(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 5, 5), torch.zeros(1, 5, 5))


def test_mask_metrics_average_per_instance_pool_and_bucket():
    rng = np.random.default_rng(1)
    gt, pred = blobs(rng, 30), blobs(rng, 30)
    keep = rng.uniform(0.3, 1.0, (30, 1, 1))
    visible = gt & (rng.random(gt.shape) < keep)   # occlusion spread over every bucket
    rates = 1 - visible.sum((1, 2)) / np.maximum(gt.sum((1, 2)), 1)
    metrics = MaskMetrics()
    for start in range(0, 30, 7):  # uneven batches
        sl = slice(start, start + 7)
        metrics.update(torch.from_numpy(pred[sl]).float(), torch.from_numpy(gt[sl]),
                       torch.from_numpy(visible[sl]), rates[sl])
    result = metrics.compute()
    ious = [jaccard_score(g.ravel(), p.ravel(), zero_division=1) for g, p in zip(gt, pred)]
    assert result["all"]["iou"] == pytest.approx(np.mean(ious), abs=1e-9)
    assert result["all"]["pooled_iou"] == pytest.approx((gt & pred).sum() / (gt | pred).sum())
    low = rates < 0.25
    assert 0 < low.sum() < 30
    assert result["by_occlusion"]["<0.25"]["instances"] == low.sum()
    assert result["by_occlusion"]["<0.25"]["iou"] == pytest.approx(np.mean(np.array(ious)[low]))
    assert sum(b["instances"] for b in result["by_occlusion"].values()) == 30


def test_ssim_and_psnr_equal_scikit_image():
    rng = np.random.default_rng(2)
    x = rng.random((3, 3, 40, 52)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    ours_ssim = ssim(torch.from_numpy(x), torch.from_numpy(y))
    ours_psnr = psnr(torch.from_numpy(x), torch.from_numpy(y))
    for i in range(3):
        reference = structural_similarity(x[i], y[i], channel_axis=0, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False, data_range=1.0)
        assert float(ours_ssim[i]) == pytest.approx(reference, abs=1e-4)
        assert float(ours_psnr[i]) == pytest.approx(peak_signal_noise_ratio(x[i], y[i], data_range=1.0),
                                                    abs=1e-3)


def test_appearance_invisible_region_and_exclusion():
    target = torch.zeros(2, 3, 16, 16)
    prediction = target.clone()
    prediction[0, :, 0, 0] = 0.5      # error inside object 0's hidden region
    invisible = torch.zeros(2, 16, 16)
    invisible[0, 0, :2] = 1           # object 1 hides nothing
    metrics = AppearanceMetrics()
    metrics.update(prediction, target, invisible)
    result = metrics.compute()
    assert result["l1_invisible"] == pytest.approx(0.5 * 3 / (2 * 3))   # object 0 only
    assert result["l1"] == pytest.approx((0.5 * 3 / (3 * 256) + 0) / 2)


def test_depth_layering_rule():
    front_visible = np.zeros((6, 6), bool)
    front_visible[:, :3] = True
    back_visible = np.zeros((6, 6), bool)
    back_visible[:, 4:] = True
    hidden_behind_front = front_visible.copy()       # the back object's predicted hidden part
    nothing = np.zeros((6, 6), bool)
    visible = {1: front_visible, 2: back_visible}
    assert depth_layering([(1, 2)], visible, {1: nothing, 2: hidden_behind_front}) == 1.0
    assert depth_layering([(1, 2)], visible, {1: back_visible, 2: nothing}) == 0.0   # reversed
    assert depth_layering([(1, 2)], visible, {1: nothing, 2: nothing}) == 0.0        # neither
    assert depth_layering([], visible, {}) is None
