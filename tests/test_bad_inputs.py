"""Every bad input a user (or an attacker) can give: one line, exit 2, nothing written outside its
folder, nothing half-written, no traceback. Each case builds its own damaged copy of the small
datasets; the expected line is matched as the command line prints it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_subprocess
from PIL import Image

from ovbench.cli import main


@pytest.fixture
def ovd(small_ovd, tmp_path):
    """A private copy of the small OVD set, to damage."""
    return Path(shutil.copytree(small_ovd, tmp_path / "ovd"))


def _images(root: Path, split: str = "test") -> list[dict]:
    return json.loads((root / split / "annotations.json").read_text())["images"]


@pytest.fixture(scope="module")
def run(small_ovd, tmp_path_factory):
    """A pix2pix run of one step: its state file and losses.csv are not checkpoints."""
    out = tmp_path_factory.mktemp("run") / "pix2pix"
    assert main(["train", "--model", "pix2pix", "--data", str(small_ovd), "--preset", "tiny", "--max-steps", "1",
                 "--out", str(out), "--quiet"]) == 0
    return out


def _refused(cli, *args, match: str) -> str:
    result = cli(*args)
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    line = result.error_line()
    assert match in line, line
    return line


# --------------------------------------------------------------------------- names from data

def test_split_names_cannot_leave_the_output(cli, tmp_path):
    _refused(cli, "generate", "ovd", "--splits", "../x=2,test=2", "--out", tmp_path / "d", "--quiet",
             match="bad split name '../x'")
    assert not (tmp_path / "x").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("name", ["../../escape.png", "/tmp/escape.png", "images/../../escape.png"])
def test_annotation_file_names_stay_in_the_split(ovd, cli, tmp_path, name):
    path = ovd / "test" / "annotations.json"
    document = json.loads(path.read_text())
    document["images"][0]["file_name"] = name
    path.write_text(json.dumps(document))
    for command in (["evaluate", "--model", "visible", "--data", ovd, "--out", tmp_path / "r.json"],
                    ["show", ovd, "--split", "test", "-o", tmp_path / "s.png"]):
        _refused(cli, *command, match=f"unsafe file name {name!r} in test/annotations.json")
    assert "unsafe file name" in cli("validate", ovd).err


def test_coco_image_names_stay_in_the_images_folder(cli, tmp_path):
    from ovbench.formats.masks import encode

    mask = np.zeros((64, 64), bool)
    mask[20:40, 10:50] = True
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "secret.png")
    (tmp_path / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "../secret.png", "width": 64, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": int(mask.sum()),
                         "bbox": [10, 20, 40, 20], "segmentation": encode(mask)}],
        "categories": [{"id": 3, "name": "car"}]}))
    _refused(cli, "generate", "ovd", "--base", f"coco:{tmp_path / 'ann.json'}:{tmp_path / 'images'}",
             "--splits", "train=1,test=1", "--size", "64", "--out", tmp_path / "d", "--quiet",
             match="unsafe file name '../secret.png' in ann.json")
    assert not (tmp_path / "d").exists()


def test_a_symbolic_link_out_of_the_split_is_refused(ovd, cli, tmp_path):
    outside = tmp_path / "secret.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(outside)
    (ovd / "test" / "link").symlink_to(tmp_path)
    path = ovd / "test" / "annotations.json"
    document = json.loads(path.read_text())
    document["images"][0]["file_name"] = "link/secret.png"
    path.write_text(json.dumps(document))
    _refused(cli, "evaluate", "--model", "visible", "--data", ovd, "--quiet", "--out", tmp_path / "r.json",
             match="a symbolic link leads outside")


def test_a_tampered_hub_snapshot_is_refused_and_writes_nothing_outside_the_cache(small_ovd, tmp_path, cli):
    """A published repository whose row names a file outside the dataset, read from the Hub cache
    offline (as a user who once downloaded it): refused before anything is written."""
    repo = tmp_path / "repo"
    assert cli("publish", small_ovd, "--repo-id", "org/evil", "--to", repo, "--quiet").code == 0
    shard = next((repo / "ovd").glob("test-*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["image"]["path"] = "../../../../escaped.png"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    commit = "0" * 40
    cache = tmp_path / "hf" / "hub" / "datasets--org--evil"
    shutil.copytree(repo, cache / "snapshots" / commit)
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text(commit)
    result = run_subprocess("evaluate", "--model", "visible", "--data", "hub:org/evil", "--quiet",
                            "--out", tmp_path / "r.json",
                            env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
                                 "OVBENCH_CACHE": str(tmp_path / "ovbench-cache")})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "unsafe file name '../../../../escaped.png' in a Hub row" in result.stderr
    assert not list(tmp_path.rglob("escaped.png"))
    assert not list((tmp_path / "ovbench-cache").rglob("*.png"))  # the half-made rebuild is gone


def test_commands_never_write_into_a_dataset(ovd, cli):
    _refused(cli, "convert", ovd, "--to", "cocoa", "-o", ovd / "cocoa", match="inside the dataset folder")
    _refused(cli, "show", ovd, "-o", ovd / "sheet.png", match="inside the dataset folder")
    _refused(cli, "evaluate", "--model", "visible", "--data", ovd, "--out", ovd / "test" / "r.json",
             match="inside the dataset folder")
    assert cli("validate", ovd).code == 0


# --------------------------------------------------------------------------- damaged files

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("damage", [_truncate, lambda p: p.write_bytes(b"not hdf5 " * 50),
                                    lambda p: p.write_bytes(b"")], ids=["truncated", "garbage", "empty"])
def test_a_damaged_pool_is_one_line_everywhere(small_pool, small_ovd, tmp_path, cli, damage):
    pool = tmp_path / "pool.h5"
    shutil.copy(small_pool, pool)
    damage(pool)
    match = "is not a readable silhouette pool"
    _refused(cli, "evaluate", "--model", "pool-nn", "--pool", pool, "--data", small_ovd, "--quiet",
             "--out", tmp_path / "r.json", match=match)
    _refused(cli, "train", "--model", "seganv", "--pool", pool, "--data", small_ovd, "--preset", "tiny",
             "--max-steps", "1", "--out", tmp_path / "run", "--quiet", match=match)
    _refused(cli, "publish", pool, "--repo-id", "org/pool", "--to", tmp_path / "repo", "--quiet", match=match)
    _refused(cli, "generate", "pool", "--models", "2", "--views", "2", "--size", "32", "--out", pool,
             "--resume", "--quiet", match=match)
    _refused(cli, "show", pool, "-o", tmp_path / "s.png", match=match)


def _first_file(root: Path, key: str) -> Path:
    return root / "test" / _images(root)[0][key]


def _swap_with_another_image(root: Path) -> None:
    first, second = (root / "test" / image["file_name"] for image in _images(root)[:2])
    shutil.copy(second, first)


@pytest.mark.parametrize("damage,match", [
    (lambda root: _truncate(root / "test" / "annotations.json"), "is not a readable annotation file"),
    (lambda root: _first_file(root, "file_name").unlink(), "is missing (listed in manifest.json)"),
    (lambda root: _first_file(root, "file_name").write_bytes(b"garbage"), "differs from the file manifest.json lists"),
    (_swap_with_another_image, "differs from the file manifest.json lists"),
    (lambda root: _first_file(root, "appearance").unlink(), "is missing (listed in manifest.json)"),
    (lambda root: (root / "manifest.json").write_text("{"), "is not a readable manifest"),
], ids=["truncated-annotations", "deleted-image", "garbage-image", "swapped-image", "deleted-appearance",
        "truncated-manifest"])
def test_evaluate_verifies_the_files_it_reads(ovd, cli, tmp_path, damage, match):
    damage(ovd)
    _refused(cli, "evaluate", "--model", "visible", "--data", ovd, "--quiet", "--out", tmp_path / "r.json",
             match=match)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("damage,line", [
    (lambda root: _first_file(root, "file_name").write_bytes(b"garbage"), "not a readable image"),
    (lambda root: _first_file(root, "appearance").unlink(), "file missing"),
], ids=["garbage-image", "missing-appearance"])
def test_validate_reports_unreadable_files_as_file_and_rule(ovd, cli, damage, line):
    damage(ovd)
    result = cli("validate", ovd)
    assert result.code == 1 and "Traceback" not in result.err
    name = next(p for p in result.err.splitlines() if line in p).split(":")[0]
    assert (ovd / name).parent.is_dir() and name.startswith("test/")


@pytest.mark.parametrize("name", ["state-1.safetensors", "losses.csv", "settings.json"])
def test_a_wrong_checkpoint_file_is_one_line(run, small_ovd, cli, tmp_path, name):
    _refused(cli, "evaluate", "--model", "pix2pix", "--checkpoint", run / name, "--data", small_ovd,
             "--quiet", "--out", tmp_path / "r.json", match="is not a checkpoint")


# --------------------------------------------------------------------------- values out of range

@pytest.mark.parametrize("args,match", [
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--max-steps", "0"], "--max-steps must be positive"),
    (["--time-limit", "0"], "--time-limit must be positive"),
])
def test_training_settings_out_of_range(small_ovd, cli, tmp_path, args, match):
    _refused(cli, "train", "--model", "pix2pix", "--data", small_ovd, "--out", tmp_path / "run", "--quiet", *args,
             match=match)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,match", [
    (["ovd", "--size", "100"], "--size must be a multiple of 8"),
    (["dyce", "--size", "100"], "--size must be a multiple of 8"),
    (["ovd", "--min-visible", "-1"], "--min-visible must be at least 1"),
    (["dyce", "--min-visible", "-1"], "--min-visible must be at least 1"),
    (["ovd", "--occluder-bank", "0"], "--occluder-bank must be at least 1"),
    (["pool", "--synset", "foo"], "--synset 'foo' applies to ShapeNet sources"),
    (["--seed", "5", "pool"], "--seed was written before the stage"),
])
def test_generator_options_out_of_range(cli, tmp_path, args, match):
    out = [] if args[0] == "--seed" else ["--out", tmp_path / "out"]
    _refused(cli, "generate", *args, *out, "--quiet", match=match)
    assert not (tmp_path / "out").exists()


def test_generate_into_an_existing_file(cli, tmp_path):
    (tmp_path / "taken").write_text("x")
    _refused(cli, "generate", "ovd", "--out", tmp_path / "taken", "--quiet", match="is a file, not a folder")


def test_show_count_zero_and_missing_icp_weights(small_ovd, cli, tmp_path):
    _refused(cli, "show", small_ovd, "--count", "0", "-o", tmp_path / "s.png", match="--count must be at least 1")
    _refused(cli, "evaluate", "--model", "visible", "--data", small_ovd, "--icp-weights", tmp_path / "missing.pth",
             "--quiet", "--out", tmp_path / "r.json", match="--icp-weights file not found")


@pytest.mark.parametrize("command", [
    lambda d, o: ["show", d, "-o", o / "sheet.png"],
    lambda d, o: ["convert", d, "--to", "cocoa", "-o", o / "cocoa"],
    lambda d, o: ["evaluate", "--model", "visible", "--data", d, "--quiet", "--out", o / "r.json"],
    lambda d, o: ["train", "--model", "pix2pix", "--data", d, "--preset", "tiny", "--max-steps", "1", "--quiet",
                  "--out", o / "run"],
    lambda d, o: ["publish", d, "--repo-id", "org/x", "--to", o / "repo", "--quiet"],
    lambda d, o: ["leaderboard", "--dir", o / "boards"],
], ids=["show", "convert", "evaluate", "train", "publish", "leaderboard"])
def test_an_unwritable_output_is_one_line(small_ovd, cli, tmp_path, command):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # as root (CI) permissions do not stop a write; a file in the way does
    result = cli(*command(small_ovd, blocked))
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert str(blocked) in result.error_line() or "Not a directory" in result.error_line()


# --------------------------------------------------------------------------- outside predictions

def _predictions(small_ovd: Path, folder: Path, change) -> Path:
    from ovbench.formats.masks import encode

    document = json.loads((small_ovd / "test" / "annotations.json").read_text())
    records = [{"annotation_id": a["id"], "segmentation": encode(np.zeros((64, 64), bool))}
               for a in document["annotations"]]
    change(records, folder)
    folder.mkdir(exist_ok=True)
    (folder / "predictions.json").write_text(json.dumps(records))
    return folder


def _nan_counts(records, _):
    records[0]["segmentation"] = {"size": [64, 64], "counts": [float("nan")]}


def _short_counts(records, _):
    from ovbench.formats.masks import encode

    records[0]["segmentation"] = {"size": [64, 64], "counts": encode(np.zeros((8, 8), bool))["counts"]}


def _one_appearance(records, folder):
    (folder / "appearance").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "appearance" / f"{records[0]['annotation_id']}.png")


def _uncompressed(records, _):
    records[0]["segmentation"] = {"size": [64, 64], "counts": [100, 3996]}


def _bad_size(records, _):
    records[0]["segmentation"] = {"size": [64], "counts": "PPP"}


def _duplicate(records, _):
    records.append(dict(records[0]))


def _small_appearance(records, folder):
    (folder / "appearance").mkdir(parents=True)
    for record in records:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "appearance" / f"{record['annotation_id']}.png")


@pytest.mark.parametrize("change,match", [
    (_nan_counts, "has uncompressed RLE counts"),
    (lambda r, _: r[0].update(segmentation={"size": [64, 64], "counts": "not rle ~~~"}), "has unreadable RLE counts"),
    (lambda r, _: r[0].update(segmentation=[[0, 0, 10, 0, 10, 10]]), "is a polygon, not an RLE"),
    (_short_counts, "its RLE runs cover 64 pixels, the image has 4096"),
    (_one_appearance, "appearance files (none for annotation"),
    (_uncompressed, "has uncompressed RLE counts"),
    (_bad_size, "has a malformed RLE size"),
    (_duplicate, "more than once"),
    (lambda r, _: r[0].update(annotation_id=float("inf")), "not a list of {annotation_id, segmentation}"),
    (_small_appearance, "is 32×32 RGB; the image is 64×64"),
], ids=["nan-counts", "bad-string", "polygon", "short-rle", "one-appearance", "uncompressed", "bad-size",
        "duplicate", "infinite-id", "small-appearance"])
def test_bad_outside_predictions(small_ovd, cli, tmp_path, change, match):
    folder = _predictions(small_ovd, tmp_path / "predictions", change)
    _refused(cli, "evaluate", "--predictions", folder, "--data", small_ovd, "--quiet", "--out", tmp_path / "r.json",
             match=match)


# --------------------------------------------------------------------------- sources and summaries

def test_resuming_dyce_with_changed_mesh_files_is_refused(cli, tmp_path):
    import trimesh

    meshes = tmp_path / "meshes"
    meshes.mkdir()
    for k in range(2):
        trimesh.creation.box(extents=(4.0 + k, 1.8, 1.4)).export(meshes / f"car{k}.obj")
    args = ["generate", "dyce", "--vehicles", f"meshes:{meshes}", "--splits", "train=1,test=1", "--size", "32",
            "--objects", "1:2", "--out", tmp_path / "d", "--quiet", "--workers", "1"]
    assert cli(*args).code == 0
    trimesh.creation.box(extents=(5.5, 1.8, 1.4)).export(meshes / "car1.obj")
    _refused(cli, *args, "--resume", match="was made with other settings")


def test_summaries_of_finished_data_say_so(small_ovd, small_pool, cli):
    ovd = cli("generate", "ovd", "--splits", "train=8,test=6", "--size", "64", "--occluder-bank", "16",
              "--workers", "1", "--quiet", "--out", small_ovd, "--resume")
    pool = cli("generate", "pool", "--models", "7", "--views", "8", "--size", "64", "--workers", "1", "--quiet",
               "--out", small_pool, "--resume")
    for result in (ovd, pool):
        assert result.code == 0 and "already complete" in result.out and "nan" not in result.out, result.out
    assert "mean occlusion 0.00" not in ovd.out


# --------------------------------------------------------------------------- found in review

@pytest.mark.parametrize("name,line", [
    (".", "it names no file"), ("./", "it names no file"), ("C:/x.png", "it leads outside"),
    ("loop/a.png", "Symlink loop"),
])
def test_member_refuses_names_that_are_no_file_or_loop(tmp_path, name, line):
    from ovbench.errors import InputError
    from ovbench.formats.fileio import member

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(InputError, match=line):
        member(tmp_path, name)
    assert member(tmp_path, "12:00.png") == tmp_path / "12:00.png"  # a colon is a POSIX name's right


def test_a_dataset_name_cannot_steer_where_results_go(ovd, cli, tmp_path):
    manifest = json.loads((ovd / "manifest.json").read_text())
    (ovd / "manifest.json").write_text(json.dumps({**manifest, "name": "../../../escaped"}))
    _refused(cli, "evaluate", "--model", "visible", "--data", ovd, "--quiet", match="bad dataset name")
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("change,match", [
    (lambda document: document["images"].__setitem__(0, "not a record"), "an image record that is not an object"),
    (lambda document: document.update(images={}), "not a COCO-style annotation file"),
], ids=["image-not-a-record", "images-not-a-list"])
def test_malformed_annotation_structure(ovd, cli, tmp_path, change, match):
    path = ovd / "test" / "annotations.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    _refused(cli, "evaluate", "--model", "visible", "--data", ovd, "--quiet", match=match)


def test_validate_reports_a_manifest_of_the_wrong_shape(ovd, cli):
    manifest = json.loads((ovd / "manifest.json").read_text())
    (ovd / "manifest.json").write_text(json.dumps({**manifest, "files": list(manifest["files"])}))
    result = cli("validate", ovd)
    assert result.code == 1 and "manifest.json: not an ovbench manifest" in result.err and "Traceback" not in result.err


def test_the_default_suite_is_guarded_and_worded_like_a_stage(ovd, cli):
    _refused(cli, "generate", "--out", ovd / "more", "--quiet", match="inside the dataset folder")
    _refused(cli, "generate", "--address", "host:1", "--quiet",
             match="--address is the Ray cluster's; it needs --executor")


def test_a_symbolic_link_into_a_dataset_is_no_way_in(ovd, cli, tmp_path):
    (tmp_path / "link").symlink_to(ovd / "test")
    _refused(cli, "show", ovd, "-o", tmp_path / "link" / "sheet.png", match="inside the dataset folder")
    assert cli("show", ovd, "-o", ovd / ".." / "elsewhere.png").code == 0  # beside it is not inside


def test_builds_killed_at_their_edges_resume(small_ovd, cli, tmp_path):
    from ovbench.formats import writer

    finished = Path(shutil.copytree(small_ovd, tmp_path / "finished"))
    (finished / ".parts").mkdir()  # killed after writing the manifest, before removing the parts
    assert writer.start_dataset(finished, "ovd", json.loads((finished / "manifest.json").read_text())["config"],
                                resume=True) is None
    assert not (finished / ".parts").exists() and cli("validate", finished).code == 0
    started = tmp_path / "started"
    (started / ".parts").mkdir(parents=True)  # killed after creating the parts, before their settings
    assert writer.start_dataset(started, "ovd", {"seed": 0}, resume=True) is False
    assert json.loads((started / ".parts" / "config.json").read_text()) == {"seed": 0, "kind": "ovd"}


def test_rle_runs_are_read_as_pycocotools_writes_them():
    """Against run lengths of the column-major mask, counted here independently."""
    from ovbench.formats.masks import encode, rle_counts

    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((23, 31)) < rng.random()
        flat = mask.T.ravel().astype(int)
        edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
        runs = ([0] if flat[0] else []) + np.diff(edges).tolist()
        assert rle_counts(encode(mask)["counts"]) == runs
