"""Read-only block memories instantiated with their output register, and their simulation models.

yosys ``synth_ecp5`` maps every memory to DP16KD or PDPW16KD blocks through
``share/lattice/brams_map_16kd.v``, which always sets ``REGMODE_A``/``REGMODE_B = "NOREG"``: a
fabric register after the read is never absorbed into the block's own output register. The block's
clock-to-output without that register (most of the block's delay) and the route to the fabric
register then take most of a 150 MHz period.

A :class:`RegisteredRom` therefore instantiates the device's block RAM itself, as a ROM with its
output register enabled, where a platform builds the design (a board, or
:func:`cores.shared.convert`); Amaranth's simulator (no platform) elaborates
:meth:`RegisteredRom.model` instead: a :class:`~amaranth.lib.memory.Memory` read port and a
register, the same two stages. The Verilog model that Verilator and the formal proofs run in place
of the primitive (``sim/primitives/DP16KD.v``) decodes the ``INITVAL`` parameters as the block
does, independently of :meth:`RomPrimitive.init_parameters`, and tests check all three against the
memory's contents.

The ECP5's DP16KD is used in its 1024 x 18 mode, as many blocks side by side as the row needs:
its two read ports serve two lanes from the same blocks (a table is shared by a core's lanes),
which the PDPW16KD (512 x 36, one read port) cannot, and one ``INITVAL`` packing serves every
table.
"""

from dataclasses import dataclass

from amaranth.hdl import C, Cat, ClockSignal, Const, Elaboratable, Instance, Module, Shape, ShapeCastable, Signal, Value
from amaranth.lib.memory import Memory

__all__ = ["RomPrimitive", "RegisteredRom", "DP16KD_REGISTERED"]


@dataclass(frozen=True)
class RomPrimitive:
    """A block RAM primitive that a :class:`RegisteredRom` instantiates as a registered ROM.

    Parameters
    ----------
    name : str
        The primitive: ``"DP16KD"`` (Lattice ECP5 sysMEM), in its ``width``-bit mode.
    width : int
        Bits of one word of the mode used.
    depth : int
        Words of one block in that mode: a deeper memory is left to synthesis.
    ports : int
        Read ports of one block.
    """

    name: str
    width: int
    depth: int
    ports: int

    def fits(self, depth):
        """Whether a memory of ``depth`` words fits one column of blocks."""
        return depth <= self.depth

    def init_parameters(self, words):
        """``{"INITVAL_00": Const, ...}``: the ``INITVAL`` parameters of one block holding ``words``
        (each at most :attr:`width` bits), from address 0.

        Each 320-bit ``INITVAL_xx`` holds 16 words of 20 bits, word ``16 * xx + i`` in bits
        ``20 * i`` up, of which the low 18 are the data bits ``DO0``..``DO17`` (as yosys's
        ``brams_map_16kd.v`` packs its ``INIT`` for the 18-bit mode).
        """
        words = list(words)
        words += [0] * (self.depth - len(words))
        return {f"INITVAL_{row:02X}": Const(sum(word << (20 * i) for i, word in enumerate(words[16 * row:16 * row + 16])), 320)
                for row in range(self.depth // 16)}


class RegisteredRom(Elaboratable):
    """A read-only memory whose reads each take two stages: the block RAM read and its output register.

    Parameters
    ----------
    primitive : RomPrimitive
        The block RAM it is built of, under a platform.
    shape : shape-like
        Shape of a row (a layout reads back as a view of it).
    init : sequence
        The rows, ``depth = len(init)`` of them (at most :attr:`RomPrimitive.depth`).

    Every :meth:`read` adds one read port; under a platform, each group of
    :attr:`RomPrimitive.ports` reads shares one column of blocks, ``ceil(width / primitive.width)``
    of them side by side.
    """

    def __init__(self, primitive, shape, init):
        if not primitive.fits(len(init)):
            raise ValueError(f"a ROM of {len(init)} rows does not fit one column of {primitive.name} "
                             f"({primitive.depth} words)")
        self.primitive = primitive
        self.shape = shape
        self.width = Shape.cast(shape).width
        self.init = init
        const = shape.const if isinstance(shape, ShapeCastable) else lambda row: Const(row, shape)
        self.words = [Const.cast(const(row)).value & ((1 << self.width) - 1) for row in init]
        self._reads = []

    def read(self, addr, enable):
        """A new read port: the row at ``addr``, sampled in a cycle with ``enable`` high, is the
        returned value after two such cycles (it holds while ``enable`` is low)."""
        data = Signal(self.shape, reset_less=True)
        self._reads.append((addr, enable, data))
        return data

    def elaborate(self, platform):
        if platform is None:
            return self.model()
        return getattr(self, f"_{self.primitive.name.lower()}")()

    def model(self):
        """The primitive's two stages in Amaranth: what Amaranth's simulator runs."""
        m = Module()
        m.submodules.memory = memory = Memory(shape=self.shape, depth=len(self.init), init=self.init)
        for addr, enable, data in self._reads:
            port = memory.read_port(domain="sync")
            m.d.comb += [port.addr.eq(addr), port.en.eq(enable)]
            with m.If(enable):
                m.d.sync += data.eq(port.data)
        return m

    def _dp16kd(self):
        m = Module()
        width = self.primitive.width
        inits = {column: self.primitive.init_parameters((word >> column) & ((1 << width) - 1) for word in self.words)
                 for column in range(0, self.width, width)}
        for group in range(0, len(self._reads), self.primitive.ports):
            reads = self._reads[group:group + self.primitive.ports]
            for column, init in inits.items():
                ports = {}
                for letter, read in zip("AB", reads + [None] * (2 - len(reads))):
                    ports.update(_dp16kd_port(letter, read, column, min(width, self.width - column)))
                m.submodules[f"block{group // self.primitive.ports}_{column // width}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=width, p_DATA_WIDTH_B=width, p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                    **{f"p_{name}": value for name, value in init.items()}, **ports)
        return m


def _dp16kd_port(letter, read, column, bits):
    """The connections of DP16KD port ``letter`` for ``read`` (``(addr, enable, data)``, or None for
    an unused port): ``bits`` bits of its 18-bit word are the row's bits from ``column``."""
    zero = C(0)
    ports = {f"i_DI{letter}{k}": zero for k in range(18)}
    ports.update({f"i_CS{letter}{k}": zero for k in range(3)})
    ports.update({f"i_CLK{letter}": ClockSignal("sync"), f"i_WE{letter}": zero, f"i_RST{letter}": zero})
    if read is None:
        ports.update({f"i_AD{letter}{k}": zero for k in range(14)})
        ports.update({f"i_CE{letter}": zero, f"i_OCE{letter}": zero})
        return ports
    addr, enable, data = read
    # In the 18-bit mode the word address is AD13..AD4; AD1 and AD0 are the write byte enables.
    address = Cat(C(0, 4), addr)
    ports.update({f"i_AD{letter}{k}": address[k] if k < len(address) else zero for k in range(14)})
    # CE loads the read into the block's output latch and OCE the latch into its output register,
    # as the fabric read port and register they stand for load while the pipeline advances.
    ports.update({f"i_CE{letter}": enable, f"i_OCE{letter}": enable})
    ports.update({f"o_DO{letter}{k}": Value.cast(data)[column + k] for k in range(bits)})
    return ports


#: The ECP5's DP16KD in its 1024 x 18 mode with its output register (``REGMODE = "OUTREG"``;
#: nextpnr-ecp5 then takes the registered clock-to-output).
DP16KD_REGISTERED = RomPrimitive("DP16KD", width=18, depth=1024, ports=2)
