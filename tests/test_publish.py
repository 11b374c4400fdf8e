"""`ovbench publish` and `--data hub:`: the local repository layout read by `datasets`, the read
path over HTTP through a real Hub mirror (olah), the upload call sequence against a loopback
stand-in, and the refusals. No test needs the internet."""

import filecmp
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import datasets
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import run_subprocess
from hub_servers import LoopbackHubStandIn, OlahMirror, SilentServer, free_port
from PIL import Image
from pycocotools import mask as mask_utils
from safetensors.torch import load_file

TOKEN = "hf_standin_0123456789abcdef"
FILE_COLUMNS = {"ovd": {"image": "file_name", "appearance": "appearance"},
                "dyce": {"image": "file_name", "depth": "depth_file", "instances": "instances_file"}}
ADDED_OBJECT_COLUMNS = {"category", "amodal_image", "visible_image", "appearance"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory, small_ovd, small_dyce, small_pool):
    """A folder as `ovbench generate` writes it: ovd/, dyce/, pool.h5."""
    root = tmp_path_factory.mktemp("suite")
    for name, target in (("ovd", small_ovd), ("dyce", small_dyce), ("pool.h5", small_pool)):
        (root / name).symlink_to(target)
    return root


@pytest.fixture(scope="module")
def layout(suite, tmp_path_factory):
    from ovbench.cli import main

    out = tmp_path_factory.mktemp("layout") / "repo"
    assert main(["publish", str(suite), "--repo-id", "org/suite", "--to", str(out), "--quiet"]) == 0
    return out


def _undecoded(split: datasets.Dataset) -> datasets.Dataset:
    """Image columns (top level and inside objects) as stored bytes."""
    features = split.features.copy()
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            features[name] = datasets.Image(decode=False)
    if "objects" in features:
        inner = dict(features["objects"].feature)
        features["objects"] = datasets.List({k: datasets.Image(decode=False) if isinstance(v, datasets.Image)
                                             else v for k, v in inner.items()})
    return split.cast(features)


