"""AMD/Xilinx ZCU102 evaluation board (Zynq UltraScale+ MPSoC XCZU9EG)."""

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform

from devices import ULTRASCALE_PLUS

__all__ = ["ZCU102Platform"]


class ZCU102Platform(XilinxPlatform):
    """ZCU102: ``xczu9eg-ffvb1156-2-e``, INR-Arch's MPSoC target; the design runs in the
    programmable logic, without the processing system.

    Resources follow the board's user guide (UG1182): the 125 MHz differential CLK_125 (bank
    67), the active-high CPU_RESET push button and the user LED GPIO_LED_0. ``fpga`` holds the
    device's facts and its programmable-logic capacity (DS891: no UltraRAM). There is no shell,
    but routing a design past about 80% of the device rarely meets timing, so plan for that.
    """

    device = "xczu9eg"
    package = "ffvb1156"
    speed = "2-e"
    default_clk = "clk125"
    fpga = ULTRASCALE_PLUS.part(capacity={"LUT": 274_080, "FF": 548_160, "DSP": 2_520, "BRAM36": 912, "URAM": 0},
                                usable_fraction=0.8)

    resources = [
        Resource("clk125", 0, DiffPairs("G21", "F21", dir="i"), Clock(125e6), Attrs(IOSTANDARD="LVDS_25")),
        Resource("rst", 0, Pins("AM13", dir="i"), Attrs(IOSTANDARD="LVCMOS33")),
        Resource("led", 0, Pins("AG14", dir="o"), Attrs(IOSTANDARD="LVCMOS33")),
    ]
    connectors = []
