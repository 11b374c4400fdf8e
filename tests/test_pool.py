"""`ovbench generate pool`: geometry, file layout, determinism, resume, bad input."""

import json
import math

import h5py
import numpy as np
import pytest
import trimesh
from conftest import box_with_nose, posed_for, run_and_kill, run_subprocess
from PIL import Image
from test_assets import make_shapenet
from test_renderer import double_sided_twin, open_tray

from ovbench.assets.sources import ModelRef
from ovbench.formats.poolfile import SilhouettePool
from ovbench.formats.show import LABEL_WIDTH
from ovbench.generate.pool import YFOV_DEGREES, PoolConfig, View, plan_views, render_silhouettes, view_grid

SMALL = ("--models", 3, "--views", 8, "--size", 64, "--quiet")


def read_pool(path):
    with h5py.File(path, "r") as h5:
        return {name: h5[name][()] for name in h5}, dict(h5.attrs)


def test_view_grid_default_is_5_rings_of_16():
    grid = view_grid(80)
    assert len(set(grid)) == 80
    assert sorted({el for _, el in grid}) == pytest.approx([0, 10, 20, 30, 40])
    assert sorted({az for az, _ in grid}) == pytest.approx([22.5 * i for i in range(16)])
    assert len(view_grid(7)) == 7


