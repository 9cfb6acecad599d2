"""AMD/Xilinx Alveo U280 data-center accelerator card (XCU280, UltraScale+ with HBM2)."""

from amaranth.build import Attrs, Clock, DiffPairs, Pins, PinsN, Resource
from amaranth.vendor import XilinxPlatform

from devices import ULTRASCALE_PLUS

__all__ = ["AlveoU280Platform"]


class AlveoU280Platform(XilinxPlatform):
    """Alveo U280: ``xcu280-fsvh2892-2L-e``.

    Resources follow the card's user guide (UG1314) and master XDC: the 100 MHz differential
    system clocks SYSCLK0 (bank 65) and SYSCLK1 (bank 69), the active-low CPU_RESET_FPGA push
    button, and HBM_CATTRIP, which a design without the HBM IP must drive low or the card's
    satellite controller powers the card down. ``fpga`` holds the device's facts and its
    programmable-logic capacity (DS963); a Vitis shell takes part of it, so plan for about 80%.
    """

    device = "xcu280"
    package = "fsvh2892"
    speed = "2L-e"
    default_clk = "sysclk0"
    fpga = ULTRASCALE_PLUS.part(capacity={"LUT": 1_304_000, "FF": 2_607_000, "DSP": 9_024, "BRAM36": 2_016,
                                          "URAM": 960}, usable_fraction=0.8, vitis=True)

    #: The Vitis platform its kernel links against (``v++ --platform``), and where its buffers go.
    vitis_platform = "xilinx_u280_gen3x16_xdma_1_202211_1"
    vitis_memory = "HBM"

    resources = [
        Resource("sysclk0", 0, DiffPairs("BJ43", "BJ44", dir="i"), Clock(100e6),
                 Attrs(IOSTANDARD="LVDS")),
        Resource("sysclk1", 0, DiffPairs("BH6", "BJ6", dir="i"), Clock(100e6),
                 Attrs(IOSTANDARD="LVDS")),
        Resource("rst", 0, PinsN("L30", dir="i"), Attrs(IOSTANDARD="LVCMOS18")),
        Resource("hbm_cattrip", 0, Pins("D32", dir="o"), Attrs(IOSTANDARD="LVCMOS18", PULLTYPE="PULLDOWN")),
    ]
    connectors = []
