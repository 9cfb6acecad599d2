"""AMD/Xilinx Alveo U50 data-center accelerator card (XCU50, UltraScale+ with HBM2)."""

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform

from devices import ULTRASCALE_PLUS, Die

__all__ = ["AlveoU50Platform", "U50_DIES"]

# What each die (SLR) offers a kernel after the XDMA platform's shell: AMD UG1120, as FINN quotes it
# (src/finn/util/platforms.py, Alveo_NxU50_Platform: "U50 has identical resource counts on both
# SLRs"). Each die has 2,976 DSP, 672 BRAM36 and 320 URAM (DS962); the HBM stacks are attached to SLR0.
U50_DIES = (
    Die("SLR0", {"LUT": 365_000, "FF": 730_000, "DSP": 2_580, "BRAM36": 564, "URAM": 304}, memory=True,
        pblock="pblock_dynamic_SLR0"),
    Die("SLR1", {"LUT": 365_000, "FF": 730_000, "DSP": 2_580, "BRAM36": 564, "URAM": 304},
        pblock="pblock_dynamic_SLR1"),
)


class AlveoU50Platform(XilinxPlatform):
    """Alveo U50: ``xcu50-fsvh2104-2-e``, INR-Arch's second Vitis target.

    Resources follow the card's master XDC (UG1371): the 100 MHz differential system clock
    SYSCLK2 (bank 68; the card has no user reset button), and HBM_CATTRIP, which a design
    without the HBM IP must drive low or the card's satellite controller powers the card down.
    ``fpga`` holds the device's facts and its programmable-logic capacity (DS962); a Vitis shell
    takes part of it, so plan for about 80%. Its two dies (:data:`U50_DIES`) are what the
    compiler floorplans the design onto.
    """

    device = "xcu50"
    package = "fsvh2104"
    speed = "2-e"
    default_clk = "sysclk2"
    fpga = ULTRASCALE_PLUS.part(capacity={"LUT": 872_000, "FF": 1_743_000, "DSP": 5_952, "BRAM36": 1_344,
                                          "URAM": 640}, usable_fraction=0.8, vitis=True, dies=U50_DIES)

    #: The Vitis platform its kernel links against (``v++ --platform``), and where its buffers go.
    vitis_platform = "xilinx_u50_gen3x16_xdma_5_202210_1"
    vitis_memory = "HBM"

    resources = [
        Resource("sysclk2", 0, DiffPairs("G17", "G16", dir="i"), Clock(100e6), Attrs(IOSTANDARD="LVDS")),
        Resource("hbm_cattrip", 0, Pins("J18", dir="o"), Attrs(IOSTANDARD="LVCMOS18", PULLTYPE="PULLDOWN")),
    ]
    connectors = []