@pytest.mark.parametrize("azimuth,elevation", [(0, 0), (90, 0), (30, 25), (200, 40)])
def test_silhouette_bbox_matches_projected_box_corners(azimuth, elevation):
    size, distance = 96, 9.0
    box = trimesh.creation.box(extents=(2.0, 1.0, 1.2))
    box.apply_translation((0, 0, 0.6))  # standing on the ground
    (mask,) = render_silhouettes(box, [View(0, azimuth, elevation, distance)], size)

    # Independent pinhole projection of the 8 corners.
    az, el = math.radians(azimuth), math.radians(elevation)
    target = np.array([0.0, 0.0, 0.6])
    eye = target + distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                                        math.sin(el)])
    forward = (target - eye) / distance
    right = np.cross(forward, (0, 0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    focal = (size / 2) / math.tan(math.radians(YFOV_DEGREES) / 2)
    rel = box.vertices - eye
    depth = rel @ forward
    u = size / 2 + focal * (rel @ right) / depth
    v = size / 2 - focal * (rel @ up) / depth
    pixels = np.arange(size) + 0.5
    expected_cols = np.flatnonzero((pixels > u.min()) & (pixels < u.max()))
    expected_rows = np.flatnonzero((pixels > v.min()) & (pixels < v.max()))
    np.testing.assert_array_equal(np.flatnonzero(mask.any(axis=0)), expected_cols)
    np.testing.assert_array_equal(np.flatnonzero(mask.any(axis=1)), expected_rows)


def test_open_mesh_silhouettes_equal_its_double_sided_twins():
    tray = open_tray()
    views = plan_views(ModelRef("tray", "meshes"), float(np.linalg.norm(tray.extents) / 2),
                       PoolConfig(views=80))
    masks = render_silhouettes(tray, views, 96)
    np.testing.assert_array_equal(masks, render_silhouettes(double_sided_twin(tray), views, 96))
    # Seen from outside, the tray's outline is the closed box's: its inside fills the opening.
    closed = trimesh.creation.box(extents=tray.extents)
    closed.apply_translation((0, 0, tray.extents[2] / 2))
    np.testing.assert_array_equal(masks, render_silhouettes(closed, views, 96))


def test_pool_round_trip(cli, tmp_path):
    out = tmp_path / "pool.h5"
    result = cli("generate", "pool", *SMALL, "--workers", 1, "--out", out)
    assert result.code == 0, result.err
    assert "24 silhouettes of 3 models" in result.out and str(out) in result.out
    data, attrs = read_pool(out)
    masks = np.unpackbits(data["masks"], axis=-1, count=64).astype(bool)
    assert masks.shape == (24, 64, 64) and data["masks"].shape == (24, 64, 8)
    assert masks.reshape(24, -1).any(axis=1).all()  # every silhouette non-empty
    for mask, (x, y, w, h) in zip(masks, data["bbox"]):
        ys, xs = np.nonzero(mask)
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
    assert [m.decode() for m in data["model_id"][::8]] == ["sedan-0000", "hatchback-0001", "suv-0002"]
    assert set(data["source"]) == {b"procedural"}
    np.testing.assert_array_equal(data["view"], np.tile(np.arange(8), 3))
    assert attrs["views"] == 8 and attrs["models"] == 3 and attrs["seed"] == 0
    assert not (tmp_path / "pool.h5.parts").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pool.h5"]

    with SilhouettePool(out) as pool, SilhouettePool(out, in_memory=True) as memory:
        assert len(pool) == 24
        for i in (0, 5, 23):
            assert np.array_equal(pool[i], masks[i]) and np.array_equal(memory[i], masks[i])
        assert pool.sample(np.random.default_rng(0)).shape == (64, 64)


def test_same_seed_same_bytes_whatever_the_workers(cli, tmp_path):
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    assert cli("generate", "pool", *SMALL, "--workers", 1, "--out", one).code == 0
    assert cli("generate", "pool", *SMALL, "--workers", 2, "--out", two).code == 0
    assert one.read_bytes() == two.read_bytes()
    other = tmp_path / "other.h5"
    assert cli("generate", "pool", *SMALL, "--seed", 1, "--out", other).code == 0
    assert not np.array_equal(read_pool(one)[0]["masks"], read_pool(other)[0]["masks"])


def test_resume_after_sigkill(cli, tmp_path):
    args = ["generate", "pool", "--models", 12, "--views", 40, "--size", 128, "--workers", 1,
            "--quiet"]
    reference = tmp_path / "reference.h5"
    assert cli(*args, "--out", reference).code == 0

    out = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    run_and_kill([*args, "--out", out], parts, "shard-*.npz", 3)
    done = len(list(parts.glob("shard-*.npz")))
    assert 3 <= done < 12 and not out.exists()

    refused = cli(*args, "--out", out)
    assert refused.code == 2 and "--resume" in refused.error_line()
    changed = cli(*args, "--seed", 5, "--resume", "--out", out)
    assert changed.code == 2 and "seed" in changed.error_line()

    resumed = cli(*args, "--resume", "--out", out)
    assert resumed.code == 0, resumed.err
    assert out.read_bytes() == reference.read_bytes()
    assert not parts.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.h5", "reference.h5"]
    again = cli(*args, "--resume", "--out", out)  # finished already: kept as it is
    assert again.code == 0 and out.read_bytes() == reference.read_bytes()


def test_existing_output_is_not_overwritten(cli, tmp_path):
    out = tmp_path / "pool.h5"
    assert cli("generate", "pool", *SMALL, "--out", out).code == 0
    before = out.read_bytes()
    result = cli("generate", "pool", *SMALL, "--out", out)
    assert result.code == 2 and "already exists" in result.error_line()
    assert out.read_bytes() == before


def test_mesh_folder_skips_bad_meshes_and_counts_them(cli, tmp_path):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    box_with_nose().export(meshes / "good.obj")
    (meshes / "empty.obj").write_text("# nothing\n")
    (meshes / "corrupt.ply").write_bytes(b"ply\ngarbage\x00")
    out = tmp_path / "pool.h5"
    result = cli("generate", "pool", "--source", f"meshes:{meshes}", "--views", 4, "--size", 64,
                 "--up", "+z", "--front", "+x", "--quiet", "--out", out)
    assert result.code == 0, result.err
    assert "4 silhouettes of 1 models" in result.out
    assert "skipped 2 models" in result.err and "corrupt.ply" in result.err
    data, attrs = read_pool(out)
    assert set(data["model_id"]) == {b"good.obj"}
    assert str(tmp_path) not in attrs["config"]  # no absolute paths in the file


def test_shapenet_pool(cli, tmp_path):
    root = make_shapenet(tmp_path / "ShapeNetCore.v2", 2)
    (root / "02958343" / "textured" / "models").mkdir(parents=True)
    (root / "02958343" / "textured" / "models" / "model_normalized.json").write_text("{}")
    out = tmp_path / "pool.h5"
    result = cli("generate", "pool", "--source", f"shapenet:{root}", "--synset", "car",
                 "--views", 4, "--size", 64, "--quiet", "--out", out)
    assert result.code == 0, result.err
    data, attrs = read_pool(out)
    assert set(data["source"]) == {b"shapenet:02958343"} and len(data["masks"]) == 12
    assert "empty00: empty model folder" in result.err
    assert json.loads(attrs["skipped"]) == {
        "empty00": "empty model folder",
        "textured": "no model_normalized.obj (has: models/model_normalized.json)"}
    assert attrs["models"] == 3 and "3 models" in result.out


def write_meshes(folder, up: str, front: str, names=("a.obj", "b.obj")):
    """box_with_nose models of a few lengths, unit-sized (so not in metres), in the given axes."""
    folder.mkdir()
    for k, name in enumerate(names):
        mesh = box_with_nose(extents=(4.0 + k, 1.6, 1.2))
        mesh.apply_scale(1.0 / mesh.extents.max())
        posed_for(mesh, up, front).export(folder / name)
    return folder


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("ovbench: warning:")]


def test_axis_options_take_values_beginning_with_a_minus(cli, tmp_path):
    meshes = write_meshes(tmp_path / "meshes", up="+y", front="-z")
    result = cli("generate", "pool", "--source", f"meshes:{meshes}", "--up", "+y", "--front", "-z",
                 "--views", 8, "--size", 64, "--quiet", "--out", tmp_path / "pool.h5")
    assert result.code == 0, result.err
    assert warnings(result.err) == []
    config = json.loads(read_pool(tmp_path / "pool.h5")[1]["config"])
    assert (config["up"], config["front"]) == ("+y", "-z")
    bad = cli("generate", "pool", "--source", f"meshes:{meshes}", "--front", "-q", "--quiet",
              "--out", tmp_path / "bad.h5")
    assert bad.code == 2 and "bad axis '-q'" in bad.error_line()
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "bad.h5.parts").exists()


