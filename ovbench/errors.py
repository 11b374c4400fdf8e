"""Errors a caller can fix. Library code raises them in its own words, naming parameters in
backticks (`resume`); the CLI shows those names as its flags (--resume), prints the message as one
line and exits with code 2."""


class InputError(ValueError):
    """Bad input or environment; the message says what is wrong and what to do."""

    exit_code = 2


class GLUnavailable(InputError):
    """No usable OpenGL (EGL) for offscreen rendering."""


class MeshError(InputError):
    """A mesh file that is empty, unreadable or degenerate."""
