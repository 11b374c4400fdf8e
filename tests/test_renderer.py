"""The renderer against pinhole geometry computed by hand."""

import math
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from ovbench.renderers import Camera, Lighting, Renderer, SceneObject, look_at, scene
from scipy.ndimage import binary_dilation, binary_erosion

from ovbench.assets.procedural import build_vehicle
from ovbench.formats.masks import paste

SIZE = 128
YFOV = math.radians(35.0)
FOCAL = (SIZE / 2) / math.tan(YFOV / 2)


def covered_pixels(lo: float, hi: float) -> np.ndarray:
    """Pixels whose centre (i + 0.5) lies strictly inside the projected interval [lo, hi]."""
    i = np.arange(SIZE)
    return i[(i + 0.5 > lo) & (i + 0.5 < hi)]


@pytest.fixture(scope="module")
def renderer():
    return Renderer(SIZE)


def test_box_face_covers_its_projected_extent(renderer):
    # A 2 m cube at the origin seen along -X from 11 m: its near face (x = 1) is 10 m away.
    renderer.set_scene([SceneObject(trimesh.creation.box(extents=(2.0, 2.0, 2.0)))])
    camera = Camera(look_at((11.0, 0.0, 0.0), (0.0, 0.0, 0.0)), yfov=YFOV)
    mask, depth = renderer.solo(camera, 0)
    half = FOCAL * 1.0 / 10.0
    expected = covered_pixels(SIZE / 2 - half, SIZE / 2 + half)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(cols, expected)
    assert mask.sum() == len(expected) ** 2
    # z-depth of a face perpendicular to the optical axis is its distance.
    np.testing.assert_allclose(depth[mask], 10.0, rtol=1e-4)
    assert np.all(depth[~mask] == 0)


def test_instances_solo_and_occlusion(renderer):
    front = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    back = trimesh.creation.box(extents=(1.0, 3.0, 1.0))
    back_pose = np.eye(4)
    back_pose[0, 3] = -3.0  # 3 m further from a camera on +X
    renderer.set_scene([SceneObject(front), SceneObject(back, back_pose)])
    camera = Camera(look_at((10.0, 0.0, 0.0), (0.0, 0.0, 0.0)), yfov=YFOV)
    ids, depth = renderer.instances(camera)
    front_mask, front_depth = renderer.solo(camera, 0)
    back_mask, back_depth = renderer.solo(camera, 1)

    # Front box: near face at 9.5 m, half-size 0.5 m.
    half = FOCAL * 0.5 / 9.5
    expected = covered_pixels(SIZE / 2 - half, SIZE / 2 + half)
    np.testing.assert_array_equal(np.flatnonzero(front_mask.any(0)), expected)
    # Back box, amodal: near face at 12.5 m, 3 m wide, 1 m tall.
    wide, tall = FOCAL * 1.5 / 12.5, FOCAL * 0.5 / 12.5
    np.testing.assert_array_equal(np.flatnonzero(back_mask.any(0)),
                                  covered_pixels(SIZE / 2 - wide, SIZE / 2 + wide))
    np.testing.assert_array_equal(np.flatnonzero(back_mask.any(1)),
                                  covered_pixels(SIZE / 2 - tall, SIZE / 2 + tall))
    # The front box hides the middle of the back box: ids follow depth.
    assert np.array_equal(ids == 1, front_mask)
    assert np.array_equal(ids == 2, back_mask & ~front_mask)
    visible_back = back_mask & (back_depth == depth)
    assert np.array_equal(visible_back, ids == 2)
    np.testing.assert_allclose(depth[ids == 1], 9.5, rtol=1e-4)
    np.testing.assert_allclose(depth[ids == 2], 12.5, rtol=1e-4)


def test_rgb_is_lit_and_background_kept(renderer):
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    box.visual.face_colors = (200, 30, 30, 255)
    renderer.set_scene([SceneObject(box)], background=(0.0, 0.0, 1.0))
    camera = Camera(look_at((8.0, 3.0, 4.0), (0.0, 0.0, 0.0)), yfov=YFOV)
    image = renderer.rgb(camera)
    ids, _ = renderer.instances(camera)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert np.all(image[0, 0] == (0, 0, 255))
    # Edge pixels are antialiased against the background; the interior is red paint.
    inside = image[binary_erosion(ids == 1, iterations=2)].astype(int)
    assert len(inside) > 100 and np.all(inside[:, 0] > inside[:, 2])


