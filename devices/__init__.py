"""What the compiler, the resource model and the board flows need to know about an FPGA device.

A :class:`Device` holds every device fact inrarch uses: the operand widths of one DSP multiplier
(which decide how products are split and how wide matmul weights are), how a memory maps to
distributed RAM, block RAM or UltraRAM, the frequency limits of its clock generator (an AMD MMCM or a
Lattice ECP5 EHXPLLL), the yosys ``synth_xilinx``
family, whether the board takes a Vitis RTL kernel, and the part's capacity with the share of it a
design may plan to use.

The families here hold what every part of a family shares; a board's own file adds its part's
capacity with :meth:`Device.part`. :func:`inrarch.compile` defaults to :data:`ULTRASCALE_PLUS`,
the family of the Alveo U280 and U50.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from amaranth.hdl import signed

from cores.dsp import DSP48E2_REGISTERED, MULT18X18D_REGISTERED, DspPrimitive
from cores.multiply import DSP48E2, Multiplier
from cores.pipelining import UNPIPELINED, Pipelining
from cores.rom import DP16KD_REGISTERED, RomPrimitive

__all__ = ["Device", "Die", "Mmcm", "Ehxplll", "DSP48E1", "DSP48E2", "MULT18X18D", "ULTRASCALE_PLUS", "ULTRASCALE", "SERIES7",
           "ECP5"]

DSP48E1 = (25, 18)
"""Operand widths of the signed multiplier of a 7-series DSP48E1 slice."""

MULT18X18D = (18, 18)
"""Operand widths of the signed multiplier of an ECP5 sysDSP slice."""

# Block RAM aspect ratios as (width, depth): RAMB36E1/E2 (512 x 72 in simple dual port) and
# RAMB18E1/E2, half a RAMB36 each. 7-series, UltraScale and UltraScale+ share them.
_BRAM36 = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
_BRAM18 = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_URAM = (72, 4096)

# Vivado keeps a memory of at most 64 entries in distributed RAM (RAM64M8 and its narrower
# siblings hold 64 entries per LUT) and moves deeper ones to block RAM (UG906, RQS_UTIL-203).
# It does so for a FIFO too: amaranth's SyncFIFOBuffered is an addressed memory, not a shift
# register, so Vivado does not infer SRLs from it.
_LUTRAM_MAX_DEPTH = 64
# A memory that would take more than this many BRAM36 goes to UltraRAM when it has no initial
# contents (the bitstream cannot initialize UltraRAM): below that a 4K x 72 URAM288 mostly wastes
# its fixed size. Vivado infers UltraRAM only where asked (ram_style "ultra", UG949), which the
# generated Verilog does not do yet, so the URAM figures are what such memories take with it.
_URAM_MIN_BRAM36 = 8


@dataclass(frozen=True)
class Mmcm:
    """Frequency limits of a mixed-mode clock manager and the global clock buffer it drives.

    The multiplier and the output divider range over 2 to 128 in steps of 1/8, the input
    divider over 1 to 10 (MMCME4, UG572).
    """

    vco_mhz: tuple
    pfd_mhz: tuple
    output_mhz: tuple


@dataclass(frozen=True)
class Ehxplll:
    """Frequency and divider limits of the Lattice ECP5 PLL, EHXPLLL, with its feedback from CLKOP.

    With ``FEEDBK_PATH = "CLKOP"`` the phase detector compares ``input / CLKI_DIV`` with
    ``CLKOP / CLKFB_DIV``, so ``CLKOP = input / CLKI_DIV * CLKFB_DIV``, and the VCO runs at
    ``CLKOP * CLKOP_DIV``. Each ``*_div`` is an inclusive range of integers.
    """

    input_mhz: tuple
    pfd_mhz: tuple
    vco_mhz: tuple
    output_mhz: tuple
    clki_div: tuple
    clkfb_div: tuple
    clkop_div: tuple


@dataclass(frozen=True)
class Die:
    """One die (SLR) of a multi-die part, as a kernel sees it.

    Parameters
    ----------
    name : str
        ``"SLR0"``, ``"SLR1"``, ...: dies are stacked in this order, and a signal from die ``i``
        to die ``j`` crosses ``|i - j|`` boundaries.
    capacity : dict
        ``{"LUT", "FF", "DSP", "BRAM36", "URAM"}`` the platform's dynamic region offers in this die.
    memory : bool
        Whether the card's memory is attached to this die: the kernel's memory ports are placed here.
    pblock : str
        The platform's pblock of this die's dynamic region, which a floorplan's constraints add
        cells to.
    """

    name: str
    capacity: dict = field(compare=False)
    memory: bool = False
    pblock: str = ""


@dataclass(frozen=True)
class Device:
    """The facts of one FPGA device (or of a family, before :meth:`part` adds the capacity).

    Parameters
    ----------
    family : str
        Name for messages, e.g. ``"UltraScale+"``.
    multiplier : (int, int)
        Widths of the signed operands of one DSP multiplier, wide port first.
    synth_family : str, optional
        The ``-family`` of yosys ``synth_xilinx``; None where it does not apply.
    mmcm : Mmcm, optional
        Limits of the MMCM the board plan makes the design clock with.
    pll : Ehxplll, optional
        Limits of the ECP5 PLL the board plan makes the design clock with. Without an MMCM or a
        PLL the design runs from the board's clock.
    uram : bool
        Whether the device has UltraRAM.
    vitis : bool
        Whether the board takes a Vitis RTL kernel (an Alveo card's shell).
    capacity : dict, optional
        ``{"LUT", "FF", "DSP", "BRAM36", "URAM"}`` of the part's programmable logic.
    usable_fraction : float
        Share of ``capacity`` a design may plan to use (a Vitis shell takes part of the device).
    unpipelined_max_mhz : float
        The highest clock at which the cores without their optional pipeline registers
        (:class:`cores.pipelining.Pipelining`) meet timing on this device: :meth:`pipelining`
        leaves the registers out up to it. 0 (the default) builds them at every clock.
    dsp : DspPrimitive, optional
        The DSP primitive every partial product instantiates, with its registers
        (:class:`cores.dsp.DspPrimitive`, whose ``shape`` is :attr:`multiplier`); None leaves
        the products to synthesis.
    rom : RomPrimitive, optional
        The block RAM primitive a registered table read instantiates with its output register
        (:class:`cores.rom.RomPrimitive`); None leaves the memories to synthesis.
    dies : tuple of Die
        The dies of a multi-die part, bottom first, as a board's shell leaves them to a kernel: the
        compiler then floorplans the design onto them (:mod:`inrarch.floorplan`). Empty for a
        part of one die.
    """

    family: str
    multiplier: tuple
    synth_family: str = None
    mmcm: Mmcm = None
    pll: Ehxplll = None
    uram: bool = False
    vitis: bool = False
    capacity: dict = dataclasses.field(default=None, compare=False)
    usable_fraction: float = 1.0
    unpipelined_max_mhz: float = 0.0
    dsp: DspPrimitive = None
    rom: RomPrimitive = None
    dies: tuple = ()

    @classmethod
    def from_dict(cls, data):
        """The device that :func:`dataclasses.asdict` gave ``data`` of (read back from JSON: lists
        in place of tuples)."""
        values = {name: tuple(value) if isinstance(value, list) else value for name, value in data.items()}
        for name, kind in (("mmcm", Mmcm), ("pll", Ehxplll)):
            if values[name] is not None:
                values[name] = kind(**{key: tuple(item) for key, item in values[name].items()})
        if values["dsp"] is not None:
            values["dsp"] = DspPrimitive(**{**values["dsp"], "shape": tuple(values["dsp"]["shape"])})
        if values.get("rom") is not None:
            values["rom"] = RomPrimitive(**values["rom"])
        values["dies"] = tuple(Die(**die) for die in values["dies"])
        return cls(**values)

    def part(self, *, capacity, usable_fraction=1.0, vitis=False, dies=()):
        """This family's facts with one part's ``capacity`` (and a board's shell, and its ``dies``);
        a part without UltraRAM (``capacity["URAM"] == 0``) maps no memory to it."""
        return dataclasses.replace(self, capacity=dict(capacity), usable_fraction=usable_fraction, vitis=vitis,
                                   uram=self.uram and capacity.get("URAM", 0) > 0, dies=tuple(dies))

    @property
    def usable(self):
        """``capacity`` times ``usable_fraction``, rounded down; None without a capacity."""
        if self.capacity is None:
            return None
        return {name: int(count * self.usable_fraction) for name, count in self.capacity.items()}

    @property
    def weight_widths(self):
        """Matmul weight widths to try, narrowest first: the multiplier's ports, so that a weight
        always fits one port and an operand of the other port's width still takes one DSP."""
        return tuple(sorted(set(self.multiplier)))

    def pipelining(self, clock_mhz):
        """The optional pipeline registers the cores need at ``clock_mhz`` on this device: none up
        to :attr:`unpipelined_max_mhz` (fewer cycles of latency), all of them above; in either
        case the products are built in the device's :attr:`dsp` primitive, and registered table
        reads in its :attr:`rom` primitive."""
        chosen = UNPIPELINED if clock_mhz <= self.unpipelined_max_mhz else Pipelining()
        return dataclasses.replace(chosen, dsp=self.dsp, rom=self.rom)

    def dsps(self, a_bits, b_bits):
        """DSP slices of one signed ``a_bits × b_bits`` product, split as
        :class:`cores.multiply.Multiplier` splits it (none when an operand has ≤ 2 bits)."""
        return Multiplier(signed(a_bits), signed(b_bits), dsp_shape=self.multiplier).dsps

    def memory_blocks(self, width, depth, *, initialized=False, async_read=False):
        """``{"BRAM36": n, "URAM": n, "LUTRAM_bits": n}`` for one copy of a ``depth × width`` memory.

        Asynchronously read or at most 64 deep: distributed RAM. Otherwise block RAM, the
        cheapest aspect ratio as ``ceil(width / w) * ceil(depth / d)`` blocks (a RAMB18 counts as
        half a BRAM36), or UltraRAM (4K × 72) when the device has it, the memory has no initial
        contents and would need more than 8 BRAM36.
        """
        if async_read or depth <= _LUTRAM_MAX_DEPTH:
            return {"BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": width * depth}
        bram = min([_blocks(width, depth, shape) for shape in _BRAM36]
                   + [0.5 * _blocks(width, depth, shape) for shape in _BRAM18])
        if self.uram and not initialized and bram > _URAM_MIN_BRAM36:
            return {"BRAM36": 0.0, "URAM": _blocks(width, depth, _URAM), "LUTRAM_bits": 0}
        return {"BRAM36": float(bram), "URAM": 0, "LUTRAM_bits": 0}

    def memory_kind(self, width, depth, *, initialized=False):
        """``"LUTRAM"``, ``"BRAM"`` or ``"URAM"``: where :meth:`memory_blocks` puts the memory."""
        blocks = self.memory_blocks(width, depth, initialized=initialized)
        return "URAM" if blocks["URAM"] else "BRAM" if blocks["BRAM36"] else "LUTRAM"


def _blocks(width, depth, shape):
    return math.ceil(width / shape[0]) * math.ceil(depth / shape[1])


#: UltraScale+ (Alveo, Zynq UltraScale+ MPSoC and RFSoC): DSP48E2, UltraRAM on most parts, MMCME4
#: (DS923: VCO 800-1600 MHz, phase detector 10-500 MHz; BUFG up to 775 MHz). Every product is a
#: DSP48E2 with its A, B, M and P registers: yosys packs none of them into a DSP48E2 it infers
#: (cores.dsp), so that is the one way a design's registers are in its DSPs for every tool.
ULTRASCALE_PLUS = Device("UltraScale+", DSP48E2, synth_family="xcup",
                         mmcm=Mmcm(vco_mhz=(800.0, 1600.0), pfd_mhz=(10.0, 500.0), output_mhz=(10.0, 775.0)),
                         uram=True, dsp=DSP48E2_REGISTERED)
#: UltraScale (Kintex and Virtex UltraScale): DSP48E2, no UltraRAM.
ULTRASCALE = Device("UltraScale", DSP48E2, synth_family="xcu", dsp=DSP48E2_REGISTERED)
#: 7 series (Artix, Kintex, Virtex 7, Zynq-7000): DSP48E1.
SERIES7 = Device("7 series", DSP48E1, synth_family="xc7")
#: Lattice ECP5: 18 × 18 sysDSP multipliers. Its 18 Kbit block RAMs (DP16KD) have the RAMB18
#: aspect ratios, so the resource model counts one as half a BRAM36. The EHXPLLL limits are those
#: of prjtrellis's ``ecppll`` (libtrellis/tools/ecppll.cpp): input 8-400 MHz, phase detector
#: 3.125-400 MHz, VCO 400-800 MHz, output 10-400 MHz, and CLKFB_DIV at most 80 (the FPGA Libraries
#: Reference Guide, as ecppll cites it). The ECP5 data sheet (FPGA-DS-02012, "sysCLOCK PLL Timing")
#: gives the same input and VCO ranges and allows outputs down to 3.125 MHz; TN1263 (now
#: FPGA-TN-02200, the sysCLOCK PLL/DLL Design and Usage Guide) describes the dividers.
#: The optional pipeline registers are left out only up to 80 MHz, below the Fmax of the slowest core
#: without them on the LFE5U-85F-6 (bench.fmax's "unpipelined" figures, docs/boards.md "Place and route").
#: Every product is a MULT18X18D with its output register, and its input registers where the
#: product has them: yosys synth_ecp5 sets none of them on a MULT18X18D it infers (cores.dsp).
#: A registered table read is a DP16KD with its output register, which synth_ecp5 never sets
#: on the block RAMs it infers (cores.rom).
ECP5 = Device("ECP5", MULT18X18D,
              pll=Ehxplll(input_mhz=(8.0, 400.0), pfd_mhz=(3.125, 400.0), vco_mhz=(400.0, 800.0),
                          output_mhz=(10.0, 400.0), clki_div=(1, 128), clkfb_div=(1, 80), clkop_div=(1, 128)),
              unpipelined_max_mhz=80.0, dsp=MULT18X18D_REGISTERED, rom=DP16KD_REGISTERED)
