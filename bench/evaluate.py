"""Evaluator speed, in one run on this machine.

    python bench/evaluate.py [--instances 1000] [--size 256] [--batch 50]

Images/s for every mask metric (P, R, F1, IoU, L1, L2, pooled IoU, both SeGAN variants, occlusion
buckets) through MaskMetrics.update, against the same metrics from scikit-learn per image
(precision_recall_fscore_support, jaccard_score for the full and SeGAN masks, recall_score for the
code's invisible score, NumPy means for L1/L2) on the same masks, with the ratio. Memory stays
that of one batch.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from sklearn.metrics import jaccard_score, precision_recall_fscore_support, recall_score

from ovbench.evaluation.metrics import MaskMetrics


def masks(rng, n, size):
    """Car-like blobs: an ellipse per instance, jittered."""
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3, 0.7, (2, n, 1, 1)) * size
    ry, rx = rng.uniform(0.1, 0.3, (2, n, 1, 1)) * size
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def sklearn_mask_metrics(gt, soft, visible) -> dict:
    """The same per-image metrics as MaskMetrics, one scikit-learn call each."""
    p = soft >= 0.5
    precision, recall, f1, _ = precision_recall_fscore_support(gt, p, average="binary", zero_division=0)
    hidden = gt & ~visible
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "iou": jaccard_score(gt, p, zero_division=1),
        "l1": np.abs(soft - gt).mean(), "l2": ((soft - gt) ** 2).mean(),
        "segan_paper_visible": jaccard_score(visible, p & visible, zero_division=1),
        "segan_paper_invisible": jaccard_score(hidden, p & ~visible, zero_division=1),
        "segan_code_visible": jaccard_score(visible, p, zero_division=1),
        "segan_code_invisible": recall_score(hidden, p, zero_division=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, size, batch = args.instances, args.size, args.batch
    torch.set_num_threads(2)

    metrics, seconds = MaskMetrics(), 0.0
    sk_seconds, sk_done = 0.0, 0
    for start in range(0, n, batch):
        gt = masks(rng, batch, size)
        pred = np.clip(masks(rng, batch, size) * 0.9 + rng.uniform(0, 0.2, gt.shape), 0, 1).astype(np.float32)
        visible = gt & (rng.random(gt.shape) < 0.7)
        rates = 1 - visible.sum((1, 2)) / np.maximum(gt.sum((1, 2)), 1)
        tensors = (torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(visible))
        started = time.perf_counter()
        metrics.update(*tensors, rates)
        seconds += time.perf_counter() - started
        if sk_done < min(n, 200):  # scikit-learn is slow: time a sample of 200 and scale
            started = time.perf_counter()
            for g, soft, v in zip(gt, pred, visible):
                sklearn_mask_metrics(g.ravel(), soft.ravel(), v.ravel())
            sk_seconds += time.perf_counter() - started
            sk_done += len(gt)
    ours, theirs = n / seconds, sk_done / sk_seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mask metrics, {n} instances at {size}² in batches of {batch}: ovbench {ours:,.0f} img/s, "
          f"scikit-learn per image, same metrics {theirs:,.1f} img/s → {ours / theirs:.0f}×; "
          f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
