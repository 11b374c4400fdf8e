"""The learned zoo on the CPU: shapes, the papers' formulas on hand cases, learning, checkpoints."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ovbench.baselines import create_model, get_model
from ovbench.baselines.segan import expand_boxes, painter_input
from ovbench.baselines.seganv import (coupled_generator_loss, instance_discriminator_loss,
                                      object_discriminator_loss)
from ovbench.baselines.training import TrainSettings, train
from ovbench.data import AmodalSplit
from ovbench.errors import UserError
from ovbench.metrics import MaskMetrics
from ovbench.protocol import Batch

LEARNED = ("deeplab", "pix2pix", "segan", "seganv")


def settings(name, data, out, pool=None, **overrides):
    values = dict(model=name, data=str(data), pool=str(pool) if pool else None, epochs=1,
                  batch_size=4, size=64, preset="tiny", out=str(out), seed=0)
    values.update(overrides)
    return TrainSettings(**values)


def tiny_model(name, pool_file=None):
    cls = get_model(name)
    from ovbench.baselines.training import open_pool

    pool = open_pool(pool_file, name) if cls.needs_pool else None
    return cls(cls.default_config(TrainSettings(model=name, data="", size=64, preset="tiny")), pool=pool)


@pytest.mark.parametrize("name", LEARNED)
def test_prediction_shapes(name, small_pool):
    model = tiny_model(name, small_pool)
    batch = Batch(torch.rand(2, 3, 96, 96), (torch.rand(2, 1, 96, 96) > 0.5).float(),
                  torch.tensor([[10.0, 12.0, 40.0, 30.0], [0.0, 0.0, 96.0, 96.0]]))
    prediction = model.predict(batch)  # any input size: the model runs at 64 and maps back
    assert prediction.amodal_mask.shape == (2, 1, 96, 96)
    assert 0 <= prediction.amodal_mask.min() and prediction.amodal_mask.max() <= 1
    if name == "deeplab":
        assert prediction.appearance is None
    else:
        assert prediction.appearance.shape == (2, 3, 96, 96)


def test_painter_input_is_eq_1():
    image = torch.full((1, 3, 1, 3), 0.4)
    visible = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    objects = torch.tensor([[[[1.0, 1.0, 0.0]]]])  # pixel 0 visible, 1 hidden part, 2 background
    m = painter_input(image, visible, objects)[0, :, 0]
    assert m[:, 0].tolist() == pytest.approx([0.4, 0.4, 0.4])   # I ⊙ V
    assert m[:, 1].tolist() == [1.0, 0.0, 0.0]                   # red on O − V
    assert m[:, 2].tolist() == [0.0, 0.0, 1.0]                   # blue on J − O − V


def test_box_expansion_and_clipping():
    box = torch.tensor([[10.0, 20.0, 50.0, 40.0]])
    grown = expand_boxes(box, 64, torch.full((1, 4), 0.2))
    assert grown.tolist() == [[0.0, 12.0, 64.0, 64.0]]       # 10−10, 20−8, 60+10 → 64, 60+8 → 64
    inner = expand_boxes(torch.tensor([[20.0, 20.0, 10.0, 10.0]]), 64,
                         torch.tensor([[0.1, 0.3, 0.2, 0.0]]))
    assert inner[0].tolist() == pytest.approx([19.0, 17.0, 32.0, 30.0])


class Lookup(torch.nn.Module):
    """A stand-in discriminator: a fixed logit per input, told apart by the input's first value."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, x):
        return torch.tensor([[self.table[round(float(x.flatten()[0]), 3)]]])


def softplus(v):
    return float(F.softplus(torch.tensor(v)))


def test_coupled_discriminator_losses_are_eqs_1_and_2():
    truth, silhouette, fake = (torch.full((1, 1, 2, 2), v) for v in (0.9, 0.5, 0.2))
    d_obj = Lookup({0.9: 1.5, 0.5: -0.5, 0.2: 0.3})
    # log-likelihood form: −log σ(l) = softplus(−l), −log(1 − σ(l)) = softplus(l)
    expected = 0.5 * softplus(-1.5) + 0.5 * softplus(0.5) + softplus(0.3)
    assert float(object_discriminator_loss(d_obj, truth, silhouette, fake)) == pytest.approx(expected)
    d_ins = Lookup({0.9: 2.0, 0.5: 0.7, 0.2: -1.0})
    expected = softplus(-2.0) + 0.5 * softplus(-1.0) + 0.5 * softplus(0.7)
    assert float(instance_discriminator_loss(d_ins, lambda m: m, truth, silhouette, fake)) == pytest.approx(expected)
    # generator, non-saturating: −log D_obj(M) − ½ log D_ins(M, I, M̂)
    assert float(coupled_generator_loss(d_obj, d_ins, lambda m: m, fake)) == pytest.approx(
        softplus(-0.3) + 0.5 * softplus(1.0))


def iou_on(model, split):
    metrics = MaskMetrics()
    items = torch.utils.data.default_collate([split[i] for i in range(len(split))])
    prediction = model.predict(Batch(items["image"], items["visible"], items["box"]))
    metrics.update(prediction.amodal_mask, items["amodal"], items["visible"], items["occlude_rate"])
    return metrics.compute()["all"]["iou"]


@pytest.fixture(scope="module")
def four_images(small_ovd, tmp_path_factory):
    """The first 4 training objects of the small set, as a dataset of their own."""
    root = tmp_path_factory.mktemp("four") / "ovd"
    shutil.copytree(small_ovd, root)
    document = json.loads((root / "train" / "annotations.json").read_text())
    keep = {image["id"] for image in document["images"][:4]}
    document["images"] = [i for i in document["images"] if i["id"] in keep]
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] in keep]
    (root / "train" / "annotations.json").write_text(json.dumps(document))
    return root


