"""Analytic resource estimates that need no synthesis.

The cores split a product wider than a DSP multiplier themselves
(:class:`cores.multiply.Multiplier`): every operand is cut into unsigned low pieces one bit
narrower than a port and a signed top piece, one slice per pair of pieces (on a DSP48E2, 27 × 18,
a signed ``a × b``-bit product takes ``ceil((a-1)/26) * ceil((b-1)/17)`` slices in the better of
the two operand orders), and none when an operand has at most 2 bits (a shift-and-add). yosys
``synth_xilinx`` maps each partial product to exactly one slice. Each core is counted by the
products its datapath holds:

* ``MatVec``: ``parallel`` products of input × weight width per channel;
* ``Mul`` and ``MulAdd``: one product of their operand widths per lane; ``Scale`` and
  ``MulConst``: one product with their constant per lane;
* nonlinear cores: the products of one lane they list in ``multipliers`` (the range reduction
  with a constant, one per polynomial order of the table, Relu's scale), times ``lanes``;
* everything else: none.

Memories are counted from the cores' own parameters, with no elaboration (a full-size design takes
minutes to elaborate): MatVec weight banks and input buffers, nonlinear tables, Gather buffers and
index ROMs, constant vectors, and every FIFO, each mapped to distributed RAM, block RAM or UltraRAM
by the device's rule (:meth:`devices.Device.memory_blocks`).
"""

import math

from amaranth.lib import data

from cores.elementwise import AddConst, Mul, MulAdd, MulConst, Scale
from cores.matmul import MatVec
from cores.plumbing import Gather
from devices import ULTRASCALE_PLUS

__all__ = ["core_dsps", "design_dsps", "design_resources"]


def core_dsps(core):
    """Estimated DSP slices of one core."""
    if isinstance(core, MatVec):
        return core.parallel * len(core.channels) * core.multiplier.dsps
    if isinstance(core, (Mul, MulAdd, Scale, MulConst)):
        return core.lanes * core.multiplier.dsps
    multipliers = getattr(core, "multipliers", ())  # the nonlinear cores
    return getattr(core, "lanes", 1) * sum(multiplier.dsps for multiplier in multipliers)


def design_dsps(netlist):
    """Estimated DSP slices of every core of a netlist, counting a shared core once."""
    seen, total = set(), 0
    for instance in netlist.instances:
        if id(instance.core) not in seen:
            seen.add(id(instance.core))
            total += core_dsps(instance.core)
    return total


def _core_memories(core):
    """``(width, depth, initialized, copies)`` of each memory a core holds."""
    if isinstance(core, MatVec):
        rows, cols = core.padded_shape
        banks = [(core.weight_format.width, math.ceil(rows * cols / core.parallel), True, core.parallel)]
        buffers = [(core.in_format.width, 2 * max(core.lengths(k)[0], 1), False, 1) for k in range(len(core.channels))]
        return banks + buffers
    table = getattr(core, "table", None)
    if table is not None:
        return [(data.Layout.cast(table.layout).size, table.segments, True, getattr(core, "lanes", 1))]
    if isinstance(core, Gather):
        half = 1 << core._local_bits
        return [(core._out_format.width + 1, 2 * half, True, 1), (core._local_bits, core.tokens_out, True, 1)]
    if isinstance(core, AddConst | MulConst):
        return [(core._const_format.width, core._const_raw.shape[0], True, core.lanes)]
    return []


def design_resources(netlist, device=ULTRASCALE_PLUS):
    """Estimated DSP, BRAM36, URAM and distributed-RAM bits of a netlist on ``device``, before elaboration."""
    totals = {"DSP": 0, "BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": 0}
    cores = {id(instance.core): instance.core for instance in netlist.instances}.values()
    memories = [memory for core in cores for memory in _core_memories(core)]
    memories += [(stream.source.node.attrs["format"].width, stream.depth - 1, False, 1) for stream in netlist.streams]
    for width, depth, initialized, copies in memories:
        for key, amount in device.memory_blocks(width, depth, initialized=initialized).items():
            totals[key] += copies * amount
    totals["DSP"] = design_dsps(netlist)
    return totals
