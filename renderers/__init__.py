"""Rendering backends (imported as ovbench.renderers): OpenGL offscreen through EGL."""

from .gl import APT_FIX, gl_context
from .scene import Camera, Lighting, Renderer, SceneObject, look_at, shared_renderer

__all__ = [
    "APT_FIX", "Camera", "Lighting", "Renderer", "SceneObject", "gl_context", "look_at",
    "shared_renderer",
]
