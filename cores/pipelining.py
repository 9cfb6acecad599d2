"""The optional pipeline registers of the arithmetic cores, chosen from the clock a design runs at."""

from dataclasses import asdict, dataclass

from .dsp import DspPrimitive
from .rom import RomPrimitive

__all__ = ["Pipelining", "UNPIPELINED"]


@dataclass(frozen=True)
class Pipelining:
    """Which optional pipeline registers the arithmetic cores build.

    Every register here splits one register-to-register path of the arithmetic cores (the
    :class:`~cores.multiply.Multiplier` products, the nonlinear cores' tables, the element-wise
    cores' roundings) in two, and costs one cycle of latency wherever it is present; the
    initiation interval stays 1. Without them the cores meet timing only at lower clocks
    (:meth:`devices.Device.pipelining` chooses from the clock). Each core's ``latency`` and timing
    contract count the registers it builds.

    Parameters
    ----------
    memory_output : bool
        A table read is registered before its first use (the output register of a block RAM,
        DP16KD or RAMB18/36): the memory's clock-to-output delay and the multiply it feeds are
        then in different stages. One cycle in each nonlinear core with a table.
    multiplier_inputs : bool
        The operands of every DSP product are registered at the multiplier (the A and B input
        registers of a DSP48E2 or MULT18X18D), so an add or a multiplexer that forms an operand
        (a Horner step's accumulator, a constant read from a small memory) is not in the
        multiply's stage. One cycle per product (a product of an operand of at most 2 bits, a
        shift-and-add in LUTs, has none).
    post_multiply_add : bool
        An add or a rounding after a product or a sum gets its own stage instead of sharing theirs:
        the addend of a multiply-add (a DSP's post-adder), and the rounding of a product, or of a
        sum or a negation of the element-wise cores, to an output format (then saturated in the
        stage after, so that the rounding's carry chain and the saturation's comparisons are not
        in one stage). One cycle per such add; a sum or a negation has it only where it rounds
        half up (to fewer fractional bits than its exact result has).
    dsp : DspPrimitive or None
        The device's DSP primitive that every partial product instantiates, its operand
        registers (``multiplier_inputs``) and its output registers inside it
        (:class:`~cores.dsp.DspPrimitive`; the DSP48E2's M register is one cycle more); None
        (the default) writes products as ``*`` between fabric registers, for synthesis to map.
    rom : RomPrimitive or None
        The device's block RAM primitive that a table read with ``memory_output`` instantiates,
        the register being the block's own output register (:class:`~cores.rom.RegisteredRom`),
        where the table fits one column of blocks; None (the default) writes a memory and a fabric
        register, for synthesis to map (Vivado absorbs the register into the RAMB18/36 itself).
    """

    memory_output: bool = True
    multiplier_inputs: bool = True
    post_multiply_add: bool = True
    dsp: DspPrimitive = None
    rom: RomPrimitive = None

    def as_dict(self):
        """The flags by name, and the DSP and ROM primitives' names (or None), as a report records them."""
        return {**asdict(self), "dsp": None if self.dsp is None else self.dsp.name,
                "rom": None if self.rom is None else self.rom.name}


UNPIPELINED = Pipelining(memory_output=False, multiplier_inputs=False, post_multiply_add=False)
"""None of the optional registers: the cores as they meet timing at lower clocks, and the default
of a bare :class:`~cores.multiply.Multiplier` (whose caller counts its stages)."""
