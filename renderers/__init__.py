"""Rendering backends (imported as ovbench.renderers): pyrender offscreen through EGL."""

from .gl import APT_FIX, offscreen_renderer
from .scene import Camera, Lighting, Renderer, SceneObject, look_at, shared_renderer

__all__ = [
    "APT_FIX", "Camera", "Lighting", "Renderer", "SceneObject", "look_at", "offscreen_renderer",
    "shared_renderer",
]
