"""The :class:`devices.Device` of a board.

A board of this package names its own (``fpga``, with its part's capacity). An amaranth-boards
board gets the facts of its device family: 7 series (DSP48E1), UltraScale (the kcu105) and
UltraScale+ (the rfsoc4x2) from the Xilinx platform's family, ECP5 from the Lattice one; those
boards state no capacity.
"""

from devices import ECP5, SERIES7, ULTRASCALE, ULTRASCALE_PLUS

__all__ = ["board_device"]

_FAMILIES = {"series7": SERIES7, "ultrascale": ULTRASCALE, "ultrascaleplus": ULTRASCALE_PLUS, "ecp5": ECP5}


def board_device(platform_class):
    """The :class:`devices.Device` of a board's platform class; None for a family inrarch does not know."""
    fpga = getattr(platform_class, "fpga", None)
    if fpga is not None:
        return fpga
    return _FAMILIES.get(getattr(platform_class(), "family", None))
