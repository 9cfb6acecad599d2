"""AMD/Xilinx Alveo U50 data-center accelerator card (XCU50, UltraScale+ with HBM2)."""

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform

from devices import ULTRASCALE_PLUS

__all__ = ["AlveoU50Platform"]


class AlveoU50Platform(XilinxPlatform):
    """Alveo U50: ``xcu50-fsvh2104-2-e``, INR-Arch's second Vitis target.

    Resources follow the card's master XDC (UG1371): the 100 MHz differential system clock
    SYSCLK2 (bank 68; the card has no user reset button), and HBM_CATTRIP, which a design
    without the HBM IP must drive low or the card's satellite controller powers the card down.
    ``fpga`` holds the device's facts and its programmable-logic capacity (DS962); a Vitis shell
    takes part of it, so plan for about 80%.
    """

    device = "xcu50"
    package = "fsvh2104"
    speed = "2-e"
    default_clk = "sysclk2"
    fpga = ULTRASCALE_PLUS.part(capacity={"LUT": 872_000, "FF": 1_743_000, "DSP": 5_952, "BRAM36": 1_344,
                                          "URAM": 640}, usable_fraction=0.8, vitis=True)

    #: The Vitis platform its kernel links against (``v++ --platform``), and where its buffers go.
    vitis_platform = "xilinx_u50_gen3x16_xdma_5_202210_1"
    vitis_memory = "HBM"

    resources = [
        Resource("sysclk2", 0, DiffPairs("G17", "G16", dir="i"), Clock(100e6), Attrs(IOSTANDARD="LVDS")),
        Resource("hbm_cattrip", 0, Pins("J18", dir="o"), Attrs(IOSTANDARD="LVCMOS18", PULLTYPE="PULLDOWN")),
    ]
    connectors = []
