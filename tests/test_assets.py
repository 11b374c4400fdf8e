"""Procedural vehicles, mesh files and ShapeNetCore layouts, all brought into one convention."""

import json

import numpy as np
import pytest
import trimesh
from conftest import box_with_nose, posed_for

from ovbench.assets.meshes import GLTF, Orientation, find_meshes, load_mesh, orientation_doubt
from ovbench.assets.procedural import FINISHES, VEHICLE_TYPES, build_vehicle, finish_of_faces
from ovbench.assets.shapenet import list_models, resolve_synset
from ovbench.assets.sources import list_source, load_model
from ovbench.errors import InputError, MeshError


def assert_convention(mesh):
    lo, hi = mesh.bounds
    assert lo[2] == pytest.approx(0.0, abs=1e-9)                      # stands on z = 0
    assert (lo[0] + hi[0]) == pytest.approx(0.0, abs=1e-9)            # centred in x
    assert (lo[1] + hi[1]) == pytest.approx(0.0, abs=1e-9)            # centred in y


def front_is_plus_x(mesh):
    """The nose block of box_with_nose is the tallest part: its top sits at the +X end."""
    top = mesh.vertices[:, 2] >= mesh.bounds[1, 2] - 1e-6
    return mesh.vertices[top, 0].mean() > 0


@pytest.mark.parametrize("kind", VEHICLE_TYPES)
def test_procedural_vehicle_convention(kind):
    mesh = build_vehicle(kind, np.random.default_rng(3))
    assert_convention(mesh)
    length, width, height = mesh.extents
    assert length > width and 1.0 < height < 4.0 and 3.0 < length < 13.0
    # Separate wheels: the parts touching the ground are the tyres, a pair per axle.
    wheels = [part for part in mesh.split(only_watertight=False) if part.bounds[0, 2] < 1e-6]
    assert len(wheels) >= 4 and len(wheels) % 2 == 0
    for wheel in wheels:
        assert wheel.extents[0] == pytest.approx(wheel.extents[2], rel=0.05)  # round side-on
    finishes = finish_of_faces(mesh)
    assert {"paint", "glass", "tyre", "rim", "headlight", "taillight"} <= set(finishes)
    # The atlas texel each finish reads holds that finish's material: glass glossier than tyres.
    material = mesh.visual.material
    texel = {name: FINISHES.index(name) for name in FINISHES}
    roughness = np.asarray(material.metallicRoughnessTexture)[0, :, 1]
    assert roughness[texel["glass"]] < roughness[texel["paint"]] < roughness[texel["tyre"]]
    assert np.asarray(material.emissiveTexture)[0, texel["headlight"]].sum() > 0


def test_at_least_ten_vehicle_families_of_distinct_shapes():
    shapes = {kind: build_vehicle(kind, np.random.default_rng(0)).extents.round(2) for kind in VEHICLE_TYPES}
    assert len(VEHICLE_TYPES) >= 10
    assert len({tuple(extents) for extents in shapes.values()}) == len(VEHICLE_TYPES)


def closed_meshes_claimed():
    from ovbench.assets.occluders import BUILDERS, build_occluder, street, street_plan, street_scenery

    for k, kind in enumerate(VEHICLE_TYPES):
        yield f"vehicle {kind}", build_vehicle(kind, np.random.default_rng(k))
    for kind in BUILDERS:
        for seed in range(4):
            yield f"{kind} {seed}", build_occluder(kind, np.random.default_rng(seed))
    rng = np.random.default_rng(0)
    yield "street scenery", street_scenery(street_plan(rng, 30.0), rng)
    yield "ovd street", street(rng, 0.3, np.array([6.0, 4.0]), 3.0)


def test_built_in_meshes_are_closed_and_wound_outward_as_they_claim():
    """The renderer culls back faces of meshes that say they are closed and wound outward
    (metadata closed_outward) without checking: every piece here is watertight, consistently
    wound and of positive volume, by trimesh."""
    for name, mesh in closed_meshes_claimed():
        assert mesh.metadata.get("closed_outward"), name
        for piece in mesh.split(only_watertight=False):
            assert piece.is_watertight and piece.is_winding_consistent and piece.volume > 0, name


