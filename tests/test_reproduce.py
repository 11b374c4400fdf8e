"""`ovbench reproduce`: matched training over seeds, selection on validation, verdicts per claim;
`ovbench leaderboard` refusing to mix dataset builds."""

import json
import math

import pytest

from ovbench.evaluation.reproduce import summarise, verdict
from ovbench.formats.reader import AmodalSplit, holdout_images


@pytest.mark.parametrize("better,worse,higher,expected", [
    # paired seeds: differences 0.10, 0.12, 0.08 → mean 0.10, SE 0.02/√3 ≈ 0.0115 → holds
    ({0: 0.80, 1: 0.82, 2: 0.78}, {0: 0.70, 1: 0.70, 2: 0.70}, True, (0.10, 0.02 / math.sqrt(3), "holds")),
    # the same rows, lower is better: the claim points the other way → fails
    ({0: 0.80, 1: 0.82, 2: 0.78}, {0: 0.70, 1: 0.70, 2: 0.70}, False, (-0.10, 0.02 / math.sqrt(3), "fails")),
    # differences +0.05 and −0.03: mean 0.01, SE 0.04 → inconclusive
    ({0: 0.75, 1: 0.67}, {0: 0.70, 1: 0.70}, True, (0.01, 0.04, "inconclusive")),
    # against a reference scored once: the row's own spread
    ({0: 0.80, 1: 0.84}, {"ref": 0.70}, True, (0.12, 0.02, "holds")),
    # one seed: no standard error, never a verdict
    ({0: 0.90}, {0: 0.10}, True, (0.80, math.nan, "inconclusive")),
])
def test_verdicts_by_hand(better, worse, higher, expected):
    delta, se, word = verdict(better, worse, higher)
    assert delta == pytest.approx(expected[0])
    assert (math.isnan(se) and math.isnan(expected[1])) or se == pytest.approx(expected[1])
    assert word == expected[2]


def test_summary_is_mean_and_sample_std():
    mean, std, n = summarise([1.0, 2.0, 4.0])
    assert (mean, n) == (pytest.approx(7 / 3), 3)
    assert std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))


def test_validation_images_are_carved_from_train_alike_for_everyone(small_ovd):
    everything = AmodalSplit(small_ovd, "train")
    fit = AmodalSplit(small_ovd, "train", holdout=0.25, part="fit")
    validation = AmodalSplit(small_ovd, "train", holdout=0.25, part="validation")
    fit_images = {a["image_id"] for a in fit.items}
    validation_images = {a["image_id"] for a in validation.items}
    assert validation_images == holdout_images(everything.images, 0.25) and len(validation_images) == 2
    assert not fit_images & validation_images
    assert fit_images | validation_images == {a["image_id"] for a in everything.items}
    assert holdout_images(range(5), 0.01) and len(holdout_images(range(2), 0.9)) == 1


