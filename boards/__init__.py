"""Board platforms inrarch builds for: its own (``alveo_u280``, ``alveo_u50``, ``zcu102``) and every
board of amaranth-boards.

``get_board(name)`` looks a board up by name, ``list_boards()`` names them all, and
``board_device(platform_class)`` gives a board's :class:`devices.Device`. An amaranth-boards board
is named after its module (``versa_ecp5``), or after its class where a module has several
(``ULX3S_85F_Platform`` → ``ulx3s_85f``). A board on a new device family is one file: its
platform class with an ``fpga`` :class:`devices.Device`, listed in ``BOARDS``.
"""

import importlib
import inspect
import pkgutil

from amaranth.build import Platform

from .alveo_u50 import AlveoU50Platform
from .alveo_u280 import AlveoU280Platform
from .device import board_device
from .zcu102 import ZCU102Platform

__all__ = ["BOARDS", "get_board", "list_boards", "board_device", "AlveoU280Platform", "AlveoU50Platform",
           "ZCU102Platform"]

BOARDS = {"alveo_u280": AlveoU280Platform, "alveo_u50": AlveoU50Platform, "zcu102": ZCU102Platform}

_amaranth_boards = None


def _amaranth_board_platforms():
    """``{name: platform class}`` of amaranth-boards (imported once, on first use)."""
    global _amaranth_boards
    if _amaranth_boards is None:
        _amaranth_boards = {}
        try:
            import amaranth_boards
        except ImportError:
            return _amaranth_boards
        for module_info in pkgutil.iter_modules(amaranth_boards.__path__):
            if module_info.ispkg or module_info.name.startswith("_"):
                continue
            try:
                module = importlib.import_module(f"amaranth_boards.{module_info.name}")
            except Exception:
                continue  # a board module whose optional dependencies are missing
            classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                       if cls.__module__ == module.__name__ and issubclass(cls, Platform)
                       and not cls.__name__.startswith("_") and not inspect.isabstract(cls)]
            for cls in classes:
                if len(classes) == 1:
                    name = module_info.name
                else:
                    name = cls.__name__.lower().removesuffix("platform").rstrip("_")
                _amaranth_boards.setdefault(name, cls)
    return _amaranth_boards


def list_boards():
    """Every board name ``get_board`` accepts, sorted."""
    return sorted(set(BOARDS) | set(_amaranth_board_platforms()))


def get_board(name):
    """The platform class for ``name``; raises ``KeyError`` with a hint when there is none."""
    if name in BOARDS:
        return BOARDS[name]
    boards = _amaranth_board_platforms()
    if name in boards:
        return boards[name]
    raise KeyError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))} and "
                   f"{len(boards)} from amaranth-boards (--list-boards names them)")
