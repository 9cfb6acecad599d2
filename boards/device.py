"""The :class:`devices.Device` of a board.

A board of this package names its own (``fpga``, with its part's capacity). An amaranth-boards
board gets the facts of its device family: 7 series (DSP48E1), UltraScale (the kcu105) and
UltraScale+ (the rfsoc4x2) from the Xilinx platform's family, ECP5 from the Lattice one. Of those,
the ECP5 boards also get their part's capacity (:data:`ECP5_CAPACITY`) and the share of it the open
flow routes (:data:`ECP5_USABLE_FRACTION`), so that a compile for them folds the design into that
many multipliers; the Xilinx ones state none.
"""

from devices import ECP5, SERIES7, ULTRASCALE, ULTRASCALE_PLUS

__all__ = ["board_device", "ECP5_CAPACITY", "ECP5_USABLE_FRACTION"]

_FAMILIES = {"series7": SERIES7, "ultrascale": ULTRASCALE, "ultrascaleplus": ULTRASCALE_PLUS, "ecp5": ECP5}

#: Capacity of the ECP5 parts by logic size, as nextpnr-ecp5 counts their sites: TRELLIS_COMB (LUT4),
#: TRELLIS_FF, MULT18X18D and DP16KD (an 18 Kbit block, half a BRAM36 in the resource model). The
#: LFE5U, LFE5UM and LFE5UM5G of one size share the die. The 12F is left out: nextpnr places it as
#: the 25F die, while Lattice's data sheet (FPGA-DS-02012, table 1.1) gives it fewer LUTs and
#: block RAMs, so neither count is the one a design may rely on.
ECP5_CAPACITY = {
    "25F": {"LUT": 24_288, "FF": 24_288, "DSP": 28, "BRAM36": 28, "URAM": 0},
    "45F": {"LUT": 43_848, "FF": 43_848, "DSP": 72, "BRAM36": 54, "URAM": 0},
    "85F": {"LUT": 83_640, "FF": 83_640, "DSP": 156, "BRAM36": 104, "URAM": 0},
}

#: Share of an ECP5 part a design plans to use: what the open flow routes in minutes (the multipliers
#: sit in a few rows of the die, and every operand and product is routed to and from them). Evidence:
#: bench.fmax's fill design, folded into this share of the LFE5U-85F (docs/boards.md "Place and route").
ECP5_USABLE_FRACTION = 0.5


def board_device(platform_class):
    """The :class:`devices.Device` of a board's platform class; None for a family inrarch does not know."""
    fpga = getattr(platform_class, "fpga", None)
    if fpga is not None:
        return fpga
    family = _FAMILIES.get(getattr(platform_class(), "family", None))
    if family is ECP5:
        capacity = ECP5_CAPACITY.get(str(platform_class.device).rpartition("-")[2])
        if capacity is not None:
            return family.part(capacity=capacity, usable_fraction=ECP5_USABLE_FRACTION)
    return family
