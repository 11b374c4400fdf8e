"""Errors a user can fix: the CLI prints their message as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or environment; the message says what is wrong and what to do."""

    exit_code = 2


class GLUnavailable(UserError):
    """No usable OpenGL (EGL) for offscreen rendering."""


class MeshError(UserError):
    """A mesh file that is empty, unreadable or degenerate."""
