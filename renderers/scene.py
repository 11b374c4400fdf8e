"""Offscreen rendering of a scene of meshes: lit RGB, exact instance ids and depth, solo passes.

The renderer draws with its own small OpenGL programs (shaders.py) on the process's one context:
a scene is one vertex buffer in world space, drawn object by object, so a pass costs its pixels
and triangles rather than per-object bookkeeping. Every pass is single-sampled: masks and depth
are exact and agree pixel for pixel with the colour images, which are antialiased on the image
(`soften_edges`). Open meshes (and any whose back faces a camera can see) are drawn from both
sides, lit on the side that is seen; closed ones with back faces culled.

Solo passes ("object k alone") may draw several objects at once when their screen boxes (the
projection of each one's bounding box, a pixel of margin around it) keep apart: no pixel of one
can then be touched by another, so each gets exactly the pixels, depth and colours of its own
pass at a fraction of the cost. With sun shadows, the sun's shadow map is the whole scene's,
drawn once per scene and kept for every colour pass: an object drawn alone keeps the shadows
the others cast on it, as in the scene (its hidden part continues its visible part).
"""

from __future__ import annotations

import collections
import ctypes
import functools
from dataclasses import dataclass, field

import numpy as np
import trimesh

from . import shaders
from .antialias import soften_edges
from .gl import gl_context


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world pose (OpenGL: the camera looks down its -Z, +Y up) from eye to target."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:  # looking straight along `up`: any right vector will do
        right = np.cross(forward, (1.0, 0.0, 0.0))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: pose is camera-to-world (OpenGL convention), yfov in radians."""

    pose: np.ndarray
    yfov: float = np.radians(35.0)
    znear: float = 0.05
    zfar: float = 500.0


@dataclass
class SceneObject:
    """A mesh placed in the world; its colours come from the mesh's own visual."""

    mesh: trimesh.Trimesh
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass(frozen=True)
class Lighting:
    """A sun (directional light shining along `sun_direction`, casting shadows when `shadows`),
    ambient light, and `sky`: light from straight above that casts no shadow (the sky's dome),
    so shaded sides and shadows keep some light."""

    sun_direction: tuple = (-0.4, -0.3, -1.0)
    sun_intensity: float = 3.0
    ambient: float = 0.35
    shadows: bool = False
    sky: float = 0.0


def _has_visible_back_faces(mesh: trimesh.Trimesh) -> bool:
    """Whether a camera outside the mesh can see one of its back faces first. Not for a closed
    surface wound outward in every piece: a ray enters each piece through a front face. Kept in
    the mesh's trimesh cache, which trimesh empties when the geometry changes (scenes reuse the
    same vehicle models). A mesh built so (metadata closed_outward: ovbench's procedural vehicles,
    figures and street sets) is taken at its word; tests check the builders."""
    if mesh.metadata.get("closed_outward", False):
        return False
    key = "ovbench_visible_back_faces"
    if key not in mesh._cache:
        mesh._cache[key] = _find_visible_back_faces(mesh)
    return mesh._cache[key]


def _find_visible_back_faces(mesh: trimesh.Trimesh) -> bool:
    if not (mesh.is_watertight and mesh.is_winding_consistent):
        return True
    corners = mesh.triangles
    signed_volumes = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))
    pieces = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    return bool((np.bincount(pieces, weights=signed_volumes) <= 0).any())


@dataclass(frozen=True)
class _Material:
    """A surface's metallic-roughness material, read from trimesh's visual as pyrender reads it.
    Textures are PIL images (None: white, so the factor alone counts)."""

    base_colour: tuple = (1.0, 1.0, 1.0, 1.0)
    metallic: float = 0.2
    roughness: float = 0.8
    emissive: tuple = (0.0, 0.0, 0.0)
    textures: tuple = (None, None, None)  # base colour (sRGB), metallic-roughness, emissive (sRGB)


