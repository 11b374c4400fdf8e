"""The renderer against pinhole geometry computed by hand."""

import math
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from ovbench.renderers import Camera, Renderer, SceneObject, look_at
from scipy.ndimage import binary_erosion

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
    for name in ("ids", "depth", "rgb", "rgb solo"):
        assert np.array_equal(opened[name], twin[name]), name
    for a, b in zip(opened["solo"], twin["solo"]):  # mask and own depth
        assert np.array_equal(a, b)