def _png_mask(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L")) > 0


def _coco_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def _check_split_against_folder(loaded: datasets.Dataset, folder: Path, split: str, kind: str) -> None:
    document = json.loads((folder / split / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in document["categories"]}
    rows = _undecoded(loaded)
    assert [row["image_id"] for row in rows] == [image["id"] for image in document["images"]]
    for row, image in zip(rows, document["images"]):
        for column, key in FILE_COLUMNS[kind].items():
            assert row[column]["bytes"] == (folder / split / image[key]).read_bytes(), (column, image[key])
        anns = [a for a in document["annotations"] if a["image_id"] == image["id"]]
        assert len(row["objects"]) == len(anns)
        for obj, ann in zip(row["objects"], anns):
            assert {k: v for k, v in obj.items() if k not in ADDED_OBJECT_COLUMNS} == ann
            assert obj["category"] == names[ann["category_id"]]
            assert np.array_equal(_png_mask(obj["amodal_image"]["bytes"]), _coco_mask(ann["segmentation"]))
            assert np.array_equal(_png_mask(obj["visible_image"]["bytes"]), _coco_mask(ann["visible_mask"]))
            if kind == "dyce":
                name = image["appearance"][str(ann["id"])]
                assert obj["appearance"]["bytes"] == (folder / split / name).read_bytes()
        others = [o for o in document["occluders"] if o["image_id"] == image["id"]]
        assert row["occluders"] == others
        if kind == "dyce":
            assert row["scene_objects"] == image["objects"]
            assert row["occlusion_graph"] == image["occlusion_graph"]
            assert row["depth_order"] == image["depth_order"]


def test_layout_loads_with_datasets_byte_identical(layout, small_ovd, small_dyce, small_pool):
    assert sorted(p.relative_to(layout).as_posix() for p in layout.rglob("*") if p.is_file()) == [
        "README.md", "dyce/coco_header.json", "dyce/manifest.json", "dyce/test-00000-of-00001.parquet",
        "dyce/train-00000-of-00001.parquet", "ovd/coco_header.json", "ovd/manifest.json",
        "ovd/test-00000-of-00001.parquet", "ovd/train-00000-of-00001.parquet", "pool/pool.json",
        "pool/train-00000-of-00001.parquet"]
    default = datasets.load_dataset(str(layout))
    assert sorted(default) == ["test", "train"] and default["train"].num_rows == 8  # ovd is the default
    for kind, folder in (("ovd", small_ovd), ("dyce", small_dyce)):
        loaded = datasets.load_dataset(str(layout), kind)
        for split in ("train", "test"):
            _check_split_against_folder(loaded[split], folder, split, kind)
    pool = _undecoded(datasets.load_dataset(str(layout), "pool")["train"])
    with h5py.File(small_pool) as h5:
        width = h5["masks"].attrs["width"]
        masks = np.unpackbits(h5["masks"][()], axis=-1, count=width).astype(bool)
        assert pool.num_rows == len(masks)
        for i, row in enumerate(pool):
            assert np.array_equal(_png_mask(row["silhouette"]["bytes"]), masks[i])
            assert row["model_id"] == h5["model_id"].asstr()[i] and row["view"] == h5["view"][i]
            assert row["bbox"] == h5["bbox"][i].tolist() and row["azimuth"] == h5["azimuth"][i]


def test_a_dataset_with_indented_annotations_rebuilds_byte_for_byte(small_ovd, tmp_path, cli):
    """Datasets made before annotations.json was written compact are indented: the rebuild from
    the Hub's rows writes the layout the manifest's checksums name."""
    from tqdm import tqdm

    from ovbench.formats.dataset import sha256
    from ovbench.hub.fetch import _rebuild_folder

    older = Path(shutil.copytree(small_ovd, tmp_path / "suite" / "ovd"))
    manifest = json.loads((older / "manifest.json").read_text())
    for split in ("train", "test"):
        path = older / split / "annotations.json"
        path.write_text(json.dumps(json.loads(path.read_text()), indent=2, sort_keys=True) + "\n")
        manifest["files"][f"{split}/annotations.json"] = sha256(path)
    (older / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    assert cli("publish", tmp_path / "suite", "--repo-id", "org/older", "--to", tmp_path / "repo", "--quiet").code == 0
    _rebuild_folder(tmp_path / "repo", "ovd", tmp_path / "rebuilt", tqdm(disable=True))
    assert _identical(filecmp.dircmp(older, tmp_path / "rebuilt"))


def test_card_metadata_counts_and_citations(layout, small_ovd):
    text = (layout / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["license"] == "cc-by-4.0"
    assert set(metadata["task_categories"]) == {"image-segmentation", "image-to-image"}
    configs = {c["config_name"]: c for c in metadata["configs"]}
    assert sorted(configs) == ["dyce", "ovd", "pool"] and configs["ovd"].get("default") is True
    info = {c["config_name"]: c for c in metadata["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in info["ovd"]["splits"]} == {"train": 8, "test": 6}
    manifest = json.loads((small_ovd / "manifest.json").read_text())
    rates = [a["occlude_rate"] for a in
             json.loads((small_ovd / "train" / "annotations.json").read_text())["annotations"]]
    assert f"| train | 8 | {manifest['splits']['train']['annotations']} |" in text
    assert f"| {np.mean(rates):.3f} |" in text
    assert "@inproceedings{yan2019visualizing" in text and "@inproceedings{ehsani2018segan" in text
    assert f'"seed": {manifest["seed"]}' in text and f'"ovbench_version": "{manifest["ovbench_version"]}"' in text


def test_shards_stay_under_max_shard_size(small_ovd, tmp_path, cli):
    result = cli("publish", small_ovd, "--repo-id", "org/ovd", "--to", tmp_path / "repo",
                 "--max-shard-size", "30KB", "--quiet")
    assert result.code == 0, result.err
    shards = sorted((tmp_path / "repo" / "ovd").glob("train-*.parquet"))
    assert len(shards) > 1
    assert [s.name for s in shards] == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for shard in shards:
        table = pq.read_table(shard)
        assert table.nbytes <= 30_000 or table.num_rows == 1
    loaded = datasets.load_dataset(str(tmp_path / "repo"))["train"]
    _check_split_against_folder(loaded, small_ovd, "train", "ovd")


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)


def _hub_env(tmp_path: Path, endpoint: str, **extra) -> dict:
    """Environment for a subprocess talking to `endpoint`, with its own Hub and ovbench caches."""
    return {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"),
            "OVBENCH_CACHE": str(tmp_path / "ovbench-cache"), "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def test_read_path_over_http_through_a_hub_mirror(layout, small_ovd, small_pool, tmp_path, cli):
    with OlahMirror(tmp_path / "olah") as mirror:
        mirror.add_dataset("org/suite", layout)
        env = _hub_env(tmp_path, mirror.url)
        script = ("import datasets, hashlib, json\n"
                  "d = datasets.load_dataset('org/suite')\n"
                  "d = d.cast_column('image', datasets.Image(decode=False))\n"
                  "print(json.dumps({s: [hashlib.sha256(r['image']['bytes']).hexdigest() for r in d[s]]"
                  " for s in d}))\n")
        loaded = run_subprocess_python(script, env)
        for split in ("train", "test"):
            images = json.loads((small_ovd / split / "annotations.json").read_text())["images"]
            assert loaded[split] == [hashlib.sha256((small_ovd / split / i["file_name"]).read_bytes()).hexdigest()
                                     for i in images]
        # A Hub cache of its own: only ovbench's downloads fill it (the offline reads below need them).
        env = {**env, "HF_HOME": str(tmp_path / "hf-ovbench")}
        over_hub = run_subprocess("evaluate", "--model", "visible", "--data", "hub:org/suite",
                                  "--out", tmp_path / "hub.json", "--quiet", env=env)
        assert over_hub.returncode == 0, over_hub.stderr
        pool_path = run_subprocess_python(
            "import json; from ovbench.hub import resolve_pool; "
            "print(json.dumps(str(resolve_pool('hub:org/suite'))))", env)
        trained = run_subprocess("train", "--model", "seganv", "--preset", "tiny", "--max-steps", 1,
                                 "--data", "hub:org/suite/ovd", "--pool", "hub:org/suite",
                                 "--out", tmp_path / "run", "--quiet", env=env)
        assert trained.returncode == 0, trained.stderr
        assert list((tmp_path / "run").glob("model-*.safetensors"))
    # The rebuilt folder is the original, file for file; the evaluation matches the local one.
    rebuilt = next((tmp_path / "ovbench-cache" / "hub" / "org--suite").glob("*/ovd"))
    compare = filecmp.dircmp(rebuilt, small_ovd)
    assert _identical(compare), (compare.diff_files, compare.left_only, compare.right_only)
    assert cli("validate", rebuilt).code == 0
    assert cli("evaluate", "--model", "visible", "--data", small_ovd, "--out", tmp_path / "local.json",
               "--quiet").code == 0
    hub_result, local_result = (json.loads((tmp_path / n).read_text()) for n in ("hub.json", "local.json"))
    assert hub_result["metrics"]["mask"] == local_result["metrics"]["mask"]
    assert hub_result["dataset"]["manifest_sha256"] == local_result["dataset"]["manifest_sha256"]
    assert hub_result["dataset"]["source"] == "hub:org/suite"
    with h5py.File(pool_path) as rebuilt_pool, h5py.File(small_pool) as original:
        assert sorted(rebuilt_pool) == sorted(original)
        for name in original:
            assert np.array_equal(rebuilt_pool[name][()], original[name][()]), name
        assert {k: str(v) for k, v in rebuilt_pool.attrs.items()} == {k: str(v) for k, v in original.attrs.items()}
    # The mirror is gone: the local cache still serves, offline or not.
    for extra in ({"HF_HUB_OFFLINE": "1"}, {"OVBENCH_HUB_TIMEOUT": "2"},
                  {"HF_HUB_OFFLINE": "1", "OVBENCH_CACHE": str(tmp_path / "fresh-cache")}):
        cached = run_subprocess("evaluate", "--model", "visible", "--data", "hub:org/suite", "--out",
                                tmp_path / "cached.json", "--quiet", env={**env, **extra})
        assert cached.returncode == 0, cached.stderr


def _identical(compare: filecmp.dircmp) -> bool:
    # dircmp compares by stat signature only when shallow; recheck contents byte by byte
    _, mismatch, errors = filecmp.cmpfiles(compare.left, compare.right, compare.common_files, shallow=False)
    return (not mismatch and not errors and not compare.left_only and not compare.right_only
            and all(_identical(sub) for sub in compare.subdirs.values()))


def run_subprocess_python(script: str, env: dict):
    import subprocess

    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_push_call_sequence_and_files_against_a_loopback_stand_in(suite, layout, small_ovd, tmp_path):
    with LoopbackHubStandIn(TOKEN) as hub:
        # The stand-in speaks the LFS "basic" transfer; Xet (the client's default) is switched off.
        env = _hub_env(tmp_path, hub.url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1")
        pushed = run_subprocess("publish", suite, "--repo-id", "org/suite", "--quiet", env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert TOKEN not in pushed.stdout + pushed.stderr
        calls = [c for c in hub.calls() if c not in ("unknown", "validate-yaml")]
        lfs_puts = calls.count("lfs-put")
        assert calls == ["whoami", "tree", "create", "tree", "preupload", "lfs-batch", *["lfs-put"] * lfs_puts,
                         "commit"]
        assert lfs_puts == len(list(layout.rglob("*.parquet")))
        assert hub.private["org/suite"] is False
        repo = hub.repos["org/suite"]
        assert {k: v for k, v in repo.items() if k != ".gitattributes"} == _files(layout)

        # Same schema again: an update. Another schema: refused, unless --overwrite.
        assert run_subprocess("publish", suite, "--repo-id", "org/suite", "--private", "--quiet",
                              env=env).returncode == 0
        assert hub.private["org/suite"] is True and "settings" in hub.calls()
        refused = run_subprocess("publish", small_ovd, "--repo-id", "org/suite", "--quiet", env=env)
        assert refused.returncode == 2
        assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
        replaced = run_subprocess("publish", small_ovd, "--repo-id", "org/suite", "--overwrite", "--quiet", env=env)
        assert replaced.returncode == 0, replaced.stderr
        assert sorted(repo) == [".gitattributes", "README.md", "ovd/coco_header.json", "ovd/manifest.json",
                                "ovd/test-00000-of-00001.parquet", "ovd/train-00000-of-00001.parquet"]
        assert any(path.startswith("pool/") for path in hub.commits[-1]["deleted"])
    assert not any(TOKEN.encode() in data for data in _files(tmp_path).values() if len(data) < 10_000_000)


def test_no_token_or_a_refused_one_is_one_line(small_ovd, tmp_path):
    with LoopbackHubStandIn(TOKEN) as hub:
        result = run_subprocess("publish", small_ovd, "--repo-id", "org/x", "--quiet", env=_hub_env(tmp_path, hub.url))
        assert "whoami" not in hub.calls()
        wrong = "hf_wrong_token_987654321"
        refused = run_subprocess("publish", small_ovd, "--repo-id", "org/x", "--quiet",
                                 env=_hub_env(tmp_path, hub.url, HF_TOKEN=wrong))
    assert result.returncode == 2
    assert "no Hugging Face token" in result.stderr and "Traceback" not in result.stderr
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr and "Traceback" not in refused.stderr
    assert wrong not in refused.stdout + refused.stderr


def test_unreachable_hub_fails_fast_without_retries(small_ovd, tmp_path):
    with SilentServer() as silent:
        started = time.monotonic()
        result = run_subprocess("publish", small_ovd, "--repo-id", "org/x", "--quiet",
                                env=_hub_env(tmp_path, silent.url, HF_TOKEN=TOKEN, OVBENCH_HUB_TIMEOUT="1"))
        elapsed = time.monotonic() - started
        connections = len(silent.connections)
    assert result.returncode == 2 and "cannot reach the Hugging Face Hub" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert connections <= 2  # the client's own registry probe, then our one request: no retry storm
    assert elapsed < 30
    closed = run_subprocess("publish", small_ovd, "--repo-id", "org/x", "--quiet",
                            env=_hub_env(tmp_path, f"http://127.0.0.1:{free_port()}", HF_TOKEN=TOKEN))
    assert closed.returncode == 2 and "cannot reach the Hugging Face Hub" in closed.stderr


def test_unreachable_hub_on_the_read_path_names_the_cache(tmp_path):
    with SilentServer() as silent:
        started = time.monotonic()
        result = run_subprocess("evaluate", "--model", "visible", "--data", "hub:org/x", "--quiet",
                                env=_hub_env(tmp_path, silent.url, OVBENCH_HUB_TIMEOUT="1"))
        elapsed, connections = time.monotonic() - started, len(silent.connections)
    assert result.returncode == 2 and "not in the local cache" in result.stderr, result.stderr
    assert connections <= 2 and elapsed < 30


def test_refuses_a_folder_that_fails_validation(small_ovd, tmp_path, cli):
    broken = tmp_path / "ovd"
    shutil.copytree(small_ovd, broken)
    image = next((broken / "train" / "images").glob("*.png"))
    image.write_bytes(image.read_bytes()[:-8])
    result = cli("publish", broken, "--repo-id", "org/x", "--to", tmp_path / "repo")
    assert result.code == 2 and "fails validation" in result.error_line()
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("args, expected", [
    (["--repo-id", "no-slash"], "bad --repo-id"),
    (["--repo-id", "org/x", "--max-shard-size", "lots"], "bad --max-shard-size"),
])
def test_publish_bad_options(small_ovd, tmp_path, cli, args, expected):
    result = cli("publish", small_ovd, *args, "--to", tmp_path / "repo")
    assert result.code == 2 and expected in result.error_line()


def test_publish_refuses_non_dataset_and_occupied_destination(small_ovd, tmp_path, cli):
    (tmp_path / "empty").mkdir()
    assert "holds no ovbench dataset" in cli("publish", tmp_path / "empty", "--repo-id", "o/x",
                                              "--to", tmp_path / "r").error_line()
    unfinished = tmp_path / "suite" / "ovd"
    (unfinished / ".parts").mkdir(parents=True)
    assert "unfinished" in cli("publish", tmp_path / "suite", "--repo-id", "o/x", "--to", tmp_path / "r").error_line()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    result = cli("publish", small_ovd, "--repo-id", "o/x", "--to", occupied)
    assert result.code == 2 and "--overwrite" in result.error_line()
    assert (occupied / "keep.txt").read_text() == "mine"
    copy = tmp_path / "copy"
    shutil.copytree(small_ovd, copy)
    for inside, refusal in ((copy, "inside the dataset folder"), (copy / "hub", "inside the dataset folder"),
                            (tmp_path, "overlaps the data")):
        result = cli("publish", copy, "--repo-id", "o/x", "--to", inside, "--overwrite")
        assert result.code == 2 and refusal in result.error_line()
    assert cli("validate", copy).code == 0


@pytest.mark.parametrize("spec, expected", [
    ("hub:just-a-name", "bad Hub dataset"),
    ("hub:org/name/config/extra", "bad Hub dataset"),
])
def test_bad_hub_specs(spec, expected, cli):
    result = cli("evaluate", "--model", "visible", "--data", spec)
    assert result.code == 2 and expected in result.error_line()


def test_licence_defaults_to_other_when_third_party_sources_went_in():
    from ovbench.hub import card
    from ovbench.hub import layout as hub_layout

    def made_from(**config):
        return hub_layout.ConfigLayout(hub_layout.Source("ovd", Path("x")), None, {},
                                       manifest={"config": config})

    assert card.default_license([made_from(base="builtin", occluders="builtin")]) == "cc-by-4.0"
    assert card.default_license([made_from(base="coco", occluders="builtin")]) == "other"
    assert card.default_license([made_from(base="builtin", occluders="dir")]) == "other"


# --------------------------------------------------------------------------- models

@pytest.fixture(scope="module")
def trained(small_ovd, tmp_path_factory):
    """A tiny pix2pix run (one step) scored on small_ovd, its result file in ./leaderboards, and
    the model repository `publish --to` makes of it."""
    from ovbench.cli import main

    folder = tmp_path_factory.mktemp("model")
    here = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["train", "--model", "pix2pix", "--preset", "tiny", "--max-steps", "1", "--no-pretrained",
                     "--data", str(small_ovd), "--out", "runs/pix2pix", "--quiet"]) == 0
        assert main(["evaluate", "--model", "pix2pix", "--checkpoint", "runs/pix2pix", "--data", str(small_ovd),
                     "--quiet"]) == 0
        assert main(["publish", "runs/pix2pix", "--repo-id", "org/pix2pix-tiny", "--to", "repo", "--quiet"]) == 0
    finally:
        os.chdir(here)
    (result,) = (folder / "leaderboards").rglob("*.json")
    return folder, result


def test_a_result_file_naming_a_folder_outside_is_left_out(trained, tmp_path, cli, monkeypatch):
    folder, result_file = trained
    evil = folder / "leaderboards" / "evil.json"
    # its benchmark would put it in repo/escaped/
    evil.write_text(json.dumps({**json.loads(result_file.read_text()), "benchmark": "../escaped"}))
    monkeypatch.chdir(folder)
    try:
        assert cli("publish", "runs/pix2pix", "--repo-id", "org/p", "--to", tmp_path / "repo", "--quiet").code == 0
    finally:
        evil.unlink()
    published = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert published == ["repo/config.json", f"repo/results/{result_file.parent.name}/{result_file.name}"]


def test_model_repository_holds_weights_config_results_and_a_card(trained):
    folder, result_file = trained
    repo = folder / "repo"
    result = json.loads(result_file.read_text())
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
        "README.md", "config.json", "model.safetensors", f"results/{result['benchmark']}/{result_file.name}"]
    weights = (repo / "model.safetensors").read_bytes()
    assert weights == (folder / "runs" / "pix2pix" / "model-1.safetensors").read_bytes()
    assert hashlib.sha256((repo / "model.safetensors").read_bytes()).hexdigest() == result["checkpoint"]["sha256"]
    config = json.loads((repo / "config.json").read_text())
    record = json.loads((folder / "runs" / "pix2pix" / "checkpoint-1.json").read_text())
    assert config == {k: v for k, v in record.items() if k != "optimizers"}
    text = (repo / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["library_name"] == "ovbench" and "pix2pix" in metadata["tags"]
    (entry,) = metadata["model-index"][0]["results"]
    assert entry["dataset"]["name"] == result["benchmark"] and entry["dataset"]["split"] == "test"
    assert {m["type"]: m["value"] for m in entry["metrics"]}["iou"] == round(result["metrics"]["mask"]["all"]["iou"], 4)
    assert f"| {result['benchmark']} | test | {result['metrics']['mask']['all']['instances']} |" in text
    assert "@inproceedings{isola2017image" in text and "@inproceedings{yan2019visualizing" in text
    assert '"max_steps": 1' in text  # the training recipe


def test_a_published_model_loads_through_the_mirror_and_scores_as_the_local_run(trained, small_ovd, tmp_path):
    folder, result_file = trained
    with OlahMirror(tmp_path / "olah") as mirror:
        mirror.add_model("org/pix2pix-tiny", folder / "repo")
        env = _hub_env(tmp_path, mirror.url)
        over_hub = run_subprocess("evaluate", "--model", "pix2pix", "--checkpoint", "hub:org/pix2pix-tiny",
                                  "--data", small_ovd, "--out", tmp_path / "hub.json", "--quiet", env=env)
        assert over_hub.returncode == 0, over_hub.stderr
    local, hub = json.loads(result_file.read_text()), json.loads((tmp_path / "hub.json").read_text())
    assert hub["metrics"] == local["metrics"] and hub["checkpoint"]["sha256"] == local["checkpoint"]["sha256"]
    downloaded = {p.name for p in (tmp_path / "hf-home").rglob("*") if p.is_file() and "snapshots" in p.parts}
    assert downloaded == {"config.json", "model.safetensors"}  # never the card, the results, or code
    cached = run_subprocess("evaluate", "--model", "pix2pix", "--checkpoint", "hub:org/pix2pix-tiny", "--data",
                            small_ovd, "--out", tmp_path / "cached.json", "--quiet", env={**env, "HF_HUB_OFFLINE": "1"})
    assert cached.returncode == 0, cached.stderr
    # Fine-tuning starts from the published weights: one step at a negligible rate leaves them.
    tuned = run_subprocess("train", "--model", "pix2pix", "--checkpoint", "hub:org/pix2pix-tiny", "--data", small_ovd,
                           "--max-steps", 1, "--lr", "1e-12", "--out", tmp_path / "tuned", "--quiet",
                           env={**env, "HF_HUB_OFFLINE": "1"})
    assert tuned.returncode == 0 and "fine-tuned from hub:org/pix2pix-tiny" in tuned.stdout, tuned.stderr
    start = load_file(str(folder / "repo" / "model.safetensors"))
    after = load_file(str(tmp_path / "tuned" / "model-1.safetensors"))
    assert start.keys() == after.keys()
    for name in start:
        if "running_" not in name and "num_batches" not in name:  # BatchNorm's statistics move with any step
            assert torch.allclose(start[name], after[name], atol=1e-6), name
    missing = run_subprocess("evaluate", "--model", "pix2pix", "--checkpoint", "hub:org/other", "--data", small_ovd,
                             "--quiet", env={**env, "HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 2 and "not in the local cache" in missing.stderr


def test_a_model_push_against_the_stand_in(trained, tmp_path):
    folder, _ = trained
    with LoopbackHubStandIn(TOKEN) as hub:
        env = _hub_env(tmp_path, hub.url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1")
        pushed = run_subprocess("publish", folder / "runs" / "pix2pix", "--repo-id", "org/pix2pix-tiny", env=env,
                                cwd=folder)
        assert pushed.returncode == 0, pushed.stderr
        assert TOKEN not in pushed.stdout + pushed.stderr
        calls = [c for c in hub.calls() if c not in ("unknown", "validate-yaml")]
        assert calls[:3] == ["whoami", "tree", "create"] and calls[-1] == "commit" and "lfs-put" in calls
        repo = hub.repos["org/pix2pix-tiny"]
        assert {k: v for k, v in repo.items() if k != ".gitattributes"} == _files(folder / "repo")
        # The same model again is an update; another repository's contents need --overwrite.
        assert run_subprocess("publish", folder / "runs" / "pix2pix", "--repo-id", "org/pix2pix-tiny",
                              "--quiet", env=env, cwd=folder).returncode == 0
        hub.repos["org/pix2pix-tiny"]["config.json"] = json.dumps({"model": "deeplab"}).encode()
        refused = run_subprocess("publish", folder / "runs" / "pix2pix", "--repo-id", "org/pix2pix-tiny",
                                 "--quiet", env=env, cwd=folder)
        assert refused.returncode == 2 and "holds a deeplab model" in refused.stderr
        assert "--overwrite" in refused.stderr and TOKEN not in refused.stderr
