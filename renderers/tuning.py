"""Changes to the process's pyrender renderer that make llvmpipe passes cheaper, made once when the
first Renderer is created. Each is a function (pyrender, inner renderer) in TUNINGS. They rely on
pyrender 1.0.1's renderer internals; tests/test_renderer.py checks that the tuned renderer draws
the pixels of one with single-sampling alone.

- `single_sampled`: pyrender's framebuffers are 4× multisampled, which on llvmpipe costs ~40% of
  a pass, SEG passes included (they draw with multisampling off but still clear and resolve four
  samples). Single samples make masks, depth and colour agree pixel for pixel; `Renderer.rgb`
  antialiases on the image instead.
- `kept_shadow_maps`: a scene's shadow map is drawn once, with every mesh of the scene, and kept
  for later colour passes of that scene (hidden meshes still cast their shadows). pyrender frees
  a light's map when another scene is drawn, so the map is redrawn after a scene change.
- `constant_light_loops`: mesh.frag's light loops are bounded by the scene's light counts as
  constants instead of uniforms (`i < n_point_lights`). llvmpipe pays for a loop with a uniform
  bound even when it runs no turn: the three loops cost two thirds of a lit 256-pixel pass with
  one light. Each light set gets its own program.
- `lighting_once_a_pass`: pyrender sets every light's uniforms (~30 calls into GL) before each
  primitive; they stay in the program, so once a pass per program is enough. At 60 objects that
  was half a colour pass's time.
- `cached_uniform_locations`: pyrender asks GL for a uniform's location by name at every set
  (~10 a primitive); a linked program's locations never change, so each is asked once. A third
  of a 60-object pass.
- `nodes_sorted_once_a_view`: pyrender sorts every mesh node by its distance to the camera before
  each pass, also a solo pass that draws two of sixty; the order is kept while the scene, its
  mesh nodes and the camera's position stay.
"""

from __future__ import annotations

import functools

LIGHT_KINDS = ("directional", "spot", "point")


def _with_global(call, module, name: str, value):
    """`call` with `module.name` replaced by `value` while it runs: a pyrender module's GL function
    changed for this renderer's calls only."""
    def wrapped(*args, **kwargs):
        stock = getattr(module, name)
        setattr(module, name, value)
        try:
            return call(*args, **kwargs)
        finally:
            setattr(module, name, stock)

    return wrapped


def single_sampled(pr, inner) -> None:
    storage = pr.renderer.glRenderbufferStorageMultisample
    inner._configure_main_framebuffer = _with_global(
        inner._configure_main_framebuffer, pr.renderer, "glRenderbufferStorageMultisample",
        lambda target, _, *rest: storage(target, 0, *rest))


def kept_shadow_maps(pr, inner) -> None:
    draw, update = inner._shadow_mapping_pass, inner._update_context
    kept = {"scene": None}

    def update_context(scene, flags):
        if kept["scene"] is not scene:  # another scene's textures replace the map
            kept["scene"] = None
        update(scene, flags)

    def shadow_pass(scene, light_node, flags):
        if kept["scene"] is scene:
            return
        hidden = [node.mesh for node in scene.mesh_nodes if not node.mesh.is_visible]
        for mesh in hidden:
            mesh.is_visible = True
        try:
            draw(scene, light_node, flags)
        finally:
            for mesh in hidden:
                mesh.is_visible = False
        kept["scene"] = scene

    inner._shadow_mapping_pass, inner._update_context = shadow_pass, update_context