def test_wrong_axes_warn_once_per_model_naming_the_fix(cli, tmp_path):
    meshes = write_meshes(tmp_path / "meshes", up="+y", front="-z")
    result = cli("generate", "pool", "--source", f"meshes:{meshes}", "--views", 8, "--size", 64,
                 "--workers", 2, "--quiet", "--out", tmp_path / "pool.h5")
    assert result.code == 0, result.err
    lines = warnings(result.err)
    assert [line.split(":")[2].strip() for line in lines] == ["a.obj", "b.obj"]
    assert all("taller" in line and "try --up +y --front +z (or --front -z)" in line for line in lines)


def test_show_draws_a_grid_of_views_per_model(small_pool, cli, tmp_path):
    out = tmp_path / "sheet.png"
    result = cli("show", small_pool, "-o", out, "--count", 3, "--seed", 1)
    assert result.code == 0, result.err
    sheet = np.asarray(Image.open(out).convert("L"))
    with SilhouettePool(small_pool) as pool:
        models = list(dict.fromkeys(pool.model_id))
        chosen = sorted(np.random.default_rng(1).choice(len(models), 3, replace=False))
        assert sheet.shape == (3 * 66, LABEL_WIDTH + 8 * 66)  # 8 views of 64 px, 2 px apart
        for row, k in enumerate(chosen):
            first = list(pool.model_id).index(models[k])
            for column in range(8):  # a 64 px pool is drawn at its own size: tiles are the masks
                tile = sheet[row * 66 + 1:row * 66 + 65, LABEL_WIDTH + column * 66:LABEL_WIDTH + column * 66 + 64]
                assert np.array_equal(tile > 127, pool[first + column])
    refused = cli("show", small_pool, "--split", "train", "-o", out)
    assert refused.code == 2 and "no splits" in refused.error_line()


@pytest.mark.parametrize("case", ["no-root", "no-models", "all-corrupt", "unwritable", "bad-views"])
def test_bad_input_gets_one_line(cli, tmp_path, case):
    out = tmp_path / "pool.h5"
    args = ["generate", "pool", "--views", 2, "--size", 32, "--quiet"]
    if case == "no-root":
        args += ["--source", f"shapenet:{tmp_path / 'nowhere'}"]
        expected = "ShapeNet root not found"
    elif case == "no-models":
        args += ["--source", f"shapenet:{make_shapenet(tmp_path / 'sn', 1, models=0)}"]
        expected = "has no models"
    elif case == "all-corrupt":
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "a.obj").write_text("v 0 0 0\n")
        args += ["--source", f"meshes:{tmp_path / 'm'}"]
        expected = "no usable models"
    elif case == "unwritable":
        (tmp_path / "file").write_text("not a folder")
        out = tmp_path / "file" / "pool.h5"
        expected = "cannot create output folder"
    else:
        args = ["generate", "pool", "--views", 0]
        expected = "--views"
    result = cli(*args, "--out", out)
    assert result.code == 2
    assert expected in result.error_line()
    assert not out.exists() and not (tmp_path / "pool.h5.parts").exists()


def test_no_gl_says_what_to_install(tmp_path):
    result = run_subprocess("generate", "pool", "--views", 2, "--size", 32, "--quiet",
                            "--out", tmp_path / "pool.h5",
                            env={"__EGL_VENDOR_LIBRARY_FILENAMES": str(tmp_path / "none.json")})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ovbench: error: headless OpenGL unavailable") and "apt-get install" in line
    assert list(tmp_path.iterdir()) == []