def test_procedural_vehicles_are_seeded():
    a = build_vehicle("sedan", np.random.default_rng(7))
    b = build_vehicle("sedan", np.random.default_rng(7))
    c = build_vehicle("sedan", np.random.default_rng(8))
    assert np.array_equal(a.vertices, b.vertices)
    assert not np.allclose(a.extents, c.extents)


def test_orientation_rotation_maps_axes():
    rotation = Orientation(up="+y", front="-z").rotation()[:3, :3]
    np.testing.assert_allclose(rotation @ (0, 1, 0), (0, 0, 1))
    np.testing.assert_allclose(rotation @ (0, 0, -1), (1, 0, 0))
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    with pytest.raises(InputError):
        Orientation(up="+y", front="-y").rotation()
    with pytest.raises(InputError):
        Orientation(up="up", front="+x").rotation()


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".glb"])
@pytest.mark.parametrize("up,front", [("+y", "-z"), ("+z", "+x"), ("+y", "+x")])
def test_mesh_files_are_turned_into_the_convention(tmp_path, suffix, up, front):
    native = box_with_nose()
    path = tmp_path / f"model{suffix}"
    posed_for(native, up, front).export(path)
    mesh = load_mesh(path, Orientation(up=up, front=front))
    assert_convention(mesh)
    np.testing.assert_allclose(mesh.extents, native.extents, atol=1e-5)
    assert front_is_plus_x(mesh)


def test_gltf_scene_graph_is_applied_and_gltf_axes_are_the_default(tmp_path):
    # Two parts placed by node transforms, in glTF's +Y up / +Z front convention.
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1.0, 1.0, 1.0)), node_name="a")
    shifted = trimesh.transformations.translation_matrix((0.0, 0.0, 5.0))  # 5 m toward the front
    scene.add_geometry(trimesh.creation.box(extents=(1.0, 2.0, 1.0)), node_name="b",
                       transform=shifted)
    path = tmp_path / "two-parts.glb"
    scene.export(path)
    mesh = load_mesh(path)  # glTF default orientation
    assert GLTF == Orientation(up="+y", front="+z")
    np.testing.assert_allclose(mesh.extents, (6.0, 1.0, 2.0), atol=1e-6)
    assert_convention(mesh)
    tall = mesh.vertices[:, 2] > 1.5
    assert mesh.vertices[tall, 0].min() > 0  # the taller part, moved to the front, is at +X


def test_length_scaling(tmp_path):
    path = tmp_path / "m.obj"
    box_with_nose().export(path)
    mesh = load_mesh(path, length=8.0)
    assert mesh.extents[0] == pytest.approx(8.0)
    assert mesh.extents[1] / mesh.extents[0] == pytest.approx(1.6 / 4.0)


def test_corrupt_and_empty_meshes_raise(tmp_path):
    (tmp_path / "garbage.ply").write_bytes(b"ply\nformat nonsense\n\x00\x01")
    (tmp_path / "empty.obj").write_text("# no geometry\n")
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\n")
    for name in ("garbage.ply", "empty.obj", "points.obj"):
        with pytest.raises(MeshError):
            load_mesh(tmp_path / name)
    with pytest.raises(InputError, match="not found"):
        find_meshes(tmp_path / "missing")
    (tmp_path / "textures").mkdir()
    (tmp_path / "textures" / "paint.png").write_bytes(b"")
    with pytest.raises(InputError, match="no mesh files"):
        find_meshes(tmp_path / "textures")


