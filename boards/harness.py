"""A self-test harness that gives a compiled design's streams something to do on a real board.

A board build plan needs a top level whose every port is a pin. A dataflow design has a wide
input stream and one output stream per result, far more bits than any board has spare pins, so
the harness keeps them on chip: a linear-feedback shift register offers a new pseudo-random input
word whenever the design takes one, every output stream is always ready, and every output word
that moves is folded into a 32-bit XOR signature. The parity of that signature and the design's
sticky ``overflow`` flag end in one register, ``alive``. Synthesis therefore cannot prune any of
the design (every output bit reaches ``alive``) and the timing report covers the real datapath
from the input FIFO to the output FIFOs. ``alive`` drives the board's first LED when it has one;
otherwise it carries ``DONT_TOUCH``/``keep`` so that the tools keep it without a pin, and an ILA or
VIO can probe it.

The design itself stays a black box (a Verilog ``Instance`` of module ``top``): its ``top.v``
is added to the plan as a source file, so the (slow) conversion of the design to Verilog is done
once, not again for the plan.
"""

import math
from fractions import Fraction

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.hdl import Value
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import Flow

__all__ = ["SelfTestHarness", "mmcm_settings", "pll_settings", "design_clock_domain", "design_ports"]

# x**64 + x**63 + x**61 + x**60 + 1: a maximal-length Galois LFSR.
_LFSR_TAPS = 0xD800000000000000
_LFSR_BITS = 64
_SIGNATURE_BITS = 32


def design_ports(component):
    """``[(verilog_name, flow, width)]`` of ``component``'s ports, as Amaranth names them in Verilog."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(part) for part in path)
        ports.append((name, member.flow, len(Value.cast(value))))
    return ports


def mmcm_settings(input_mhz, target_mhz, limits):
    """Divider ``D``, multiplier ``M`` and output divider ``O`` of an MMCM making ``target_mhz``.

    ``limits`` is the device's :class:`devices.Mmcm`. Returns a dict with ``divclk_divide``,
    ``clkfbout_mult``, ``clkout0_divide``, ``vco_mhz`` and the achieved ``output_mhz`` (the
    closest reachable frequency; ties go to the higher VCO, which has less jitter).
    """
    lowest, highest = limits.output_mhz
    if not lowest <= target_mhz <= highest:
        raise ValueError(f"clock {target_mhz:g} MHz is outside what the device's MMCM and BUFG can make "
                         f"({lowest:g} to {highest:g} MHz)")
    best = None
    target = Fraction(target_mhz).limit_denominator(10_000)
    for divide in range(1, 11):
        pfd = Fraction(input_mhz) / divide
        if not limits.pfd_mhz[0] <= pfd <= limits.pfd_mhz[1]:
            continue
        for mult_eighths in range(16, 128 * 8 + 1):
            vco = pfd * Fraction(mult_eighths, 8)
            if not limits.vco_mhz[0] <= vco <= limits.vco_mhz[1]:
                continue
            out_eighths = min(max(round(vco / target * 8), 16), 128 * 8)
            output = vco / Fraction(out_eighths, 8)
            key = (abs(output - target), -vco, divide)
            if best is None or key < best[0]:
                best = (key, divide, mult_eighths, out_eighths, vco, output)
    _, divide, mult_eighths, out_eighths, vco, output = best
    return {"divclk_divide": divide, "clkfbout_mult": mult_eighths / 8, "clkout0_divide": out_eighths / 8,
            "vco_mhz": float(vco), "output_mhz": float(output)}


def pll_settings(input_mhz, target_mhz, limits):
    """Dividers of an ECP5 EHXPLLL making ``target_mhz`` from ``input_mhz``, fed back from CLKOP.

    ``limits`` is the device's :class:`devices.Ehxplll`. Every divider in range is tried, as
    prjtrellis's ``ecppll`` does: the closest reachable frequency wins, then the VCO nearest the
    middle of its range (600 MHz, where ``ecppll`` puts it), then the higher
    VCO. CLKOP_CPHASE is half the output divider, rounded down, as ``ecppll`` sets it.

    Returns a dict with ``clki_div``, ``clkfb_div``, ``clkop_div``, ``clkop_cphase``, ``pfd_mhz``,
    ``vco_mhz`` and the achieved ``output_mhz``.
    """
    for name, value, (lowest, highest) in (("clock", target_mhz, limits.output_mhz),
                                           ("board clock", input_mhz, limits.input_mhz)):
        if not lowest <= value <= highest:
            raise ValueError(f"{name} {value:g} MHz is outside what the ECP5 PLL takes ({lowest:g} to {highest:g} MHz)")
    target = Fraction(target_mhz).limit_denominator(10_000)
    vco_lowest, vco_highest = (Fraction(limit) for limit in limits.vco_mhz)
    vco_middle = (vco_lowest + vco_highest) / 2
    best = None
    for clki_div in range(limits.clki_div[0], limits.clki_div[1] + 1):
        pfd = Fraction(input_mhz) / clki_div
        if not limits.pfd_mhz[0] <= pfd <= limits.pfd_mhz[1]:
            continue
        for clkfb_div in range(limits.clkfb_div[0], limits.clkfb_div[1] + 1):
            output = pfd * clkfb_div
            if not limits.output_mhz[0] <= output <= limits.output_mhz[1]:
                continue
            fastest = min(limits.clkop_div[1], math.floor(vco_highest / output))
            for clkop_div in range(max(limits.clkop_div[0], math.ceil(vco_lowest / output)), fastest + 1):
                vco = output * clkop_div
                key = (abs(output - target), abs(vco - vco_middle), -vco)
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, pfd, vco, output)
    _, clki_div, clkfb_div, clkop_div, pfd, vco, output = best
    return {"clki_div": clki_div, "clkfb_div": clkfb_div, "clkop_div": clkop_div, "clkop_cphase": clkop_div // 2,
            "pfd_mhz": float(pfd), "vco_mhz": float(vco), "output_mhz": float(output)}


def design_clock_domain(m, platform, *, mmcm=None, pll=None):
    """Add the ``sync`` domain, with a synchronized reset, to ``m``: from an MMCM with the
    :func:`mmcm_settings` ``mmcm``, an ECP5 PLL with the :func:`pll_settings` ``pll``, or else the
    board's default clock."""
    if mmcm is not None:
        _mmcm_domain(m, platform, mmcm)
    elif pll is not None:
        _pll_domain(m, platform, pll)
    else:
        _board_clock_domain(m, platform)


