"""Errors a user can act on: they print as one line, never as a traceback."""

__all__ = ["InrarchError", "CompileError"]


class InrarchError(Exception):
    """A problem with what the user asked for (bad model, option or input)."""


class CompileError(InrarchError):
    """The function cannot be compiled to hardware, and why."""