def _unit_colour(colour, default) -> tuple:
    if colour is None:
        return default
    colour = np.asarray(colour)
    return tuple(colour / 255.0 if np.issubdtype(colour.dtype, np.integer) else colour.astype(np.float64))


def _material(mesh: trimesh.Trimesh) -> _Material:
    visual = mesh.visual
    if visual.kind in ("face", "vertex"):
        return _Material()
    if visual.kind != "texture":
        return _Material(base_colour=(0.3, 0.3, 0.3, 1.0))
    found = visual.material
    if isinstance(found, trimesh.visual.material.SimpleMaterial):
        # An OBJ/MTL (Phong) material is a dielectric; pyrender's roughness for its shininess.
        shininess = found.kwargs.get("Ns", 1.0)
        shininess = float(shininess[0] if isinstance(shininess, list) else shininess)
        return _Material(_unit_colour(found.diffuse, (1.0,) * 4), 0.0, (2 / (shininess + 2)) ** 0.25,
                         textures=(found.image, None, None))
    if not isinstance(found, trimesh.visual.material.PBRMaterial):
        found = found.to_pbr()

    def factor(value, default):
        return default if value is None else float(value)

    return _Material(_unit_colour(found.baseColorFactor, (1.0,) * 4), factor(found.metallicFactor, 1.0),
                     factor(found.roughnessFactor, 1.0), _unit_colour(found.emissiveFactor, (0.0,) * 3),
                     (found.baseColorTexture, found.metallicRoughnessTexture, found.emissiveTexture))


@dataclass(frozen=True)
class _Surface:
    """A mesh ready to draw, in its own frame: a row per triangle corner in each array."""

    positions: np.ndarray     # float32 n×3
    normals: np.ndarray       # float32 n×3
    attributes: np.ndarray    # float32 n×6: texture coordinate 2, colour multiplier 4
    material: _Material
    two_sided: bool


def _surface(mesh: trimesh.Trimesh) -> _Surface:
    """Kept in the mesh's trimesh cache with the visual's hash (scenes reuse vehicle models; a
    changed colour makes a new surface)."""
    key, visual_hash = "ovbench_surface", hash(mesh.visual)
    kept = mesh._cache[key] if key in mesh._cache else None
    if kept is None or kept[0] != visual_hash:
        kept = (visual_hash, _make_surface(mesh))
        mesh._cache[key] = kept
    return kept[1]


def _make_surface(mesh: trimesh.Trimesh) -> _Surface:
    faces = mesh.faces
    # Face colours and faceted solids (metadata flat_shading, e.g. procedural vehicles) are drawn
    # flat; vertex colours and file meshes' textures smooth.
    flat = mesh.visual.kind == "face" or mesh.metadata.get("flat_shading", False)
    normals = np.repeat(mesh.face_normals, 3, axis=0) if flat else mesh.vertex_normals[faces].reshape(-1, 3)
    attributes = np.ones((len(faces) * 3, 6), np.float32)
    visual = mesh.visual
    if visual.kind == "texture" and visual.uv is not None and len(visual.uv):
        attributes[:, 0:2] = visual.uv[faces].reshape(-1, 2)
    else:
        attributes[:, 0:2] = 0.0
    if visual.kind == "face":
        attributes[:, 2:6] = np.repeat(visual.face_colors, 3, axis=0) / 255.0
    elif visual.kind == "vertex":
        attributes[:, 2:6] = visual.vertex_colors[faces].reshape(-1, 4) / 255.0
    return _Surface(mesh.vertices[faces].reshape(-1, 3).astype(np.float32), normals.astype(np.float32),
                    attributes, _material(mesh), _has_visible_back_faces(mesh))


def _projection(camera: Camera, aspect: float) -> np.ndarray:
    """OpenGL perspective projection (as pyrender's PerspectiveCamera)."""
    focal = 1.0 / np.tan(camera.yfov / 2)
    near, far = camera.znear, camera.zfar
    return np.array([[focal / aspect, 0, 0, 0], [0, focal, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]])


SHADOW_MAP_SIZE = 2048