def test_rendering_and_torchvision_live_in_one_process():
    # Mesa's global LLVM symbols once crashed Triton (imported by torchvision) loaded after them.
    code = ("from ovbench.renderers import Renderer; Renderer(16); "
            "import torchvision.models; print('alive')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "alive" in result.stdout, result.stderr[-500:]


def test_many_renderers_share_one_context():
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    camera = Camera(look_at((11.0, 0.0, 0.0), (0.0, 0.0, 0.0)), yfov=YFOV)
    small, large = Renderer(32), Renderer(SIZE)
    for r in (small, large):
        r.set_scene([SceneObject(box)])
    throwaway = Renderer(16)
    throwaway.set_scene([SceneObject(box)])
    throwaway.solo(camera, 0)
    del throwaway  # dropping a renderer must not end the others' context
    import gc

    gc.collect()
    for _ in range(2):
        assert small.solo(camera, 0)[0].shape == (32, 32)
        assert large.solo(camera, 0)[0].sum() == len(covered_pixels(SIZE / 2 - FOCAL / 10,
                                                                     SIZE / 2 + FOCAL / 10)) ** 2


def open_tray(extents=(2.0, 1.0, 0.5)) -> trimesh.Trimesh:
    """A box without its top, standing on z = 0: one-sided faces, normals pointing outward, so
    its inner sides are back faces."""
    box = trimesh.creation.box(extents=extents)
    box.apply_translation((0, 0, extents[2] / 2))
    tray = trimesh.Trimesh(box.vertices, box.faces[box.face_normals[:, 2] < 0.5], process=False)
    tray.visual.face_colors = (200, 120, 40, 255)
    return tray


def double_sided_twin(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The same surface with every face present a second time, reversed: whole under any culling."""
    twin = trimesh.Trimesh(mesh.vertices, np.vstack([mesh.faces, mesh.faces[:, ::-1]]), process=False)
    twin.visual.face_colors = np.vstack([mesh.visual.face_colors] * 2)
    return twin


def box_with_an_inside_out_block() -> trimesh.Trimesh:
    """Closed, each piece wound consistently, but the block's normals point inward (as a flipped
    wheel's do): from outside, its near faces are back faces."""
    block = trimesh.creation.box(extents=(0.6, 0.6, 0.6))
    block.invert()
    block.apply_translation((1.4, 0.0, 0.3))
    body = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    body.apply_translation((0.0, 0.0, 0.25))
    mesh = trimesh.util.concatenate([body, block])
    mesh.visual.face_colors = (60, 160, 90, 255)
    return mesh


@pytest.mark.parametrize("eye", [(4.0, 3.0, 3.0), (-3.0, -5.0, 1.5), (0.3, 0.2, 6.0)])
@pytest.mark.parametrize("build", [open_tray, box_with_an_inside_out_block])
def test_one_sided_mesh_renders_like_its_double_sided_twin(renderer, build, eye):
    # A block standing in (or beside) the mesh: the near walls hide part of it, the far wall of
    # the tray is seen from inside.
    block = trimesh.creation.box(extents=(0.4, 0.4, 0.8))
    block.apply_translation((0.4, 0.0, 0.4))
    camera = Camera(look_at(eye, (0.0, 0.0, 0.25)), yfov=YFOV)
    passes = []
    for mesh in (build(), double_sided_twin(build())):
        renderer.set_scene([SceneObject(mesh), SceneObject(block)], background=(0.0, 0.0, 1.0))
        ids, depth = renderer.instances(camera)
        passes.append({"ids": ids, "depth": depth, "solo": renderer.solo(camera, 0),
                       "rgb": renderer.rgb(camera), "rgb solo": renderer.rgb_solo(camera, 0)})
    opened, twin = passes
    assert (twin["ids"] == 1).sum() > 1000
    for name in ("ids", "rgb", "rgb solo"):
        assert np.array_equal(opened[name], twin[name]), name
    assert np.array_equal(opened["solo"][0], twin["solo"][0])  # the amodal mask
    # Depth to float rounding: the twin's reversed copies interpolate their corners in another order.
    for a, b in ((opened["depth"], twin["depth"]), (opened["solo"][1], twin["solo"][1])):
        assert np.array_equal(a > 0, b > 0) and np.allclose(a, b, rtol=1e-6, atol=0)


def boxes_on_ground(count: int, seed: int):
    """`count` coloured boxes scattered over a 30 m ground square, some hiding others."""
    rng = np.random.default_rng(seed)
    objects = []
    for _ in range(count):
        box = trimesh.creation.box(extents=rng.uniform(0.3, 2.5, 3))
        box.visual.face_colors = (*rng.integers(40, 255, 3), 255)
        pose = trimesh.transformations.rotation_matrix(rng.uniform(0, np.pi), (0, 0, 1))
        pose[:3, 3] = (*rng.uniform(-15, 15, 2), box.extents[2] / 2)
        objects.append(SceneObject(box, pose))
    ground = trimesh.creation.box(extents=(60.0, 60.0, 0.02))
    ground.apply_translation((0, 0, -0.011))
    ground.visual.face_colors = (140, 140, 140, 255)
    return objects, SceneObject(ground)


@pytest.mark.parametrize("seed", [0, 1])
def test_solo_passes_in_groups_equal_one_at_a_time(renderer, seed):
    objects, ground = boxes_on_ground(24, seed)
    renderer.set_scene(objects, Lighting(shadows=True, sky=0.5), background=(0.2, 0.4, 0.9), scenery=[ground])
    camera = Camera(look_at((22.0, -18.0, 1.6), (0.0, 0.0, 0.8)), yfov=YFOV)
    indices = range(len(objects))
    grouped, colours = renderer.solos(camera, indices), renderer.rgb_solos(camera, indices)
    assert grouped.keys() == colours.keys()
    assert len(renderer._apart(camera, indices)[0]) < len(grouped)  # some passes drew several
    for k in indices:
        mask, depth = renderer.solo(camera, k)
        if k not in grouped:
            assert not mask.any()  # out of view
            continue
        box, own_mask, own_depth = grouped[k]
        assert np.array_equal(paste(own_mask, box, mask.shape), mask)
        assert np.array_equal(paste(own_depth, box, mask.shape), depth)
        assert colours[k][0] == box
        assert np.array_equal(paste(colours[k][1], box, mask.shape)[mask], renderer.rgb_solo(camera, k)[mask])


def test_sun_shadows_fall_where_the_geometry_says_and_stay_in_solo_passes(renderer):
    # A 4 m wall at x = 0 and a low box 2 m behind it; the sun shines along +x at 45° down, so
    # the wall's shadow covers the ground for 4 m behind it, the box included.
    wall = trimesh.creation.box(extents=(0.2, 6.0, 4.0))
    wall.apply_translation((0.0, 0.0, 2.0))
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    box.apply_translation((2.0, 0.0, 0.5))
    for mesh in (wall, box):
        mesh.visual.face_colors = (200, 200, 200, 255)
    ground = trimesh.creation.box(extents=(40.0, 40.0, 0.02))
    ground.apply_translation((0, 0, -0.011))
    ground.visual.face_colors = (200, 200, 200, 255)
    sun = Lighting(sun_direction=(1.0, 0.0, -1.0), sun_intensity=3.0, ambient=0.3, shadows=True)
    camera = Camera(look_at((9.0, -7.0, 6.0), (3.0, 0.0, 0.0)), yfov=YFOV)
    renderer.set_scene([SceneObject(wall), SceneObject(box)], sun, scenery=[SceneObject(ground)])
    ids, depth = renderer.instances(camera)
    image = renderer.rgb(camera).astype(int)
    # Ground points (x, y, 0) projected to pixels: in the shadow (1 < x < 3.5) and in the sun (x > 5).
    view = np.linalg.inv(camera.pose)

    def pixel(x, y):
        p = view @ (x, y, 0.0, 1.0)
        return (int(SIZE / 2 * (1 - FOCAL / (SIZE / 2) * p[1] / -p[2])),
                int(SIZE / 2 * (1 + FOCAL / (SIZE / 2) * p[0] / -p[2])))

    shaded, lit = image[pixel(3.0, -2.0)], image[pixel(6.5, -2.0)]
    assert ids[pixel(3.0, -2.0)] == 0 and ids[pixel(6.5, -2.0)] == 0
    assert shaded.sum() < 0.75 * lit.sum()
    # Drawn alone, the box keeps the wall's shadow: its pixels are those of the scene's render.
    inside = binary_erosion(ids == 2, iterations=2)
    alone = renderer.rgb_solo(camera, 1).astype(int)
    assert inside.sum() > 50 and np.array_equal(alone[inside], image[inside])
    # Another renderer's shadowed scene in between takes the process's shadow map; it is drawn again.
    other = Renderer(SIZE)
    other.set_scene([SceneObject(box)], sun, scenery=[SceneObject(ground)])
    other.rgb(camera)
    assert np.array_equal(renderer.rgb(camera), image)
    renderer.set_scene([SceneObject(box)], sun, scenery=[SceneObject(ground)])  # no wall: its top in the sun
    in_sun = renderer.rgb(camera)[inside].astype(int)
    assert (in_sun >= image[inside]).all() and in_sun.sum() > 1.1 * image[inside].sum()


def test_first_colour_pass_of_new_textures_keeps_the_shadows(renderer):
    # Textures are uploaded when a colour pass first needs them, with the shadow map bound.
    car = build_vehicle("sedan", np.random.default_rng(11))  # textured, its images new to the process
    ground = trimesh.creation.box(extents=(40.0, 40.0, 0.02))
    ground.apply_translation((0, 0, -0.011))
    renderer.set_scene([SceneObject(car)], Lighting(shadows=True, sky=0.5), scenery=[SceneObject(ground)])
    camera = Camera(look_at((7.0, -5.0, 2.5), (0.0, 0.0, 0.7)), yfov=YFOV)
    first = renderer.rgb(camera)
    again = renderer.rgb(camera)
    ids, _ = renderer.instances(camera)
    in_shadow = (ids == 0) & (again.astype(int).sum(-1) < 0.75 * np.median(again[ids == 0].astype(int).sum(-1)))
    assert in_shadow.sum() > 100  # the car's shadow on the ground
    assert np.array_equal(first, again)


def test_textures_forgotten_over_the_budget_are_uploaded_again(renderer, monkeypatch):
    def cars():  # the same three cars, with new texture images at each call
        kinds = ("sedan", "van", "pickup")
        built = [build_vehicle(kind, np.random.default_rng(20 + k)) for k, kind in enumerate(kinds)]
        for k, car in enumerate(built):
            car.apply_translation((0.0, 3.0 * k - 3.0, 0.0))
        return [SceneObject(car) for car in built]

    camera = Camera(look_at((12.0, -6.0, 3.0), (0.0, 0.0, 0.7)), yfov=YFOV)
    renderer.set_scene(cars(), Lighting(shadows=True))
    kept = renderer.rgb(camera)
    monkeypatch.setattr(scene, "TEXTURE_BYTES", 1)  # each material's uploads forget all others
    renderer.set_scene(cars(), Lighting(shadows=True))
    assert np.array_equal(renderer.rgb(camera), kept)
    assert len(scene._kept_textures.entries) == 3  # the last material's


def test_textured_mesh_renders_with_its_texture(renderer, tmp_path):
    # A quad whose texture is red on its left half and blue on its right, as an OBJ + MTL + PNG.
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:, :4] = (220, 20, 20)
    texture[:, 4:] = (20, 20, 220)
    from PIL import Image

    Image.fromarray(texture).save(tmp_path / "paint.png")
    (tmp_path / "quad.mtl").write_text("newmtl paint\nKd 1 1 1\nmap_Kd paint.png\n")
    (tmp_path / "quad.obj").write_text(
        "mtllib quad.mtl\nv -2 0 0\nv 2 0 0\nv 2 0 2\nv -2 0 2\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "usemtl paint\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    from ovbench.assets.meshes import load_mesh

    quad = load_mesh(tmp_path / "quad.obj", length=4.0)
    assert quad.visual.kind == "texture"
    renderer.set_scene([SceneObject(quad)], Lighting(sun_direction=(0, 1, 0), sun_intensity=2.0, ambient=0.5))
    camera = Camera(look_at((0.0, -6.0, 1.0), (0.0, 0.0, 1.0)), yfov=YFOV)
    image = renderer.rgb(camera).astype(int)
    mask, _ = renderer.solo(camera, 0)
    columns = np.flatnonzero(mask.any(0))
    share = (np.arange(SIZE) - columns[0]) / (columns[-1] - columns[0])  # across the quad, 0 to 1
    # Away from where texture filtering blends the halves (their border, and the wrap at the edges).
    left, right = image[mask & (share > 0.1) & (share < 0.35)], image[mask & (share > 0.65) & (share < 0.9)]
    assert (left[:, 0] > 2 * left[:, 2]).all() and (right[:, 2] > 2 * right[:, 0]).all()


PYRENDER_SCRIPT = """
import sys
import numpy as np
import trimesh
from ovbench.assets.procedural import build_vehicle
from ovbench.renderers import Camera, Lighting, Renderer, SceneObject, look_at
from ovbench.renderers.gl import import_pyrender

pr = import_pyrender()
car = build_vehicle("sedan", np.random.default_rng(3))  # textured, flat shaded, closed
van = build_vehicle("van", np.random.default_rng(4))
van.apply_translation((-7.0, 1.0, 0.0))
ball = trimesh.creation.icosphere(subdivisions=2, radius=0.8)  # vertex colours, smooth
ball.visual.vertex_colors = (np.abs(ball.vertices) * 255).astype(np.uint8)
ball.apply_translation((0.0, 3.0, 0.8))
ground = trimesh.creation.box(extents=(40.0, 40.0, 0.02))  # face colours
ground.apply_translation((0, 0, -0.011))
ground.visual.face_colors = (150, 150, 150, 255)
objects, size = [car, ball, van], 96
theirs = pr.OffscreenRenderer(size, size)  # one: deleting a pyrender renderer ends EGL's display
ours = Renderer(size)
images = {}
# The second scene lists the objects the other way round: other ids, another vertex buffer.
for name, lighting, shown in (("sun", Lighting(), objects),
                              ("shadows and sky", Lighting(shadows=True, sky=0.5), objects[::-1])):
    scene = pr.Scene(bg_color=(0.3, 0.5, 0.9, 1.0), ambient_light=(lighting.ambient,) * 3)
    nodes = [scene.add(pr.Mesh.from_trimesh(m, smooth=m.visual.kind == "vertex")) for m in shown]
    scene.add(pr.Mesh.from_trimesh(ground, smooth=False))
    scene.add(pr.DirectionalLight(color=np.ones(3), intensity=lighting.sun_intensity),
              pose=look_at((0, 0, 0), lighting.sun_direction))
    if lighting.sky:  # a light far overhead: the sky's, from the zenith
        pose = np.eye(4)
        pose[2, 3] = 1e4
        scene.add(pr.PointLight(color=np.ones(3), intensity=lighting.sky * 1e8), pose=pose)
    camera_node = scene.add(pr.PerspectiveCamera(yfov=np.radians(35.0)))
    flags = pr.RenderFlags.SHADOWS_DIRECTIONAL if lighting.shadows else pr.RenderFlags.NONE
    cameras = [Camera(look_at(eye, (0.0, 0.0, 0.7))) for eye in ((9.0, -6.0, 3.0), (-4.0, 8.0, 1.6))]
    for c, camera in enumerate(cameras):
        scene.set_pose(camera_node, camera.pose)
        seg, images[f"{name} {c} pyrender depth"] = theirs.render(
            scene, pr.RenderFlags.SEG, {node: (k + 1, 0, 0) for k, node in enumerate(nodes)})
        images[f"{name} {c} pyrender ids"] = seg[..., 0]
        images[f"{name} {c} pyrender rgb"], _ = theirs.render(scene, flags)
    # Right after pyrender drew (its context current): ovbench's scene goes to ovbench's context.
    ours.set_scene([SceneObject(m) for m in shown], lighting, background=(0.3, 0.5, 0.9),
                   scenery=[SceneObject(ground)])
    for c, camera in enumerate(cameras):
        images[f"{name} {c} ids"], images[f"{name} {c} depth"] = ours.instances(camera)
        images[f"{name} {c} rgb"] = ours.rgb(camera)
np.savez(sys.argv[1], **images)
"""


def test_renderer_draws_the_pixels_of_pyrender(tmp_path):
    # pyrender 1.0.1, drawing the same scene by itself (in a process of its own: its renderer
    # makes a context of its own), is the reference: the same instance map, the same depth to its
    # depth buffer's precision, and the same lit colours up to the antialiasing of edges (its
    # colour pass is multisampled) and its wider shadow filter.
    output = tmp_path / "passes.npz"
    result = subprocess.run([sys.executable, "-c", PYRENDER_SCRIPT, str(output)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    images = np.load(output)
    for name in ("sun", "shadows and sky"):
        for c in range(2):
            ids, theirs = images[f"{name} {c} ids"], images[f"{name} {c} pyrender ids"].astype(np.int32)
            assert set(np.unique(ids)) == set(np.unique(theirs)) and len(np.unique(ids)) >= 3
            assert (ids != theirs).sum() <= 0.002 * (theirs > 0).sum()
            same = (ids == theirs) & (ids > 0)
            depth, their_depth = images[f"{name} {c} depth"], images[f"{name} {c} pyrender depth"]
            assert np.allclose(depth[same], their_depth[same], rtol=1e-3, atol=0)
            # Away from every edge of the instance map, where antialiasing differs.
            inner = binary_erosion(ids == theirs, iterations=2)
            for axis in (0, 1):
                inner &= ~binary_dilation(np.diff(ids, axis=axis, prepend=ids.take([0], axis)) != 0, iterations=2)
            difference = np.abs(images[f"{name} {c} rgb"].astype(int) - images[f"{name} {c} pyrender rgb"])[inner]
            assert inner.sum() > 0.5 * ids.size and difference.mean() < 3.0, (name, c, difference.mean())


def test_colour_passes_are_single_sampled_and_antialiased_on_the_image(renderer):
    # A white box on black, edge-on: the mask's border pixels are exactly where the colour
    # image is softened; inside and outside keep their values.
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    box.visual.face_colors = (255, 255, 255, 255)
    renderer.set_scene([SceneObject(box)], Lighting(sun_direction=(-1.0, 0.0, 0.0), ambient=1.0))
    camera = Camera(look_at((11.0, 0.0, 0.0), (0.0, 0.0, 0.0)), yfov=YFOV)
    mask, _ = renderer.solo(camera, 0)
    image = renderer.rgb(camera).astype(int)
    border = mask & ~binary_erosion(mask)
    outside_border = binary_dilation(mask) & ~mask
    interior, far = binary_erosion(mask, iterations=2), ~binary_dilation(mask, iterations=2)
    assert np.all(image[far] == 0) and len(set(map(tuple, image[interior]))) == 1
    lit = image[interior][0]
    assert lit.min() > 150
    # A straight edge: a border pixel has one outside neighbour (two at corners): 3/8 or 2/8 of
    # its value goes, and an outside pixel gets 1/8 of a lit neighbour's.
    assert np.all(image[border] < lit) and np.all(image[border] >= np.round(lit * 5 / 8) - 1)
    assert np.all(image[outside_border] > 0) and np.all(image[outside_border] <= np.round(lit * 2 / 8) + 1)


def test_any_image_size_reads_back_whole_rows():
    # 45 × 31: RGB rows of 135 bytes, not a multiple of GL's default 4-byte row alignment.
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    box.visual.face_colors = (200, 30, 30, 255)
    renderer = Renderer(45, 31)
    renderer.set_scene([SceneObject(box)], background=(0.0, 0.0, 1.0))
    camera = Camera(look_at((8.0, 3.0, 4.0), (0.0, 0.0, 0.0)), yfov=YFOV)
    ids, depth = renderer.instances(camera)
    image = renderer.rgb(camera)
    assert ids.shape == depth.shape == (31, 45) and image.shape == (31, 45, 3)
    far = ~binary_dilation(ids > 0, iterations=2)
    assert far.sum() > 500 and np.all(image[far] == (0, 0, 255))
    inside = binary_erosion(ids > 0, iterations=1)
    assert inside.sum() > 20 and np.all(image[inside][:, 0] > image[inside][:, 2])
