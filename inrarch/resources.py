"""Analytic resource estimates that need no synthesis.

DSP48E2 slices multiply a 27-bit by an 18-bit signed operand. The cores split a wider product
themselves (:class:`cores.multiply.Multiplier`): every operand is cut into unsigned low pieces of
at most 26 (or 17) bits and a signed top piece, one slice per pair of pieces, so a signed
``a × b``-bit product takes ``ceil((a-1)/26) * ceil((b-1)/17)`` slices in the better of the two
operand orders, and none when an operand has at most 2 bits (a shift-and-add). yosys
``synth_xilinx`` maps each partial product to exactly one slice. Each core is counted by the
products its datapath holds, which it lists in ``multipliers`` (:mod:`cores.model`): ``parallel``
per MatVec channel, one per lane of ``Mul``, ``MulAdd``, ``Scale`` and ``MulConst``, and per lane of
a nonlinear core its range reduction, one per polynomial order of its table, or Relu's scale.

Memories are counted from the ``memories`` the cores list from their own parameters, with no
elaboration (a full-size design takes minutes to elaborate): MatVec weight banks and input
buffers, nonlinear tables, Gather buffers and index ROMs, constant vectors, and every FIFO. A ``depth × width`` memory maps to distributed RAM
when it is at most 64 deep, else to the cheapest RAMB36E2/RAMB18E2 aspect ratio, or to UltraRAM
(4K×72) when it has no initial contents and would need more than 8 BRAM36.
"""

import math

from amaranth.hdl import signed

from cores.multiply import Multiplier

__all__ = ["dsp_slices", "memory_blocks", "core_dsps", "design_dsps", "design_resources"]

_BRAM36 = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
_BRAM18 = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_URAM = (72, 4096)
_LUTRAM_MAX_DEPTH = 64
_URAM_MIN_BRAM36 = 8


def dsp_slices(a_bits, b_bits):
    """DSP48E2 slices for one signed ``a_bits × b_bits`` product (none when an operand has ≤ 2 bits)."""
    return Multiplier(signed(a_bits), signed(b_bits)).dsps


def memory_blocks(width, depth, *, initialized=False, async_read=False):
    """``{"BRAM36": n, "URAM": n, "LUTRAM_bits": n}`` for one copy of a ``depth × width`` memory."""
    if async_read or depth <= _LUTRAM_MAX_DEPTH:
        return {"BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": width * depth}
    bram = min([math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM36]
               + [0.5 * math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM18])
    if not initialized and bram > _URAM_MIN_BRAM36:
        return {"BRAM36": 0.0, "URAM": math.ceil(width / _URAM[0]) * math.ceil(depth / _URAM[1]), "LUTRAM_bits": 0}
    return {"BRAM36": float(bram), "URAM": 0, "LUTRAM_bits": 0}


def core_dsps(core):
    """Estimated DSP48E2 slices of one core."""
    return sum(multiplier.dsps for multiplier in core.multipliers)


def design_dsps(netlist):
    """Estimated DSP48E2 slices of every core of a netlist, counting a shared core once."""
    seen, total = set(), 0
    for instance in netlist.instances:
        if id(instance.core) not in seen:
            seen.add(id(instance.core))
            total += core_dsps(instance.core)
    return total


def design_resources(netlist):
    """Estimated DSP48E2, BRAM36, URAM and distributed-RAM bits of a netlist, before elaboration."""
    totals = {"DSP": 0, "BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": 0}
    cores = {id(instance.core): instance.core for instance in netlist.instances}.values()
    memories = [memory for core in cores for memory in core.memories]
    memories += [(stream.source.node.attrs["format"].width, stream.depth - 1, False, 1) for stream in netlist.streams]
    for width, depth, initialized, copies in memories:
        for key, amount in memory_blocks(width, depth, initialized=initialized).items():
            totals[key] += copies * amount
    totals["DSP"] = design_dsps(netlist)
    return totals