def _sun_matrix(bounds: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The sun's shadow camera (projection × view): orthographic, spanning the scene's bounding
    sphere and a depth range of 4 diagonals from a diagonal behind the scene's centre (pyrender
    spans twice the diagonal and 10 diagonals: a quarter of the texels on the scene, and a depth
    bias ten times coarser)."""
    scale = float(np.linalg.norm(bounds[1] - bounds[0])) or 1.0
    pose = look_at((0, 0, 0), direction)
    pose[:3, 3] = bounds.mean(axis=0) - direction / np.linalg.norm(direction) * scale
    near, far, half = 0.01 * scale, 4.0 * scale, scale / 2
    projection = np.diag([1 / half, 1 / half, 2 / (near - far), 1.0])
    projection[2, 3] = (far + near) / (near - far)
    return projection @ np.linalg.inv(pose)


@functools.lru_cache(maxsize=1)
def _programs() -> dict:
    """The context's three programs (instance ids and depth, depth only, lit colour), each with its
    uniform locations."""
    gl = gl_context()

    def build(fragment: str) -> tuple[int, dict]:
        program = gl.glCreateProgram()
        for kind, source in ((gl.GL_VERTEX_SHADER, shaders.VERTEX), (gl.GL_FRAGMENT_SHADER, fragment)):
            shader = gl.glCreateShader(kind)
            gl.glShaderSource(shader, source)
            gl.glCompileShader(shader)
            if not gl.glGetShaderiv(shader, gl.GL_COMPILE_STATUS):
                raise RuntimeError(f"shader compile failed: {gl.glGetShaderInfoLog(shader).decode()}")
            gl.glAttachShader(program, shader)
        gl.glLinkProgram(program)
        if not gl.glGetProgramiv(program, gl.GL_LINK_STATUS):
            raise RuntimeError(f"program link failed: {gl.glGetProgramInfoLog(program).decode()}")
        count = gl.glGetProgramiv(program, gl.GL_ACTIVE_UNIFORMS)
        names = [gl.glGetActiveUniform(program, k)[0].decode() for k in range(count)]
        return program, {name: gl.glGetUniformLocation(program, name) for name in names}

    return {"ids": build(shaders.IDS), "depth": build(shaders.DEPTH_ONLY), "lit": build(shaders.LIT)}


def _texture(gl, image: np.ndarray | tuple, internal, fmt, kind, filters=None) -> int:
    """A 2D texture of `image` (rows top first, as images are stored; GL's rows go bottom up), or
    an empty one of that (height, width)."""
    texture = gl.glGenTextures(1)
    gl.glBindTexture(gl.GL_TEXTURE_2D, texture)
    gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
    if isinstance(image, tuple):
        (height, width), data = image, None
    else:
        (height, width), data = image.shape[:2], np.ascontiguousarray(image[::-1])
    gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, internal, width, height, 0, fmt, kind, data)
    if filters is None:  # a material's texture: sampled as pyrender samples it
        gl.glGenerateMipmap(gl.GL_TEXTURE_2D)
        filters = (gl.GL_LINEAR_MIPMAP_LINEAR, gl.GL_LINEAR)
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, filters[0])
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, filters[1])
    return texture


TEXTURE_BYTES = 256 << 20  # of material textures the process keeps: scenes reuse vehicle models
UPLOAD_UNIT = 7            # the lit program samples units 0-3


class _KeptTextures:
    """Material textures, each image uploaded once (and read then: an image is not expected to
    change) and kept, the least recently used forgotten while their total is above
    TEXTURE_BYTES (never those asked for now). An entry holds its image, so no other image
    takes its id."""

    def __init__(self):
        self.entries: collections.OrderedDict = collections.OrderedDict()  # id → (image, texture, bytes)
        self.total = 0

    def textures(self, gl, images: tuple) -> list[int]:
        """The textures of a material's images (the white one for None). Uploads bind on a unit
        no program samples, so a pass's bound textures (the shadow map) stay bound."""
        gl.glActiveTexture(gl.GL_TEXTURE0 + UPLOAD_UNIT)
        uploaded = False
        for image in images:
            if image is None:
                continue
            if id(image) in self.entries:
                self.entries.move_to_end(id(image))
                continue
            rgba = np.asarray(image.convert("RGBA"), np.uint8)
            texture = _texture(gl, rgba, gl.GL_RGBA8, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE)
            self.entries[id(image)] = (image, texture, rgba.nbytes * 4 // 3)  # with its mipmaps
            self.total += rgba.nbytes * 4 // 3
            uploaded = True
        wanted = {id(image) for image in images}
        while uploaded and self.total > TEXTURE_BYTES and next(iter(self.entries)) not in wanted:
            _, texture, size = self.entries.popitem(last=False)[1]
            gl.glDeleteTextures([texture])
            self.total -= size
        return [_white_texture() if image is None else self.entries[id(image)][1] for image in images]


_kept_textures = _KeptTextures()  # the process's (its one context's)


@functools.lru_cache(maxsize=1)
def _white_texture() -> int:
    gl = gl_context()
    return _texture(gl, np.full((1, 1, 4), 255, np.uint8), gl.GL_RGBA8, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE)


def _shadow_texture(gl, size: int) -> int:
    texture = _texture(gl, (size, size), gl.GL_DEPTH_COMPONENT24, gl.GL_DEPTH_COMPONENT,
                       gl.GL_FLOAT, (gl.GL_LINEAR, gl.GL_LINEAR))
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_COMPARE_MODE, gl.GL_COMPARE_REF_TO_TEXTURE)
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_COMPARE_FUNC, gl.GL_LEQUAL)
    for wrap in (gl.GL_TEXTURE_WRAP_S, gl.GL_TEXTURE_WRAP_T):  # beyond the map: in the sun
        gl.glTexParameteri(gl.GL_TEXTURE_2D, wrap, gl.GL_CLAMP_TO_BORDER)
    gl.glTexParameterfv(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_BORDER_COLOR, (1.0, 1.0, 1.0, 1.0))
    return texture


