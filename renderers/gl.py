"""Headless OpenGL set-up: EGL platform variables, and clear errors when GL is missing.

The variables must be in the environment before pyrender (PyOpenGL) is first imported, and spawn
workers inherit them from here, so importing this module is enough.
"""

import contextlib
import functools
import os

from ovbench.errors import GLUnavailable

APT_FIX = (
    "apt-get install -y --no-install-recommends "
    "libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libgl1"
)

# EGL works without a display, on Mesa's llvmpipe here and on NVIDIA's driver on GPU machines.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# llvmpipe's own threads slow 256-pixel renders down and make forked children unsafe.
os.environ.setdefault("LP_NUM_THREADS", "0")
# pyrender imports its viewer, hence pyglet's window module, which otherwise needs X11 libraries.
os.environ.setdefault("PYGLET_HEADLESS", "true")


def _explain(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "Invalid device ID" in text or "EGL" in text or "swrast" in text:
        what = "no EGL device (EGL vendor library or Mesa DRI driver missing)"
    elif isinstance(exc, (ImportError, OSError)):
        what = f"OpenGL libraries cannot be loaded ({text})"
    else:
        what = f"OpenGL context creation failed ({text})"
    return f"headless OpenGL unavailable: {what}; install it with: {APT_FIX}"


def import_pyrender():
    """The pyrender module, or GLUnavailable with the line that fixes the machine."""
    if os.environ["PYOPENGL_PLATFORM"] != "egl":
        raise GLUnavailable(
            f"PYOPENGL_PLATFORM={os.environ['PYOPENGL_PLATFORM']} is set; ovbench renders "
            "headless through EGL: unset it or set PYOPENGL_PLATFORM=egl"
        )
    # Mesa's llvmpipe loads its LLVM with global symbols; Triton (which torch and torchvision
    # import) carries its own LLVM and crashes the process if it is loaded after Mesa's. Loading
    # it first, when installed, lets both live in one process.
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401
    try:
        import pyrender
    except Exception as exc:  # PyOpenGL and pyglet raise many types for missing libraries
        raise GLUnavailable(_explain(exc)) from exc
    return pyrender


@functools.lru_cache(maxsize=1)
def _context_holder():
    """pyrender's offscreen renderer, kept for the process's life as the owner of its one OpenGL
    context (pyrender's EGL context knows the machine's devices). It is never deleted: pyrender's
    delete terminates the process's EGL display, which would break every other context."""
    pyrender = import_pyrender()
    try:
        return pyrender.OffscreenRenderer(64, 64)
    except Exception as exc:  # PyOpenGL raises many types for a missing driver
        raise GLUnavailable(_explain(exc)) from exc


def gl_context():
    """PyOpenGL's GL module with the process's OpenGL context current (again: code that makes a
    pyrender renderer of its own makes another context current), or GLUnavailable with the line
    that fixes the machine."""
    _context_holder()._platform.make_current()
    from OpenGL import GL

    return GL
