"""Analytic resource estimate of an Amaranth design for a :class:`devices.Device`, without synthesis.

The estimate reads the design's Amaranth netlist (the one the Verilog is written from), so it
sees exactly the multipliers and memories the cores describe. Elaborating a full-size design takes
minutes, so builds use the faster core-level model, ``inrarch.resources.design_resources``; the
tests check that model against this one.

Multipliers: Amaranth widens both operands of ``*`` to the result width; the operand's real width
is recovered by dropping its sign- or zero-extension bits. A product is one partial product of a
:class:`cores.multiply.Multiplier`, whose DSP count :meth:`devices.Device.dsps` gives for the
operand widths (the narrower operand's at most 2 bits: LUTs, no DSP). A product with a constant
counts like any other: Vivado and yosys map constant products of these widths to DSPs.

Memories, by shape (``depth × width``): distributed RAM, block RAM or UltraRAM by the device's
rule (:meth:`devices.Device.memory_blocks`; asynchronously read memories are distributed RAM);
one copy per two read ports of a ROM, one per read port of a written memory.
"""

import math
from collections import Counter

from amaranth.hdl import Fragment, _nir
from amaranth.hdl._ir import build_netlist

from devices import ULTRASCALE_PLUS

__all__ = ["estimate"]


def _operand_width(value):
    """Width of a ``*`` operand without the sign or zero extension Amaranth added."""
    nets = list(value)
    while len(nets) > 1 and (nets[-1] == nets[-2] or nets[-1] == _nir.Net.from_const(0)):
        nets.pop()
    return len(nets)


def estimate(elaboratable, device=ULTRASCALE_PLUS):
    """Estimated DSP, BRAM36 and URAM use of ``elaboratable`` on ``device`` (and the products and memories behind them).

    Returns a dict: ``DSP``, ``BRAM36``, ``URAM``, ``LUTRAM_bits``, ``products`` (a list of
    ``[a_bits, b_bits, count]``) and ``memories`` (``[depth, width, count]`` per shape).
    """
    netlist = build_netlist(Fragment.get(elaboratable, None), [], name="top")
    products = Counter()
    memories = {}
    read_ports = Counter()
    async_reads = set()
    written = set()
    for index, cell in enumerate(netlist.cells):
        if isinstance(cell, _nir.Operator) and cell.operator == "*":
            a, b = sorted((_operand_width(operand) for operand in cell.inputs), reverse=True)
            products[(a, b)] += 1
        elif isinstance(cell, _nir.Memory):
            memories[index] = cell
        elif isinstance(cell, (_nir.SyncReadPort, _nir.AsyncReadPort)):
            read_ports[cell.memory] += 1
            if isinstance(cell, _nir.AsyncReadPort):
                async_reads.add(cell.memory)
        elif isinstance(cell, _nir.SyncWritePort):
            written.add(cell.memory)

    totals = {"DSP": 0, "BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": 0}
    for (a, b), count in products.items():
        totals["DSP"] += count * device.dsps(a, b)
    shapes = Counter()
    for index, memory in memories.items():
        ports = max(1, read_ports[index])
        copies = ports if index in written else math.ceil(ports / 2)
        blocks = device.memory_blocks(memory.width, memory.depth, initialized=index not in written,
                                      async_read=index in async_reads)
        for key, amount in blocks.items():
            totals[key] += copies * amount
        shapes[(memory.depth, memory.width)] += copies
    totals["products"] = [[a, b, count] for (a, b), count in sorted(products.items(), reverse=True)]
    totals["memories"] = [[depth, width, count] for (depth, width), count in sorted(shapes.items(), reverse=True)]
    return totals