@functools.lru_cache(maxsize=1)
def _light_loop_programs_class(pr):
    class LightLoopPrograms(pr.shader_program.ShaderProgramCache):
        """pyrender's shader programs, mesh.frag's light loops bounded by `counts` (the scene
        being drawn, set before each pass)."""

        counts: dict | None = None

        def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
            if fragment_shader != "mesh.frag" or self.counts is None:
                return super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)
            defines = dict(defines or {})
            # pyrender draws at most MAX_<KIND>_LIGHTS of a kind (a limit shadow maps change).
            bounds = {kind: min(n, defines[f"MAX_{kind.upper()}_LIGHTS"]) for kind, n in self.counts.items()}
            defines.update({f"OVBENCH_{kind.upper()}_LIGHTS": n for kind, n in bounds.items()})
            program = super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)
            if not program._in_context():  # not compiled yet
                stock_load = program._load

                def load(path):
                    text = stock_load(path)
                    for kind, n in bounds.items():
                        text = text.replace(f"i < n_{kind}_lights;", f"i < {n};")
                    return text

                program._load = load
            return program

    return LightLoopPrograms


def constant_light_loops(pr, inner) -> None:
    programs = inner._program_cache = _light_loop_programs_class(pr)()
    update = inner._update_context

    def update_context(scene, flags):
        programs.counts = {kind: len(getattr(scene, f"{kind}_light_nodes")) for kind in LIGHT_KINDS}
        update(scene, flags)

    inner._update_context = update_context


def lighting_once_a_pass(pr, inner) -> None:
    forward, bind = inner._forward_pass, inner._bind_lighting
    lit: dict = {}  # program → texture units its lights took, in the pass being drawn
    nearest = {"per node": False}  # whether this pass picks each node's nearest lights (too many)

    def forward_pass(scene, flags, seg_node_map=None):
        lit.clear()
        # With more lights of a kind than a program holds, pyrender picks the nearest to each node.
        limits = inner._compute_max_n_lights(flags)  # in LIGHT_KINDS order
        nearest["per node"] = any(len(getattr(scene, f"{kind}_light_nodes")) > limit
                                 for kind, limit in zip(LIGHT_KINDS, limits))
        try:
            return forward(scene, flags, seg_node_map=seg_node_map)
        finally:
            lit.clear()

    def bind_lighting(scene, program, node, flags):
        if program in lit:
            # The lights' shadow maps still sit on the first units: material textures go after.
            inner._texture_alloc_idx += lit[program]
            return
        first = inner._texture_alloc_idx
        bind(scene, program, node, flags)
        if not nearest["per node"]:
            lit[program] = inner._texture_alloc_idx - first

    inner._forward_pass, inner._bind_lighting = forward_pass, bind_lighting


def cached_uniform_locations(pr, inner) -> None:
    lookup = pr.shader_program.glGetUniformLocation
    locations: dict = {}  # (program id, name) → location: the context's programs live as long as it

    def cached_lookup(program_id, name):
        key = (int(program_id), name)
        if key not in locations:
            locations[key] = lookup(program_id, name)
        return locations[key]

    inner.render = _with_global(inner.render, pr.shader_program, "glGetUniformLocation", cached_lookup)


def nodes_sorted_once_a_view(pr, inner) -> None:
    sort = inner._sorted_mesh_nodes
    last: dict = {}  # the scene and camera position of the latest order, and the order

    def sorted_mesh_nodes(scene):
        key = (scene.get_pose(scene.main_camera_node)[:3, 3].tobytes(), frozenset(scene.mesh_nodes))
        if last.get("scene") is not scene or last.get("key") != key:
            last.update(scene=scene, key=key, nodes=sort(scene))
        return last["nodes"]

    inner._sorted_mesh_nodes = sorted_mesh_nodes


TUNINGS = (single_sampled, kept_shadow_maps, constant_light_loops, lighting_once_a_pass,
           cached_uniform_locations, nodes_sorted_once_a_view)


def tune(pr, gl) -> None:
    """Apply TUNINGS to the OffscreenRenderer `gl`'s inner renderer, once."""
    inner = gl._renderer
    if getattr(inner, "ovbench_tuned", False):
        return
    for tuning in TUNINGS:
        tuning(pr, inner)
    inner.ovbench_tuned = True