def make_shapenet(root, version: int, synset="02958343", models=3, empty=1, taxonomy=True):
    """A ShapeNetCore tree of `box_with_nose` models in the version's own axes."""
    up, front = ("+y", "+x") if version == 1 else ("+y", "-z")
    for i in range(models):
        folder = root / synset / f"model{i:02d}"
        target = folder / ("model.obj" if version == 1 else "models/model_normalized.obj")
        target.parent.mkdir(parents=True)
        mesh = box_with_nose(extents=(4.0 + i, 1.6, 1.2))
        mesh.apply_scale(1.0 / np.linalg.norm(mesh.extents))  # ShapeNet's unit diagonal
        posed_for(mesh, up, front).export(target)
    for i in range(empty):
        (root / synset / f"empty{i:02d}").mkdir(parents=True)
    if taxonomy:
        (root / "taxonomy.json").write_text(json.dumps([
            {"synsetId": synset, "name": "car,auto,automobile,machine,motorcar", "children": []},
            {"synsetId": "02924116", "name": "bus,autobus,coach", "children": []},
        ]))
    return root


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("synset", ["02958343", "car", "automobile"])
def test_shapenet_versions_and_synset_names(tmp_path, version, synset):
    root = make_shapenet(tmp_path / f"ShapeNetCore.v{version}", version)
    models, skipped = list_models(root, synset)
    assert [m.model_id for m in models] == ["model00", "model01", "model02"]
    assert skipped == {"empty00": "empty model folder"}
    listing = list_source(f"shapenet:{root}", None, 0, synset)
    mesh = load_model(listing.models[1])
    assert_convention(mesh)
    assert front_is_plus_x(mesh)
    assert mesh.extents[0] == pytest.approx(4.5)        # scaled to a car's length in metres
    assert mesh.extents[1] < mesh.extents[0] and mesh.extents[2] < mesh.extents[0]
    assert str(root) not in listing.description


def test_shapenet_textures_are_loaded_with_the_model(tmp_path):
    # ShapeNetCore v2 keeps the OBJ and MTL in models/ and the texture images in images/.
    folder = tmp_path / "sn" / "02958343" / "textured"
    (folder / "models").mkdir(parents=True)
    (folder / "images").mkdir()
    from PIL import Image

    Image.fromarray(np.full((4, 4, 3), (30, 160, 40), np.uint8)).save(folder / "images" / "texture0.png")
    (folder / "models" / "model_normalized.mtl").write_text(
        "newmtl body\nKd 1 1 1\nmap_Kd ../images/texture0.png\nnewmtl trim\nKd 0.1 0.1 0.1\n")
    mesh = box_with_nose()
    mesh.apply_scale(1.0 / np.linalg.norm(mesh.extents))
    posed = posed_for(mesh, "+y", "-z")
    lines = ["mtllib model_normalized.mtl", *(f"v {x} {y} {z}" for x, y, z in posed.vertices), "vt 0.5 0.5"]
    half = len(posed.faces) // 2
    for name, faces in (("body", posed.faces[:half]), ("trim", posed.faces[half:])):
        lines += [f"usemtl {name}", *(f"f {a + 1}/1 {b + 1}/1 {c + 1}/1" for a, b, c in faces)]
    (folder / "models" / "model_normalized.obj").write_text("\n".join(lines) + "\n")
    loaded = load_model(list_source(f"shapenet:{tmp_path / 'sn'}", None, 0).models[0])
    assert loaded.visual.kind == "texture"
    colours = np.asarray(loaded.visual.material.image.convert("RGB")).reshape(-1, 3)
    assert (colours == (30, 160, 40)).all(axis=1).any()  # the image, packed with the plain colour


def test_shapenet_bad_input(tmp_path):
    with pytest.raises(InputError, match="ShapeNet root not found"):
        list_models(tmp_path / "nowhere", "car")
    root = make_shapenet(tmp_path / "sn", 2, models=0, empty=2)
    with pytest.raises(InputError, match="no models"):
        list_models(root, "car")
    with pytest.raises(InputError, match="not in"):
        list_models(root, "spaceship")
    with pytest.raises(InputError, match="not found"):
        list_models(root, "bus")  # in the taxonomy, but not on disk


def test_shapenet_skip_reasons_say_what_is_missing_and_what_is_there(tmp_path):
    root = make_shapenet(tmp_path / "sn", 2, models=1)
    textured = root / "02958343" / "textured"
    (textured / "models").mkdir(parents=True)
    (textured / "models" / "model_normalized.json").write_text("{}")
    (textured / "images").mkdir()
    for k in range(5):
        (textured / "images" / f"texture{k}.jpg").write_bytes(b"")
    (root / "02958343" / "v1style").mkdir()
    (root / "02958343" / "v1style" / "model.mtl").write_text("")
    _, skipped = list_models(root, "car")
    assert skipped == {
        "empty00": "empty model folder",
        "textured": "no model_normalized.obj (has: images/texture0.jpg, images/texture1.jpg, "
                    "images/texture2.jpg, images/texture3.jpg, … 2 more)",
        "v1style": "no model.obj (has: model.mtl)",
    }


