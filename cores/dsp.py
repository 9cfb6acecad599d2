"""DSP multiplier primitives instantiated with their own registers, and their simulation models.

Synthesis does not always put a product's registers into the DSP slice it maps the product to:

* yosys ``synth_ecp5`` maps a ``*`` to a MULT18X18D through ``techlibs/lattice/dsp_map_18x18.v``
  and sets none of its ``REG_*`` parameters, so the multiplier is combinational and the route to
  and from it is in the clock period;
* yosys ``xilinx_dsp`` packs A, B, M and P registers only into the 7-series DSP48E1: for
  ``-family xcu`` and ``xcup`` it packs the C register and the cascades, never a register of the
  multiplier (``techlibs/xilinx/xilinx_dsp.cc``, checked in YoWASP yosys 0.70), whatever the RTL.

A :class:`DspPrimitive` therefore instantiates the device's primitive with its registers set, one
per partial product of a :class:`~cores.multiply.Multiplier`: its optional operand registers (the
DSP's input registers), and the registers between the multiplier and its output
(:attr:`~DspPrimitive.product_stages`). Each partial product thus has its own operand registers,
inside its own DSP, and the placer can keep them together.

yosys has only a blackbox for these primitives, so the primitive is instantiated only where a
platform builds the design (a board, or :func:`cores.shared.convert`, which writes the design's
Verilog); Amaranth's simulator (no platform) elaborates :meth:`DspPrimitive.model` instead, the
same registers in Amaranth. The Verilog models that Verilator simulates in place of the primitives
(``sim/primitives/``) describe the same registers, and tests check all three against exact
integer products.
"""

from dataclasses import dataclass

from amaranth.hdl import C, Cat, ClockSignal, Elaboratable, Instance, Module, Signal, Value, signed

__all__ = ["DspPrimitive", "MULT18X18D_REGISTERED", "DSP48E2_REGISTERED"]


@dataclass(frozen=True)
class DspPrimitive:
    """A DSP multiplier primitive that a :class:`~cores.multiply.Multiplier` instantiates itself.

    Parameters
    ----------
    name : str
        The primitive: ``"MULT18X18D"`` (Lattice ECP5 sysDSP) or ``"DSP48E2"`` (AMD UltraScale and
        UltraScale+).
    shape : (int, int)
        Widths of its signed operands, wide port first.
    product_stages : int
        Registers from the multiplier's operands (after their optional input registers) to its
        output, each one cycle: 1 for the MULT18X18D's output register, 2 for the DSP48E2's M and
        P registers.

    Every register loads while the clock enable is high and has no reset, as the fabric registers
    it stands for (they hold data, whose valid bits are the core's).
    """

    name: str
    shape: tuple
    product_stages: int

    def build(self, m, a, b, *, enable=None, register_a=False, register_b=False, name="product"):
        """Add one product ``a * b`` to ``m``; return the primitive's output, ``signed(a+b)`` wide.

        ``a`` goes to the wide port and ``b`` to the narrow one; each must fit its port as a signed
        value (an unsigned operand at most one bit narrower). ``register_a`` and ``register_b`` set
        the input registers; the product of operands sampled in a cycle with ``enable`` high is
        the output after ``register_a or register_b`` plus :attr:`product_stages` more such cycles.
        """
        product = _DspProduct(self, Value.cast(a), Value.cast(b), enable, register_a, register_b)
        m.submodules[name] = product
        return product.p