def _board_clock_domain(m, platform):
    # Not the platform's own default domain: some (ECP5) are reset-less, but the design has a reset.
    m.domains.sync = ClockDomain("sync")
    m.d.comb += ClockSignal("sync").eq(platform.request(platform.default_clk, 0).i)
    m.submodules.reset_sync = ResetSynchronizer(_board_reset(platform), domain="sync")


def _board_reset(platform):
    return platform.request(platform.default_rst, 0).i if platform.default_rst is not None else Const(0)


def _mmcm_domain(m, platform, settings):
    board_clock = platform.request(platform.default_clk, 0).i
    board_reset = platform.request("rst", 0).i if _has_resource(platform, "rst") else Const(0)
    feedback, clkout, locked = Signal(), Signal(), Signal()
    m.submodules.mmcm = Instance(
        "MMCME4_BASE",
        p_CLKIN1_PERIOD=round(1e9 / platform.default_clk_frequency, 3),
        p_DIVCLK_DIVIDE=settings["divclk_divide"],
        p_CLKFBOUT_MULT_F=settings["clkfbout_mult"],
        p_CLKOUT0_DIVIDE_F=settings["clkout0_divide"],
        p_BANDWIDTH="OPTIMIZED",
        i_CLKIN1=board_clock, i_CLKFBIN=feedback, o_CLKFBOUT=feedback,
        i_RST=board_reset, i_PWRDWN=0,
        o_CLKOUT0=clkout, o_LOCKED=locked)
    m.domains.sync = ClockDomain("sync")
    m.submodules.bufg = Instance("BUFG", i_I=clkout, o_O=ClockSignal("sync"))
    m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")