def test_synset_names_without_taxonomy_come_from_the_builtin_table(tmp_path):
    root = make_shapenet(tmp_path / "sn", 2, taxonomy=False)
    for name in ("car", "automobile", "Auto", "motorcar"):
        assert resolve_synset(root, name) == "02958343"
    assert resolve_synset(root, "bus") == "02924116" and resolve_synset(root, "bike") == "03790512"
    assert [m.model_id for m in list_models(root, "automobile")[0]] == ["model00", "model01", "model02"]
    with pytest.raises(InputError, match="built-in synset names"):
        resolve_synset(root, "spaceship")


@pytest.mark.parametrize("scale,length", [(0.25, 4.5), (100.0, 4.5), (1000.0, 4.5), (1.0, 4.0),
                                          (2.5, 10.0)])
def test_file_meshes_in_other_units_are_brought_to_metres(tmp_path, scale, length):
    # box_with_nose is 4 m long: scaled to a unit-sized model, centimetres or millimetres, it is
    # no vehicle's size in metres and becomes a car's 4.5 m; at 4 m and 10 m it is kept.
    mesh = box_with_nose()
    mesh.apply_scale(scale)
    mesh.export(tmp_path / "m.obj")
    loaded = load_mesh(tmp_path / "m.obj")
    assert loaded.extents[0] == pytest.approx(length)
    np.testing.assert_allclose(loaded.extents / loaded.extents[0], mesh.extents / mesh.extents[0])


def test_resolve_synset_error_names_the_root_taxonomy(tmp_path):
    root = make_shapenet(tmp_path / "sn", 2)
    with pytest.raises(InputError, match="taxonomy.json"):
        resolve_synset(root, "spaceship")


def upside_down_sedan():
    return posed_for(build_vehicle("sedan", np.random.default_rng(0)), up="-z", front="+x")


@pytest.mark.parametrize("mesh,up,front,expected", [
    # (mesh in some convention, its true up, true front, what the warning must say)
    (posed_for(box_with_nose(), "+y", "-z"), "+y", "-z",
     "taller (4.00 m) than long (1.60 m) with --up +z --front +x: wrong axes likely; "
     "try --up +y --front +z (or --front -z)"),
    (posed_for(box_with_nose(), "+z", "+y"), "+z", "+y",
     "wider (4.00 m) than long (1.60 m) with --up +z --front +x: wrong axes likely; "
     "try --up +z --front +y (or --front -y)"),
    (upside_down_sedan(), "-z", "+x",
     "most of its mass (vertices and surface) lies in its upper half with --up +z --front +x: "
     "wrong axes likely; try --up -z --front +x"),
], ids=["on-its-nose", "sideways", "upside-down"])
def test_a_wrongly_turned_vehicle_gets_a_warning_that_names_the_fix(tmp_path, mesh, up, front, expected):
    path = tmp_path / "m.obj"
    mesh.export(path)
    assert orientation_doubt(load_mesh(path), Orientation()) == expected
    assert orientation_doubt(load_mesh(path, Orientation(up, front)), Orientation(up, front)) is None


@pytest.mark.parametrize("kind", VEHICLE_TYPES)
def test_upright_vehicles_get_no_warning(kind):
    for seed in range(3):
        assert orientation_doubt(build_vehicle(kind, np.random.default_rng(seed)), Orientation()) is None


def test_model_subset_is_seeded_and_sorted(tmp_path):
    for i in range(6):
        box_with_nose().export(tmp_path / f"m{i}.obj")
    a = list_source(f"meshes:{tmp_path}", 3, seed=1).models
    b = list_source(f"meshes:{tmp_path}", 3, seed=1).models
    assert a == b and len(a) == 3
    assert [m.model_id for m in a] == sorted(m.model_id for m in a)
    with pytest.raises(InputError, match="bad source"):
        list_source("blender:x", None, 0)
