"""Board platforms inrarch builds for. ``get_board(name)`` looks a board up by name."""

from .alveo_u280 import AlveoU280Platform

__all__ = ["BOARDS", "get_board", "AlveoU280Platform"]

BOARDS = {"alveo_u280": AlveoU280Platform}


def get_board(name):
    """The platform class for ``name``; raises ``KeyError`` with the known names."""
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None
