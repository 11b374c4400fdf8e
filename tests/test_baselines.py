"""The learned zoo on the CPU: shapes, the papers' formulas on hand cases, learning, checkpoints."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from ovbench.baselines import create_model, get_model
from ovbench.baselines.segan import expand_boxes, painter_input
from ovbench.baselines.seganv import coupled_generator_loss, instance_discriminator_loss, object_discriminator_loss
from ovbench.baselines.training import TrainSettings, train
from safetensors.torch import load_file

from ovbench.errors import InputError
from ovbench.evaluation.metrics import MaskMetrics
from ovbench.evaluation.protocol import Batch
from ovbench.formats.reader import AmodalSplit

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
    with pytest.raises(InputError, match="`resume`"):
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
    with pytest.raises(InputError, match="checkpoint of 'pix2pix', not 'seganv'"):
        create_model("seganv", checkpoint=run, pool=small_pool)
    record = json.loads((run / "checkpoint-1.json").read_text())
    record["config"]["ngf"] = 32
    (run / "checkpoint-1.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="does not fit pix2pix"):
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


# --------------------------------------------------------------------------- fidelity to the papers

@pytest.mark.parametrize("seg_size,expected_cells", [(500, 10), (320, 4), (128, 4)])
def test_segan_roi_scale_matches_the_feature_map(seg_size, expected_cells):
    from ovbench.baselines.segan import Segmentor

    segmentor = Segmentor(seg_size, 28).eval()
    with torch.no_grad():
        features = segmentor.pool(segmentor.body(torch.zeros(1, 4, seg_size, seg_size)))
    assert features.shape[-1] == segmentor.feature == expected_cells
    # A box covering the whole input maps onto the whole map (500²: 1/50, as SeGAN's code).
    assert seg_size * segmentor.spatial_scale == pytest.approx(features.shape[-1])


class Capture(torch.nn.Module):
    """A stand-in head that keeps what it is given and returns a 28×28 map of zeros."""

    def forward(self, x):
        self.seen = x
        return x.new_zeros(len(x), 28 * 28, 1, 1)


def test_roi_pooling_reads_the_box_it_is_given():
    from ovbench.baselines.segan import Segmentor

    segmentor = Segmentor(500, 28)
    features = torch.zeros(1, 512, 10, 10)
    features[0, :, 6:8, 2:4] = 1.0                  # cells x 2-3, y 6-7
    segmentor.body = segmentor.pool = torch.nn.Identity()
    segmentor.head = Capture()
    # roi_pool's corners are inclusive cells: pixels 100..150 → cells 2..3 at 1/50 (9/500 read 1..2).
    segmentor(features, torch.tensor([[100.0, 300.0, 150.0, 350.0]]))
    assert bool((segmentor.head.seen == 1.0).all())   # the whole 6×6 ROI falls on the marked cells


def test_pool_silhouettes_keep_their_aspect_and_stand_on_the_ground_line():
    from ovbench.baselines.silhouettes import mask_boxes, place

    crop = torch.ones(1, 1, 32, 32, dtype=torch.uint8)          # a full box of aspect 2:1 (w / h)
    targets = torch.zeros(2, 1, 64, 64)
    targets[0, 0, 10:50, 20:40] = 1                             # 20 wide × 40 tall
    boxes = mask_boxes(targets)
    assert boxes.tolist() == [[20.0, 10.0, 20.0, 40.0], [0.0, 0.0, 0.0, 0.0]]
    placed = place(crop.repeat(2, 1, 1, 1), torch.tensor([2.0, 2.0]), boxes, 64)
    ys, xs = torch.nonzero(placed[0, 0], as_tuple=True)
    assert (int(xs.min()), int(xs.max()) + 1) == (20, 40)       # fitted to the box's width ...
    assert (int(ys.min()), int(ys.max()) + 1) == (40, 50)       # ... 10 tall (2:1 kept), on its bottom
    assert placed[1].sum() == 0                                 # an empty target gets nothing


def test_pool_bank_prefers_low_views(small_pool, tmp_path, cli):
    from ovbench.baselines.silhouettes import SilhouetteBank
    from ovbench.baselines.training import open_pool

    two_rings = tmp_path / "pool.h5"                            # 32 views: rings at 0° and 40°
    assert cli("generate", "pool", "--models", 2, "--views", 32, "--size", 64, "--workers", 1,
               "--quiet", "--out", two_rings).code == 0
    pool = open_pool(two_rings, "seganv")
    low = SilhouetteBank.from_pool(pool, 32, max_elevation=10.0)
    assert len(low) == int((pool.elevation <= 10.0).sum()) == len(pool) // 2
    # Each crop is its silhouette's box: the first one matches a direct crop-and-resize.
    x, y, w, h = pool.bbox[0]
    direct = F.interpolate(torch.from_numpy(pool[0][y:y + h, x:x + w])[None, None].float(),
                           size=(32, 32), mode="bilinear", align_corners=False)[0, 0] >= 0.5
    assert (low.crops[0, 0].bool() != direct).float().mean() < 0.03
    assert float(low.aspects[0]) == pytest.approx(w / h)
    # A pool with no low views (one ring at 20°) is used whole rather than not at all.
    single_ring = open_pool(small_pool, "seganv")
    assert len(SilhouetteBank.from_pool(single_ring, 32, max_elevation=10.0)) == len(single_ring)


def test_seganv_iterations_feed_the_recovered_mask_back(small_pool):
    model = tiny_model("seganv", small_pool)
    model.config["iterations"] = 3
    seen, predicted = [], []
    original = model._mask_logits

    def recording(image, incomplete):
        seen.append(incomplete.clone())
        predicted.append(original(image, incomplete))
        return predicted[-1]

    model._mask_logits = recording
    visible = torch.zeros(1, 1, 64, 64)
    visible[..., 20:40, 10:30] = 1
    model.forward_predict(torch.rand(1, 3, 64, 64), visible, torch.tensor([[10.0, 20.0, 20.0, 20.0]]))
    assert len(seen) == 3 and torch.equal(seen[0], visible)     # iteration 1: M̂ = the visible mask
    for logits, fed_back in zip(predicted, seen[1:]):           # then M̂ = V ∪ the previous mask
        assert torch.equal(fed_back, torch.maximum(visible, (logits >= 0).float()))
    assert not torch.equal(seen[1], seen[0])


@pytest.mark.parametrize("epochs,phases", [
    (10, [(1.0, False)] * 5 + [(0.1, False)] * 3 + [(0.01, True)] * 2),
    (5, [(1.0, False)] * 3 + [(0.1, False)] + [(0.01, True)]),
    (1, [(1.0, False)]),
])
def test_seganv_schedule_phases(epochs, phases):
    from ovbench.baselines.seganv import schedule_phase

    assert [schedule_phase(e, epochs, "paper") for e in range(epochs)] == phases
    assert {schedule_phase(e, epochs, "constant") for e in range(epochs)} == {(1.0, False)}


def test_seganv_learning_rate_follows_the_schedule(small_pool):
    model = tiny_model("seganv", small_pool)
    optimizers = model.make_optimizers(1e-4)
    model.start_epoch(9, 10, optimizers, 1e-4)
    rates = [g["lr"] for o in optimizers.values() for g in o.param_groups]
    assert model.end_to_end and rates == pytest.approx([1e-6] * len(rates))
    model.start_epoch(6, 10, optimizers, 1e-4)
    assert not model.end_to_end and optimizers["g1"].param_groups[0]["lr"] == pytest.approx(1e-5)


def test_straight_through_is_binary_forward_identity_backward():
    from ovbench.baselines.learned import straight_through

    p = torch.tensor([0.2, 0.5, 0.9], requires_grad=True)
    out = straight_through(p)
    assert out.tolist() == [0.0, 1.0, 1.0]
    out.sum().backward()
    assert p.grad.tolist() == [1.0, 1.0, 1.0]


def test_pretrained_weights_offline_warn_and_opt_out(small_ovd, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    result = cli("train", "--model", "segan", "--data", small_ovd, "--preset", "tiny", "--max-steps", 1,
                 "--quiet", "--out", tmp_path / "offline")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("ovbench: warning:")]
    assert len(warnings) == 1 and "resnet18-f37072fd.pth" in warnings[0]
    record = json.loads((tmp_path / "offline" / "checkpoint-1.json").read_text())
    assert record["pretrained"].startswith("random: ImageNet ResNet-18")
    result = cli("train", "--model", "segan", "--data", small_ovd, "--preset", "tiny", "--max-steps", 1,
                 "--quiet", "--no-pretrained", "--out", tmp_path / "opted-out")
    assert json.loads((tmp_path / "opted-out" / "checkpoint-1.json").read_text())["pretrained"] == \
        "random (--no-pretrained)"


def test_imagenet_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ovbench.baselines.networks import imagenet_state
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    reference = resnet18().state_dict()
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(reference, cached)
    weights = SimpleNamespace(url="https://download.invalid/models/resnet18-f37072fd.pth")
    state, note = imagenet_state("imagenet", weights, "ResNet-18")
    assert note == "ImageNet ResNet-18 (resnet18-f37072fd.pth)"
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in reference)


@pytest.mark.parametrize("name", ["losses.csv", "state-1.safetensors", "settings.json"])
def test_a_file_that_is_not_a_checkpoint_gets_one_line(name, small_ovd, tmp_path, cli):
    run = tmp_path / "pix"
    train(get_model("pix2pix"), settings("pix2pix", small_ovd, run, max_steps=1), progress=False)
    result = cli("evaluate", "--model", "pix2pix", "--checkpoint", run / name, "--data", small_ovd, "--quiet")
    assert result.code == 2 and "not a checkpoint" in result.error_line()
