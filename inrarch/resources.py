"""Analytic resource estimates that need no synthesis.

The cores split a product wider than a DSP multiplier themselves
(:class:`cores.multiply.Multiplier`): every operand is cut into unsigned low pieces one bit
narrower than a port and a signed top piece, one slice per pair of pieces (on a DSP48E2, 27 × 18,
a signed ``a × b``-bit product takes ``ceil((a-1)/26) * ceil((b-1)/17)`` slices in the better of
the two operand orders), and none when an operand has at most 2 bits (a shift-and-add). yosys
``synth_xilinx`` maps each partial product to exactly one slice. Each core is counted by the
products its datapath holds, which it lists in ``multipliers`` (:mod:`cores.model`): ``parallel``
per MatVec channel, one per lane of ``Mul``, ``MulAdd``, ``Scale`` and ``MulConst``, and per lane of
a nonlinear core its range reduction, one per polynomial order of its table, or Relu's scale.

Memories are counted from the ``memories`` the cores list from their own parameters, with no
elaboration (a full-size design takes minutes to elaborate): MatVec weight banks and input
buffers, nonlinear tables, Gather buffers and index ROMs, constant vectors, and every FIFO, each
mapped to distributed RAM, block RAM or UltraRAM by the device's rule
(:meth:`devices.Device.memory_blocks`).
"""

from devices import ULTRASCALE_PLUS

__all__ = ["core_dsps", "design_dsps", "design_resources"]


def core_dsps(core):
    """Estimated DSP slices of one core."""
    return sum(multiplier.dsps for multiplier in core.multipliers)


def design_dsps(netlist):
    """Estimated DSP slices of every core of a netlist, counting a shared core once."""
    seen, total = set(), 0
    for instance in netlist.instances:
        if id(instance.core) not in seen:
            seen.add(id(instance.core))
            total += core_dsps(instance.core)
    return total


def design_resources(netlist, depths, device=ULTRASCALE_PLUS):
    """Estimated DSP, BRAM36, URAM and distributed-RAM bits of a netlist with FIFOs of ``depths``
    (stream → depth) on ``device``, before elaboration."""
    totals = {"DSP": 0, "BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": 0}
    cores = {id(instance.core): instance.core for instance in netlist.instances}.values()
    memories = [memory for core in cores for memory in core.memories]
    memories += [memory for stream in netlist.streams for memory in stream.fifo(depths[stream]).model.memories]
    for width, depth, initialized, copies in memories:
        for key, amount in device.memory_blocks(width, depth, initialized=initialized).items():
            totals[key] += copies * amount
    totals["DSP"] = design_dsps(netlist)
    return totals
