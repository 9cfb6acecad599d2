"""Analytic resource estimates that need no synthesis.

DSP48E2 slices multiply a 27-bit by an 18-bit signed operand. A wider signed product is split
into partial products, so an ``a × b``-bit product takes ``ceil(a / 27) * ceil(b / 18)`` slices
in the better of the two operand orders (the rule yosys' ``mul2dsp`` and Vivado follow, up to the
odd slice that synthesis may fold into LUTs). Each core is counted by the products its datapath
holds:

* ``MatVec``: ``parallel`` products of input × weight width per channel;
* ``Mul``: one product of its operand widths; ``Scale`` and ``MulConst``: one product with their
  constant;
* nonlinear cores: the range-reduction product with their constant, and one product per
  polynomial order of their table interpolation (argument × output width);
* everything else: none.
"""

import math

from cores.elementwise import Mul, MulConst, Scale
from cores.matmul import MatVec

__all__ = ["dsp_slices", "core_dsps", "design_dsps"]


def dsp_slices(a_bits, b_bits):
    """DSP48E2 slices for one signed ``a_bits × b_bits`` product."""
    return min(math.ceil(a_bits / 27) * math.ceil(b_bits / 18), math.ceil(b_bits / 27) * math.ceil(a_bits / 18))


def core_dsps(core):
    """Estimated DSP48E2 slices of one core."""
    if isinstance(core, MatVec):
        return core.parallel * len(core.channels) * dsp_slices(core.in_format.width, core.weight_format.width)
    if isinstance(core, Mul):
        a, b = core._in_formats["a"], core._in_formats["b"]
        return core.lanes * dsp_slices(a.width, b.width)
    if isinstance(core, (Scale, MulConst)):
        return core.lanes * dsp_slices(core._in_formats["a"].width, core._const_format.width)
    constant = getattr(core, "constant", None)
    if constant is None:
        return 0
    lanes = getattr(core, "lanes", 1)
    count = dsp_slices(core.in_format.width, abs(int(constant)).bit_length() + 1)
    table = getattr(core, "table", None)
    if table is not None:
        count += table.order * dsp_slices(core.arg_bits, core.out_format.width + 2)
    return lanes * count


def design_dsps(netlist):
    """Estimated DSP48E2 slices of every core of a netlist, counting a shared core once."""
    seen, total = set(), 0
    for instance in netlist.instances:
        if id(instance.core) not in seen:
            seen.add(id(instance.core))
            total += core_dsps(instance.core)
    return total