class _DspProduct(Elaboratable):
    """One instance of ``primitive``: the primitive itself under a platform, its model without one."""

    def __init__(self, primitive, a, b, enable, register_a, register_b):
        for operand, width in zip((a, b), primitive.shape):
            signed_width = len(operand) + (not operand.shape().signed)
            if signed_width > width:
                raise ValueError(f"a {operand.shape()} operand does not fit the {width}-bit signed port "
                                 f"of {primitive.name}")
        self.primitive = primitive
        self.a, self.b = a, b
        self.enable = C(1) if enable is None else enable
        self.register_a, self.register_b = register_a, register_b
        self.p = Signal(signed(len(a) + (not a.shape().signed) + len(b) + (not b.shape().signed)),
                        name=f"{primitive.name.lower()}_p", reset_less=True)

    def elaborate(self, platform):
        if platform is None:
            return self.model()
        return getattr(self, f"_{self.primitive.name.lower()}")()

    def model(self):
        """The primitive's registers in Amaranth: what Amaranth's simulator runs."""
        m = Module()
        a, b = self.a, self.b
        if self.register_a:
            a = _register(m, self.enable, a, "a_reg")
        if self.register_b:
            b = _register(m, self.enable, b, "b_reg")
        value = a * b
        for stage in range(self.primitive.product_stages - 1):
            value = _register(m, self.enable, value, f"stage{stage}")
        with m.If(self.enable):
            m.d.sync += self.p.eq(value)
        return m

    def _mult18x18d(self):
        a, b = _extend(self.a, 18), _extend(self.b, 18)
        product = Signal(36)
        registered = {False: "NONE", True: "CLK0"}
        m = Module()
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK=registered[self.register_a], p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK=registered[self.register_b], p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_RESETMODE="SYNC",
            **{f"i_A{k}": a[k] for k in range(18)}, **{f"i_B{k}": b[k] for k in range(18)},
            **{f"i_C{k}": C(0) for k in range(18)},
            i_SIGNEDA=C(1), i_SIGNEDB=C(1), i_SOURCEA=C(0), i_SOURCEB=C(0),
            # One DSP block's multipliers share these nets (nextpnr places them accordingly); the
            # SRIA/SRIB shift inputs stay unconnected.
            i_CLK0=ClockSignal("sync"), i_CE0=self.enable, i_RST0=C(0),
            **{f"o_P{k}": product[k] for k in range(36)})
        m.d.comb += self.p.eq(product[:len(self.p)])
        return m

    def _dsp48e2(self):
        product = Signal(48)
        zero = C(0)
        m = Module()
        m.submodules.dsp = Instance(
            "DSP48E2",
            p_AREG=int(self.register_a), p_ACASCREG=int(self.register_a), p_BREG=int(self.register_b),
            p_BCASCREG=int(self.register_b), p_MREG=1, p_PREG=1, p_CREG=0, p_DREG=0, p_ADREG=0, p_INMODEREG=0,
            p_OPMODEREG=0, p_ALUMODEREG=0, p_CARRYINREG=0, p_CARRYINSELREG=0,
            p_A_INPUT="DIRECT", p_B_INPUT="DIRECT", p_AMULTSEL="A", p_BMULTSEL="B", p_USE_MULT="MULTIPLY",
            p_USE_SIMD="ONE48",
            i_A=_extend(self.a, 30), i_B=_extend(self.b, 18), i_C=C(0, 48), i_D=C(0, 27),
            # P = M: OPMODE's W, Z = 0 and X, Y = M.
            i_OPMODE=C(0b00_000_01_01, 9), i_INMODE=C(0, 5), i_ALUMODE=C(0, 4), i_CARRYINSEL=C(0, 3),
            i_CARRYIN=zero, i_CLK=ClockSignal("sync"),
            i_CEA1=zero, i_CEA2=self.enable if self.register_a else zero,
            i_CEB1=zero, i_CEB2=self.enable if self.register_b else zero,
            i_CEM=self.enable, i_CEP=self.enable, i_CEC=zero, i_CED=zero, i_CEAD=zero, i_CECTRL=zero,
            i_CEINMODE=zero, i_CEALUMODE=zero, i_CECARRYIN=zero,
            i_RSTA=zero, i_RSTB=zero, i_RSTM=zero, i_RSTP=zero, i_RSTC=zero, i_RSTD=zero, i_RSTCTRL=zero,
            i_RSTINMODE=zero, i_RSTALUMODE=zero, i_RSTALLCARRYIN=zero,
            o_P=product)
        m.d.comb += self.p.eq(product[:len(self.p)])
        return m


def _extend(value, width):
    """``value`` sign- or zero-extended to ``width`` bits, as the primitive's signed port reads it."""
    fill = value[-1].replicate(width - len(value)) if value.shape().signed else C(0, width - len(value))
    return Cat(value, fill)


def _register(m, enable, value, name):
    register = Signal(value.shape(), name=name, reset_less=True)
    with m.If(enable):
        m.d.sync += register.eq(value)
    return register


#: The ECP5's MULT18X18D with its output register, and input registers where the product has
#: them (``REG_INPUTA_CLK``/``REG_INPUTB_CLK``/``REG_OUTPUT_CLK = "CLK0"``; nextpnr-ecp5 picks the
#: timing of the registered multiplier from these).
MULT18X18D_REGISTERED = DspPrimitive("MULT18X18D", (18, 18), product_stages=1)

#: The UltraScale(+) DSP48E2 with its M and P registers, and A and B registers where the product
#: has input registers (``AREG``/``BREG``, ``MREG``, ``PREG``).
DSP48E2_REGISTERED = DspPrimitive("DSP48E2", (27, 18), product_stages=2)