@functools.lru_cache(maxsize=1)
def _shadow_map() -> tuple[int, int]:
    """The process's shadow map: a framebuffer and its depth texture."""
    gl = gl_context()
    texture = _shadow_texture(gl, SHADOW_MAP_SIZE)
    framebuffer = gl.glGenFramebuffers(1)
    gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, framebuffer)
    gl.glFramebufferTexture2D(gl.GL_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_TEXTURE_2D, texture, 0)
    gl.glDrawBuffer(gl.GL_NONE)
    gl.glReadBuffer(gl.GL_NONE)
    return framebuffer, texture


_shadow_owner: list = [None]  # the scene token of the renderer whose shadows the map holds


@functools.lru_cache(maxsize=1)
def _white_depth_texture() -> int:
    """Bound as the shadow map when a scene casts no shadows (never sampled then)."""
    gl = gl_context()
    return _shadow_texture(gl, 1)


@functools.lru_cache(maxsize=None)
def _framebuffers(width: int, height: int) -> dict:
    """Per image size: an instance id and depth target (RG32F) and a colour target (RGBA8),
    sharing one depth buffer; renderers of a size share them (each pass is read back at once)."""
    gl = gl_context()
    depth = gl.glGenRenderbuffers(1)
    gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, depth)
    gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_DEPTH_COMPONENT24, width, height)
    found = {}
    for name, internal in (("ids", gl.GL_RG32F), ("lit", gl.GL_RGBA8)):
        colour = gl.glGenRenderbuffers(1)
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, colour)
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, internal, width, height)
        found[name] = gl.glGenFramebuffers(1)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, found[name])
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_RENDERBUFFER, colour)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_RENDERBUFFER, depth)
        if gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER) != gl.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"{name} framebuffer incomplete at {width}×{height}")
    return found


def _matrix(gl, location: int, matrix: np.ndarray) -> None:
    gl.glUniformMatrix4fv(location, 1, gl.GL_TRUE, np.ascontiguousarray(matrix, np.float32))


