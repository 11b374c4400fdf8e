"""`ovbench evaluate` end to end, outside predictions, ICP plumbing, leaderboards, the zoo."""

import hashlib
import json

import numpy as np
import pytest
import torch
from ovbench.baselines import get_model
from pycocotools import mask as mask_utils

from ovbench.errors import InputError
from ovbench.evaluation.perceptual import CAR_CLASSES, InceptionCarProbability, load_inception


def annotations(root, split="test"):
    return json.loads((root / split / "annotations.json").read_text())["annotations"]


def rle(ann, key):
    return mask_utils.decode({"size": ann[key]["size"], "counts": ann[key]["counts"].encode()}).astype(bool)


def test_visible_reference_scores_what_the_masks_say(small_ovd, tmp_path, cli):
    out = tmp_path / "visible.json"
    result = cli("evaluate", "--model", "visible", "--data", small_ovd, "--out", out, "--quiet",
                 "--batch-size", 4)
    assert result.code == 0, result.err
    data = json.loads(out.read_text())
    anns = annotations(small_ovd)
    # The visible mask as prediction: IoU = recall = |V| / |A|, precision 1 (hand-derived).
    expected = np.mean([rle(a, "visible_mask").sum() / rle(a, "segmentation").sum() for a in anns])
    mask = data["metrics"]["mask"]["all"]
    assert mask["iou"] == pytest.approx(expected) and mask["recall"] == pytest.approx(expected)
    assert mask["precision"] == 1.0 and mask["instances"] == len(anns)
    assert data["metrics"]["mask"]["by_occlusion"].keys() == {"<0.25", "0.25-0.5", ">=0.5"}
    assert data["dataset"]["manifest_sha256"] == hashlib.sha256(
        (small_ovd / "manifest.json").read_bytes()).hexdigest()
    assert data["model"] == "visible" and data["checkpoint"] is None
    assert {"torch", "ovbench", "numpy"} <= data["versions"].keys()
    assert data["hardware"]["device"] == "cpu" and data["wall_seconds"] > 0
    assert data["metrics"]["icp"] == {"unavailable": data["metrics"]["icp"]["unavailable"]}
    assert "no weights" in data["metrics"]["icp"]["unavailable"]
    assert "unavailable" in data["metrics"]["depth_layering"]  # ovd: one object per image


def test_outside_predictions(small_ovd, tmp_path, cli):
    folder = tmp_path / "preds"
    (folder / "appearance").mkdir(parents=True)
    anns = annotations(small_ovd)
    records = [{"annotation_id": a["id"], "segmentation": a["segmentation"]} for a in anns]
    (folder / "predictions.json").write_text(json.dumps(records))
    out = tmp_path / "perfect.json"
    assert cli("evaluate", "--predictions", folder, "--data", small_ovd, "--out", out,
               "--quiet").code == 0
    mask = json.loads(out.read_text())["metrics"]["mask"]["all"]
    assert mask["iou"] == 1.0 and mask["segan_paper_invisible"] == 1.0

    (folder / "predictions.json").write_text(json.dumps(records[1:]))
    result = cli("evaluate", "--predictions", folder, "--data", small_ovd, "--out", out, "--quiet")
    assert result.code == 2 and f"no prediction for annotation {anns[0]['id']}" in result.error_line()
    # Predictions for objects the split does not have are refused before any scoring.
    stray = {"annotation_id": 999_999_999, "segmentation": anns[0]["segmentation"]}
    (folder / "predictions.json").write_text(json.dumps(records + [stray]))
    result = cli("evaluate", "--predictions", folder, "--data", small_ovd, "--out", out, "--quiet")
    assert result.code == 2 and "predicts annotation 999999999, which this split does not have" in result.error_line()


def test_references_run_and_rank(small_ovd, small_pool, tmp_path, cli):
    scores = {}
    for name in ("visible", "convex-hull", "pool-nn"):
        out = tmp_path / f"{name}.json"
        result = cli("evaluate", "--model", name, "--data", small_ovd, "--pool", small_pool,
                     "--out", out, "--quiet")
        assert result.code == 0, result.err
        scores[name] = json.loads(out.read_text())["metrics"]["mask"]["all"]
    assert scores["convex-hull"]["recall"] >= scores["visible"]["recall"]
    assert scores["pool-nn"]["recall"] >= scores["visible"]["recall"]


def test_pool_nn_without_pool_and_unknown_model(small_ovd, cli):
    result = cli("evaluate", "--model", "pool-nn", "--data", small_ovd, "--quiet")
    assert result.code == 2 and "--pool" in result.error_line()
    result = cli("evaluate", "--model", "nope", "--data", small_ovd, "--quiet")
    assert result.code == 2 and "unknown model" in result.error_line()


def test_registry_aliases():
    assert get_model("hull") is get_model("convex-hull")
    assert get_model("identity").name == "visible"
    with pytest.raises(InputError):
        get_model("segan-v2")


def test_icp_plumbing_with_random_weights(tmp_path, monkeypatch):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    model = inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=True)
    weights = tmp_path / "inception.pth"
    torch.save(model.state_dict(), weights)
    loaded, reason = load_inception(weights)
    assert reason == "" and loaded is not None
    images = torch.rand(2, 3, 64, 64)
    icp = InceptionCarProbability(loaded)
    icp.update(images)
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear",
                                                  align_corners=False)
        mean = torch.tensor((0.485, 0.456, 0.406))[:, None, None]
        std = torch.tensor((0.229, 0.224, 0.225))[:, None, None]
        probabilities = model.eval()((resized - mean) / std).softmax(dim=1)
    expected = probabilities[:, list(CAR_CLASSES)].sum(dim=1).mean()
    assert icp.compute()["icp"] == pytest.approx(float(expected), rel=1e-5)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    missing, reason = load_inception(None)
    assert missing is None and "inception_v3_google" in reason


def test_leaderboard_regenerates_identically(small_ovd, tmp_path, cli):
    board = tmp_path / "leaderboards"
    for name in ("visible", "convex-hull"):
        assert cli("evaluate", "--model", name, "--data", small_ovd, "--quiet",
                   "--out", board / "ovd" / f"{name}.json").code == 0
    assert cli("leaderboard", "--dir", board).code == 0
    first = {p.name: p.read_bytes() for p in board.glob("*.*")}
    assert set(first) == {"ovd.md", "ovd-iou-by-occlusion.png"}
    text = first["ovd.md"].decode()
    assert "reported on OVD, not this data" in text and "| convex-hull |" in text
    assert cli("leaderboard", "--dir", board).code == 0
    assert {p.name: p.read_bytes() for p in board.glob("*.*")} == first