@pytest.mark.parametrize("name,steps", [("deeplab", 25), ("pix2pix", 40), ("segan", 40), ("seganv", 40)])
def test_each_model_learns_four_images(name, steps, four_images, small_pool, tmp_path):
    split = AmodalSplit(four_images, "train")
    torch.manual_seed(0)
    before = iou_on(tiny_model(name, small_pool), split)
    run = tmp_path / name
    train(get_model(name), settings(name, four_images, run, small_pool, epochs=steps, lr=1e-3),
          progress=False)
    after = iou_on(create_model(name, checkpoint=run, pool=small_pool), split)
    assert after > 0.5 and after > before + 0.2, f"{name}: IoU {before:.3f} → {after:.3f}"


@pytest.mark.parametrize("name", ["pix2pix", "seganv"])
def test_resume_gives_identical_next_steps(name, small_ovd, small_pool, tmp_path):
    # 8 images in batches of 2: the cut at step 3 falls mid-epoch.
    def run(out, steps, **extra):
        train(get_model(name), settings(name, small_ovd, out, small_pool, epochs=2, batch_size=2,
                                        max_steps=steps, **extra), progress=False)

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(straight, 5)
    run(resumed, 3)
    with pytest.raises(UserError, match="--resume"):
        run(resumed, 5)
    run(resumed, 5, resume=True)
    a, b = load_file(str(straight / "model-5.safetensors")), load_file(str(resumed / "model-5.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with open(straight / "losses.csv") as x, open(resumed / "losses.csv") as y:
        assert x.read() == y.read()


def test_checkpoint_errors(small_ovd, small_pool, tmp_path, cli):
    run = tmp_path / "pix"
    train(get_model("pix2pix"), settings("pix2pix", small_ovd, run, max_steps=1), progress=False)
    with pytest.raises(UserError, match="checkpoint of 'pix2pix', not 'seganv'"):
        create_model("seganv", checkpoint=run, pool=small_pool)
    record = json.loads((run / "checkpoint-1.json").read_text())
    record["config"]["ngf"] = 32
    (run / "checkpoint-1.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="does not fit pix2pix"):
        create_model("pix2pix", checkpoint=run)
    result = cli("evaluate", "--model", "seganv", "--data", small_ovd, "--quiet")
    assert result.code == 2
    line = result.error_line()
    assert "seganv is not trained yet" in line and "ovbench train --model seganv" in line


def test_bad_training_input(small_ovd, tmp_path, cli, monkeypatch):
    result = cli("train", "--model", "seganv", "--data", small_ovd, "--preset", "tiny", "--quiet",
                 "--out", tmp_path / "a")
    assert result.code == 2 and "--pool" in result.error_line()
    result = cli("train", "--model", "visible", "--data", small_ovd, "--quiet")
    assert result.code == 2 and "needs no training" in result.error_line()
    broken = tmp_path / "broken"
    shutil.copytree(small_ovd, broken)
    document = json.loads((broken / "train" / "annotations.json").read_text())
    for ann in document["annotations"]:
        del ann["visible_mask"]
    (broken / "train" / "annotations.json").write_text(json.dumps(document))
    result = cli("train", "--model", "pix2pix", "--data", broken, "--preset", "tiny", "--quiet",
                 "--out", tmp_path / "b")
    assert result.code == 2 and "lacks visible_mask" in result.error_line()

    # A loss that turns NaN stops the run and keeps the last good checkpoint.
    from ovbench.baselines.pix2pix import Pix2Pix

    original = Pix2Pix.train_step

    def poisoned(self, items, step, optimizers, amp):
        losses = original(self, items, step, optimizers, amp)
        return {**losses, "mask_l1": float("nan")} if step >= 2 else losses

    monkeypatch.setattr(Pix2Pix, "train_step", poisoned)
    run = tmp_path / "nan"
    result = cli("train", "--model", "pix2pix", "--data", small_ovd, "--preset", "tiny",
                 "--save-every", 1, "--quiet", "--out", run)
    assert result.code == 2 and "non-finite at step 3" in result.error_line()
    assert sorted(p.name for p in run.glob("checkpoint-*.json")) == ["checkpoint-1.json", "checkpoint-2.json"]


def test_registry_aliases_for_learned_models():
    assert get_model("yan2019") is get_model("seganv") is get_model("coupled")
    assert get_model("ehsani2018").name == "segan"


def test_results_record_initialisation(small_ovd, tmp_path, cli):
    run = tmp_path / "pix"
    train(get_model("pix2pix"), settings("pix2pix", small_ovd, run, max_steps=1), progress=False)
    out = tmp_path / "result.json"
    assert cli("evaluate", "--model", "pix2pix", "--checkpoint", run, "--data", small_ovd,
               "--quiet", "--out", out).code == 0
    result = json.loads(out.read_text())
    assert result["pretrained"] == "none (random initialisation)"
    assert result["checkpoint"]["file"] == "model-1.safetensors"
    assert result["config"]["model"]["ngf"] == 16


def test_two_process_ddp_on_cpu(small_ovd, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "ovbench", "train",
         "--model", "pix2pix", "--data", str(small_ovd), "--preset", "tiny", "--max-steps", "2",
         "--batch-size", "2", "--device", "cpu", "--quiet", "--out", str(run)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("pix2pix: 2 steps") == 1          # rank 0 reports
    record = json.loads((run / "checkpoint-2.json").read_text())
    weights = load_file(str(run / "model-2.safetensors"))
    assert not any(key.startswith("module.") or ".module." in key for key in weights)
    assert record["model"] == "pix2pix"
