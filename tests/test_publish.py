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
import yaml
from conftest import run_subprocess
from hub_servers import LoopbackHubStandIn, OlahMirror, SilentServer, free_port
from PIL import Image
from pycocotools import mask as mask_utils

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
    for extra in ({"HF_HUB_OFFLINE": "1"}, {"OVBENCH_HUB_TIMEOUT": "2"}):
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
    for inside in (copy, copy / "hub", tmp_path):
        result = cli("publish", copy, "--repo-id", "o/x", "--to", inside, "--overwrite")
        assert result.code == 2 and "overlaps the data" in result.error_line()
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