def test_tiny_yan2019_study_writes_rows_claims_and_resumes(small_ovd, small_pool, tmp_path, cli):
    out = tmp_path / "leaderboards" / "yan2019-tiny"
    args = ["reproduce", "yan2019", "--data", small_ovd, "--pool", small_pool, "--preset", "tiny",
            "--seeds", 2, "--epochs", 2, "--device", "cpu", "--validation", 0.2, "--quiet",
            "--out", out, "--runs", tmp_path / "runs"]
    result = cli(*args)
    assert result.code == 0, result.err
    files = sorted(p.name for p in out.glob("*.json"))
    rows = ["deeplab", "pix2pix", "segan", "seganv-it1", "seganv-it2", "seganv-standard", "seganv-one-path"]
    assert files == sorted([f"{r}-seed{s}.json" for r in rows for s in (0, 1)]
                           + ["convex-hull.json", "pool-nn.json", "visible.json", "study.json"])
    record = json.loads((out / "seganv-it2-seed1.json").read_text())
    assert record["dataset"]["split"] == "test" and record["config"]["options"] == {"iterations": 2}
    curve = record["study"]["validation_iou"]
    assert len(curve) == 2 and record["study"]["selected_epoch"] == 1 + curve.index(max(curve))
    # it1 and it2 are one trained model, evaluated two ways: the same checkpoint.
    it1 = json.loads((out / "seganv-it1-seed1.json").read_text())
    assert it1["checkpoint"] == record["checkpoint"] and it1["study"]["validation_iou"] == curve

    table = (out.parent / "yan2019-tiny.md").read_text()
    assert (out.parent / "yan2019-tiny-curves.png").is_file()
    iou = sorted(json.loads((out / f"deeplab-seed{s}.json").read_text())["metrics"]["mask"]["all"]["iou"]
                 for s in (0, 1))
    mean, std, _ = summarise(iou)
    assert f"| deeplab | DeepLab | {mean:.4f} ± {std:.4f} (2) |" in table
    for claim in ("coupled D_obj + D_ins beats a standard discriminator", "two-path G2",
                  "a second iteration improves IoU"):
        line = next(line for line in table.splitlines() if line.startswith(f"| {claim}"))
        assert any(f"**{word}**" in line for word in ("holds", "fails", "inconclusive"))

    # A killed study resumes: finished files are kept, a missing one is made again the same.
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*-seed*.json")}
    lost = out / "pix2pix-seed1.json"
    metrics = json.loads(lost.read_text())["metrics"]
    lost.unlink()
    assert cli(*args).code == 0
    assert json.loads(lost.read_text())["metrics"] == metrics
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*-seed*.json")}
    assert {k for k in after if after[k] != before[k]} == {"pix2pix-seed1.json"}

    # The selected checkpoint, evaluated by hand with seganv's own option, scores the same.
    by_hand = tmp_path / "it1.json"
    assert cli("evaluate", "--model", "seganv", "--iterations", 1, "--checkpoint",
               tmp_path / "runs" / "seganv-seed1" / "best", "--data", small_ovd, "--pool", small_pool,
               "--quiet", "--out", by_hand).code == 0
    assert json.loads(by_hand.read_text())["metrics"] == it1["metrics"]

    # `ovbench leaderboard` rebuilds the same report from the same files.
    board = cli("leaderboard", "--dir", out.parent)
    assert board.code == 0 and (out.parent / "yan2019-tiny.md").read_text() == table


def test_segan2018_study_on_dyce(small_dyce, tmp_path, cli):
    out = tmp_path / "segan2018-tiny"
    result = cli("reproduce", "segan2018", "--data", small_dyce, "--preset", "tiny", "--seeds", 1,
                 "--epochs", 1, "--validation", 0.25, "--quiet", "--out", out, "--runs", tmp_path / "runs")
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.glob("*.json")) == [
        "convex-hull.json", "pix2pix-seed0.json", "segan-seed0.json", "study.json", "visible.json"]
    table = (tmp_path / "segan2018-tiny.md").read_text()
    assert "SeGAN beats pix2pix on invisible IoU" in table and "**inconclusive**" in table  # one seed


def test_study_refusals(small_ovd, small_pool, tmp_path, cli):
    base = ["reproduce", "yan2019", "--data", small_ovd, "--preset", "tiny", "--quiet",
            "--out", tmp_path / "out", "--runs", tmp_path / "runs"]
    assert "--pool" in cli(*base).error_line()
    assert "no row nope" in cli(*base, "--pool", small_pool, "--rows", "nope").error_line()
    assert "runs on dyce data" in cli("reproduce", "segan2018", "--data", small_ovd, "--quiet",
                                      "--out", tmp_path / "o2").error_line()
    assert "--seeds must be at least 1" in cli(*base, "--pool", small_pool, "--seeds", 0).error_line()
    # A study folder is continued only with the same recipe.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "study.json").write_text(json.dumps({"table": "yan2019", "budget": {"epochs": 99}}))
    assert "holds a study with another budget" in cli(*base, "--pool", small_pool).error_line()


def test_leaderboard_refuses_two_dataset_builds(small_ovd, tmp_path, cli):
    board = tmp_path / "leaderboards"
    assert cli("evaluate", "--model", "visible", "--data", small_ovd, "--quiet",
               "--out", board / "ovd" / "visible.json").code == 0
    other = board / "ovd" / "convex-hull.json"
    assert cli("evaluate", "--model", "convex-hull", "--data", small_ovd, "--quiet", "--out", other).code == 0
    record = json.loads(other.read_text())
    record["dataset"]["manifest_sha256"] = "f" * 64
    other.write_text(json.dumps(record))
    line = cli("leaderboard", "--dir", board).error_line()
    assert "convex-hull.json" in line and "visible.json" in line
    visible = json.loads((board / "ovd" / "visible.json").read_text())
    assert "manifest ffffffffffff" in line and f"manifest {visible['dataset']['manifest_sha256'][:12]}" in line
    assert not (board / "ovd.md").exists()