@dataclass
class _Part:
    """One object or piece of scenery in the scene's vertex buffer."""

    first: int                # first corner
    count: int                # corners
    surface: _Surface
    mirrored: bool            # a pose with a reflection turns the winding over
    corners: np.ndarray       # its bounding box's 8 corners in the world


class Renderer:
    """A scene and an image size on the process's one OpenGL context: load a scene with
    `set_scene`, then render it from any camera. Renderers are cheap; make as many as needed
    (a scene's GL buffers last until its next set_scene; the sun's shadow map is the process's
    one, drawn again when a renderer wants another scene's)."""

    def __init__(self, width: int, height: int | None = None):
        self.width, self.height = int(width), int(height or width)
        self._gl = gl_context()  # the GL module: _begin and set_scene make the context current
        self._programs = _programs()
        self._targets = _framebuffers(self.width, self.height)
        self._parts: list[_Part] = []
        self._count = 0            # objects; parts after them are scenery
        self._buffers: tuple = ()  # vertex array and buffer of the scene
        self._lighting = Lighting()
        self._background = (0.0, 0.0, 0.0)
        self._sun_matrix = np.eye(4)
        self._scene_token = object()  # whose scene the process's shadow map holds

    def set_scene(self, objects: list[SceneObject], lighting: Lighting | None = None,
                  background=(0.0, 0.0, 0.0), scenery: list[SceneObject] = ()) -> None:
        """Objects get instance ids 1..n; scenery (ground, buildings) is drawn in colour only."""
        gl = gl_context()
        self._lighting, self._background = lighting or Lighting(), tuple(background)
        placed = [(obj, _surface(obj.mesh)) for obj in (*objects, *scenery)]
        total = sum(len(surface.positions) for _, surface in placed)
        # One buffer of four blocks (positions, normals, texture coordinates and colours, instance
        # ids): each part's rows are contiguous in each, so filling them is plain copies.
        positions, normals = np.empty((total, 3), np.float32), np.empty((total, 3), np.float32)
        attributes, instances = np.empty((total, 6), np.float32), np.empty(total, np.float32)
        self._parts, first, lows, highs = [], 0, [], []
        for k, (obj, surface) in enumerate(placed):
            pose = np.asarray(obj.pose, dtype=np.float64)
            rows = slice(first, first + len(surface.positions))
            positions[rows] = surface.positions @ pose[:3, :3].T + pose[:3, 3]
            normals[rows] = surface.normals @ np.linalg.inv(pose[:3, :3])
            attributes[rows] = surface.attributes
            instances[rows] = k + 1 if k < len(objects) else 0
            if len(surface.positions):  # by column: numpy reduces a tall narrow array slowly
                lows.append([positions[rows, axis].min() for axis in range(3)])
                highs.append([positions[rows, axis].max() for axis in range(3)])
            bounds = obj.mesh.bounds if len(obj.mesh.vertices) else np.zeros((2, 3))
            box = trimesh.transform_points(trimesh.bounds.corners(bounds), pose)
            self._parts.append(_Part(first, len(surface.positions), surface, np.linalg.det(pose[:3, :3]) < 0, box))
            first += len(surface.positions)
        self._count = len(objects)
        self._release()
        vertex_array, vertex_buffer = gl.glGenVertexArrays(1), gl.glGenBuffers(1)
        gl.glBindVertexArray(vertex_array)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, vertex_buffer)
        blocks = (positions, normals, attributes, instances)
        gl.glBufferData(gl.GL_ARRAY_BUFFER, sum(block.nbytes for block in blocks), None, gl.GL_STATIC_DRAW)
        offsets = np.cumsum([0] + [block.nbytes for block in blocks])
        for block, offset in zip(blocks, offsets):
            if block.nbytes:
                gl.glBufferSubData(gl.GL_ARRAY_BUFFER, int(offset), block.nbytes, block)
        # Attribute locations: position, normal, texture coordinate, colour, instance id.
        for location, (block, start, size) in enumerate(((0, 0, 3), (1, 0, 3), (2, 0, 2), (2, 2, 4), (3, 0, 1))):
            stride = blocks[block].strides[0]
            gl.glEnableVertexAttribArray(location)
            gl.glVertexAttribPointer(location, size, gl.GL_FLOAT, gl.GL_FALSE, stride,
                                     ctypes.c_void_p(int(offsets[block]) + start * 4))
        self._buffers = (vertex_array, vertex_buffer)
        if lows:
            bounds = np.array([np.min(lows, axis=0), np.max(highs, axis=0)], np.float64)
            self._sun_matrix = _sun_matrix(bounds, np.asarray(self._lighting.sun_direction, np.float64))
        self._scene_token = object()

    def _release(self) -> None:
        gl = self._gl  # set_scene made the context current
        if self._buffers:
            gl.glDeleteVertexArrays(1, [self._buffers[0]])
            gl.glDeleteBuffers(1, [self._buffers[1]])
            self._buffers = ()

    def _check_scene(self) -> None:
        if not self._buffers:
            raise RuntimeError("Renderer.set_scene must be called before rendering")

    def _draw(self, indices) -> None:
        """The parts `indices`, in that order (the order decides ties in the depth test, so
        every pass keeps it)."""
        gl, culling = self._gl, None
        for k in indices:
            part = self._parts[k]
            if culling != (not part.surface.two_sided):
                culling = not part.surface.two_sided
                (gl.glEnable if culling else gl.glDisable)(gl.GL_CULL_FACE)
            gl.glFrontFace(gl.GL_CW if part.mirrored else gl.GL_CCW)
            gl.glDrawArrays(gl.GL_TRIANGLES, part.first, part.count)

    def _begin(self, framebuffer: int, program: str, matrix: np.ndarray, clear: tuple,
               size: tuple | None = None) -> dict:
        gl = gl_context()  # code that draws with pyrender makes its own context current
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, framebuffer)
        gl.glPolygonMode(gl.GL_FRONT_AND_BACK, gl.GL_FILL)  # pyrender's wireframe leaves lines
        gl.glCullFace(gl.GL_BACK)
        gl.glViewport(0, 0, *(size or (self.width, self.height)))
        gl.glClearColor(*clear)
        gl.glEnable(gl.GL_DEPTH_TEST)
        gl.glDepthFunc(gl.GL_LESS)
        gl.glDepthMask(gl.GL_TRUE)
        gl.glDisable(gl.GL_BLEND)
        gl.glDisable(gl.GL_SCISSOR_TEST)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT)
        program, locations = self._programs[program]
        gl.glUseProgram(program)
        gl.glBindVertexArray(self._buffers[0])
        _matrix(gl, locations["view_projection"], matrix)
        return locations

    def _view_projection(self, camera: Camera) -> np.ndarray:
        return _projection(camera, self.width / self.height) @ np.linalg.inv(camera.pose)

    def _read(self, fmt, kind, channels: int, dtype, box: tuple | None = None) -> np.ndarray:
        """The framebuffer's pixels, rows top first: all, or those of box (row0, row1, col0, col1)."""
        row0, row1, col0, col1 = box or (0, self.height, 0, self.width)
        gl, out = self._gl, np.empty((row1 - row0, col1 - col0, channels), dtype)
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)  # rows of any width, unpadded
        gl.glReadPixels(col0, self.height - row1, col1 - col0, row1 - row0, fmt, kind, out)
        return out[::-1]

    def _ids_pass(self, camera: Camera, indices) -> tuple[np.ndarray, np.ndarray]:
        self._check_scene()
        gl = self._gl
        self._begin(self._targets["ids"], "ids", self._view_projection(camera), (0.0, 0.0, 0.0, 0.0))
        self._draw(indices)
        found = self._read(gl.GL_RG, gl.GL_FLOAT, 2, np.float32)
        return found[..., 0].astype(np.int32), np.ascontiguousarray(found[..., 1])

    def instances(self, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """Instance-id map (0 background, k for objects[k-1]) and linear depth (0 background)."""
        return self._ids_pass(camera, range(self._count))

    def solo(self, camera: Camera, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Object `index` alone: its amodal mask and its own depth (0 where it is absent)."""
        ids, depth = self._ids_pass(camera, [index])
        return ids > 0, depth

    def _draw_shadow_map(self) -> None:
        framebuffer, _ = _shadow_map()
        self._begin(framebuffer, "depth", self._sun_matrix, (0.0, 0.0, 0.0, 0.0), (SHADOW_MAP_SIZE, SHADOW_MAP_SIZE))
        self._draw(range(len(self._parts)))  # every mesh casts, whichever a pass shows
        _shadow_owner[0] = self._scene_token

    def _lit_pass(self, camera: Camera, indices, boxes: list | None = None):
        """The parts `indices` lit: the whole image, or with `boxes` the list of their crops,
        each read back and antialiased alone (a box keeps a pixel of margin around what it
        holds, so its pixels get the values of the whole image's)."""
        self._check_scene()
        gl, lighting = self._gl, self._lighting
        if lighting.shadows and _shadow_owner[0] is not self._scene_token:
            self._draw_shadow_map()
        where = self._begin(self._targets["lit"], "lit", self._view_projection(camera), (*self._background, 1.0))
        sun = -np.asarray(lighting.sun_direction, np.float64)
        gl.glUniform3f(where["camera_position"], *camera.pose[:3, 3])
        gl.glUniform3f(where["sun_towards"], *(sun / np.linalg.norm(sun)))
        gl.glUniform3f(where["sun_radiance"], *(lighting.sun_intensity,) * 3)
        gl.glUniform3f(where["sky_radiance"], *(lighting.sky,) * 3)
        gl.glUniform3f(where["ambient"], *(lighting.ambient,) * 3)
        gl.glUniform1i(where["shadows"], int(lighting.shadows))
        _matrix(gl, where["shadow_matrix"], self._sun_matrix)
        for unit, name in enumerate(("base_colour_texture", "metallic_roughness_texture", "emissive_texture",
                                     "shadow_map")):
            gl.glUniform1i(where[name], unit)
        gl.glActiveTexture(gl.GL_TEXTURE3)
        gl.glBindTexture(gl.GL_TEXTURE_2D, _shadow_map()[1] if lighting.shadows else _white_depth_texture())
        current = None
        for k in indices:
            surface = self._parts[k].surface
            if surface.material is not current:
                current = surface.material
                for unit, texture in enumerate(_kept_textures.textures(gl, current.textures)):
                    gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
                    gl.glBindTexture(gl.GL_TEXTURE_2D, texture)
                gl.glUniform4f(where["base_colour_factor"], *current.base_colour)
                gl.glUniform1f(where["metallic_factor"], current.metallic)
                gl.glUniform1f(where["roughness_factor"], current.roughness)
                gl.glUniform3f(where["emissive_factor"], *current.emissive)
            gl.glUniform1i(where["two_sided"], int(surface.two_sided))
            self._draw([k])
        if boxes is None:
            return soften_edges(np.ascontiguousarray(self._read(gl.GL_RGB, gl.GL_UNSIGNED_BYTE, 3, np.uint8)))
        return [soften_edges(np.ascontiguousarray(self._read(gl.GL_RGB, gl.GL_UNSIGNED_BYTE, 3, np.uint8, box)))
                for box in boxes]

    def rgb(self, camera: Camera) -> np.ndarray:
        """Lit colour image (uint8 H×W×3, edges antialiased; take masks and depth from the
        instance and solo passes)."""
        return self._lit_pass(camera, range(len(self._parts)))

    def rgb_solo(self, camera: Camera, index: int) -> np.ndarray:
        """Object `index` alone, lit exactly as in the scene, on the background colour."""
        return self._lit_pass(camera, [index])

    def screen_boxes(self, camera: Camera, indices) -> dict[int, tuple | None]:
        """Per object: the pixels its bounding box can touch, (row0, row1, col0, col1) half-open
        with a pixel of margin; the whole image for a box through the near plane; None when
        nothing of it can be seen (behind the camera or outside the frame)."""
        indices = list(indices)
        view = np.linalg.inv(camera.pose)
        focal_y = 1.0 / np.tan(camera.yfov / 2)
        focal_x = focal_y * self.height / self.width
        corners = np.array([self._parts[k].corners for k in indices]).reshape(len(indices), 8, 3)
        points = corners @ view[:3, :3].T + view[:3, 3]  # camera frame, every box at once
        distance = -points[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):  # boxes at or behind the camera: not used
            cols = self.width / 2 * (1 + focal_x * points[..., 0] / distance)
            rows = self.height / 2 * (1 - focal_y * points[..., 1] / distance)
        spans = np.stack([np.floor(rows.min(axis=1)) - 1, np.ceil(rows.max(axis=1)) + 1,
                          np.floor(cols.min(axis=1)) - 1, np.ceil(cols.max(axis=1)) + 1], axis=1)
        behind, through = (distance <= camera.znear).all(axis=1), (distance <= camera.znear * 1.01).any(axis=1)
        boxes = {}
        for n, k in enumerate(indices):
            if behind[n]:
                boxes[k] = None
            elif through[n]:
                boxes[k] = (0, self.height, 0, self.width)
            else:
                row0, row1, col0, col1 = spans[n].tolist()
                box = (max(int(row0), 0), min(int(row1), self.height), max(int(col0), 0), min(int(col1), self.width))
                boxes[k] = box if box[0] < box[1] and box[2] < box[3] else None
        return boxes

    def _apart(self, camera: Camera, indices) -> tuple[list[list[int]], dict]:
        """The objects that can be seen, in groups whose screen boxes do not meet (greedy, largest
        box first; each group in index order), and their screen boxes."""
        boxes = {k: box for k, box in self.screen_boxes(camera, indices).items() if box is not None}
        groups: list[list[int]] = []
        for k in sorted(boxes, key=lambda k: -(boxes[k][1] - boxes[k][0]) * (boxes[k][3] - boxes[k][2])):
            a = boxes[k]
            for group in groups:
                if all(a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
                       for b in (boxes[j] for j in group)):
                    group.append(k)
                    break
            else:
                groups.append([k])
        return [sorted(group) for group in groups], boxes

    def solos(self, camera: Camera, indices) -> dict[int, tuple[tuple, np.ndarray, np.ndarray]]:
        """`solo` for each of `indices` that can be seen, cropped to its screen box: (box, amodal
        mask, own depth) of the box's pixels (nothing of the object lies outside it). Objects
        whose screen boxes keep apart are drawn in one pass."""
        found = {}
        groups, boxes = self._apart(camera, indices)
        for group in groups:
            ids, depth = self._ids_pass(camera, group)
            for k in group:
                row0, row1, col0, col1 = box = boxes[k]
                mask = ids[row0:row1, col0:col1] == k + 1
                found[k] = (box, mask, np.where(mask, depth[row0:row1, col0:col1], np.float32(0)))
        return found

    def rgb_solos(self, camera: Camera, indices) -> dict[int, tuple[tuple, np.ndarray]]:
        """`rgb_solo` for each of `indices` that can be seen, cropped as `solos` crops: (box,
        colours of the box's pixels), equal to the object's own pass wherever that object is
        (its amodal mask). Objects whose screen boxes keep apart are drawn in one pass."""
        found = {}
        groups, boxes = self._apart(camera, indices)
        for group in groups:
            crops = self._lit_pass(camera, group, [boxes[k] for k in group])
            found.update({k: (boxes[k], crop) for k, crop in zip(group, crops)})
        return found


@functools.lru_cache(maxsize=None)
def shared_renderer(width: int, height: int | None = None) -> Renderer:
    """A renderer per size for code that renders one scene at a time (workers, generators)."""
    return Renderer(width, height)