def _pll_domain(m, platform, settings):
    board_clock = platform.request(platform.default_clk, 0).i
    m.domains.sync = ClockDomain("sync")
    # Kept, so that the clock net has this name in nextpnr for the constraint below.
    design_clock, locked = Signal(name="design_clock", attrs={"keep": 1}), Signal(name="pll_locked")
    # The attributes and the unused phase and enable inputs are those ecppll writes; Diamond reads
    # the FREQUENCY_PIN attributes, nextpnr the clock constraint below.
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{platform.default_clk_frequency / 1e6:g}",
        a_FREQUENCY_PIN_CLKOP=f"{settings['output_mhz']:.3f}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
        p_CLKI_DIV=settings["clki_div"], p_CLKFB_DIV=settings["clkfb_div"], p_CLKOP_DIV=settings["clkop_div"],
        p_CLKOP_CPHASE=settings["clkop_cphase"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        i_CLKI=board_clock, i_CLKFB=design_clock, o_CLKOP=design_clock, o_LOCK=locked,
        i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
        i_PLLWAKESYNC=0, i_ENCLKOP=0)
    m.d.comb += ClockSignal("sync").eq(design_clock)
    platform.add_clock_constraint(design_clock, settings["output_mhz"] * 1e6)
    m.submodules.reset_sync = ResetSynchronizer(~locked | _board_reset(platform), domain="sync")


class SelfTestHarness(Elaboratable):
    """Board top level: clocking, the design as a black box, an LFSR source and a signature sink.

    Parameters
    ----------
    ports : list of (str, Flow, int)
        The design's ports (:func:`design_ports`); the design must have ``clk`` and ``rst`` inputs
        (Amaranth adds them), an input stream ``x``, output streams ``y0, y1, ...`` and ``overflow``.
    module : str
        The design's Verilog module name.
    mmcm : dict, optional
        :func:`mmcm_settings` for a board whose device has an MMCM (UltraScale+, the only family
        with :attr:`devices.Device.mmcm`): the board clock feeds an MMCME4 that makes the design
        clock.
    pll : dict, optional
        :func:`pll_settings` for an ECP5 board (:attr:`devices.Device.pll`): the board clock feeds
        an EHXPLLL that makes the design clock, constrained at its frequency for nextpnr. Without
        either the design runs from the board's default clock.
    """

    def __init__(self, ports, *, module="top", mmcm=None, pll=None):
        self.ports = ports
        self.module = module
        self.mmcm = mmcm
        self.pll = pll
        self.alive = Signal(attrs={"DONT_TOUCH": "TRUE", "keep": "true"})

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            design_clock_domain(m, platform, mmcm=self.mmcm, pll=self.pll)
        if platform is not None and _has_resource(platform, "hbm_cattrip"):
            # The card's satellite controller cuts power when HBM_CATTRIP goes high.
            m.d.comb += platform.request("hbm_cattrip", 0).o.eq(0)

        signals = {name: Signal(width, name=f"design_{name}") for name, _, width in self.ports}
        connections = {"i_clk": ClockSignal("sync"), "i_rst": ResetSignal("sync")}
        for name, flow, _ in self.ports:
            if name not in ("clk", "rst"):
                connections[("i_" if flow == Flow.In else "o_") + name] = signals[name]
        m.submodules.dataflow = Instance(self.module, **connections)

        lfsr = Signal(_LFSR_BITS, init=1)
        m.d.comb += [signals["x__valid"].eq(1), signals["x__payload"].eq(lfsr)]
        with m.If(signals["x__ready"]):
            m.d.sync += lfsr.eq(Cat(lfsr[1:], 0) ^ (Const(_LFSR_TAPS, _LFSR_BITS) & -lfsr[0].as_signed()))

        signature = Signal(_SIGNATURE_BITS)
        folded = Const(0, _SIGNATURE_BITS)
        outputs = sorted({name.split("__")[0] for name, _, _ in self.ports if name.startswith("y")})
        for output in outputs:
            m.d.comb += signals[f"{output}__ready"].eq(1)
            payload = signals[f"{output}__payload"]
            chunks = [payload[k:k + _SIGNATURE_BITS] for k in range(0, len(payload), _SIGNATURE_BITS)]
            word = Const(0, _SIGNATURE_BITS)
            for chunk in chunks:
                word = word ^ chunk
            folded = folded ^ (word & -signals[f"{output}__valid"].as_signed())
        # Rotating before folding keeps the order of words in the signature.
        m.d.sync += signature.eq(Cat(signature[-1], signature[:-1]) ^ folded)
        m.d.sync += self.alive.eq(signature.xor() ^ signals["overflow"])
        if platform is not None and _has_resource(platform, "led"):
            m.d.comb += platform.request("led", 0).o.eq(self.alive)
        return m


def _has_resource(platform, name):
    return any(resource_name == name for resource_name, _ in platform.resources)
