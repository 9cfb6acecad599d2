"""Drive streaming cores in Amaranth's simulator, with random stalls, and check their contracts.

:func:`run_streams` feeds token sequences into a component's input streams and collects its
output streams, cycle by cycle. Inputs can arrive with random valid-gaps and outputs can be
back-pressured at random, so a test can show that every item moves exactly once. It records the
cycle each input token arrived and was accepted and the cycle each output token first became
valid, so :func:`check_contract` can compare a core against its :class:`~cores.TimingContract`.
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator

from .contract import TimingContract

__all__ = ["StreamRun", "run_streams", "check_contract", "pack_lanes", "unpack_lanes"]


def _lane_geometry(port):
    layout = port.payload.shape()
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        width = elem.width if hasattr(elem, "width") else data.Layout.cast(elem).size
        return width, layout.length
    return layout.width, None


def pack_lanes(values, width):
    """Signed lane values (lane 0 first) to one unsigned integer."""
    mask = (1 << width) - 1
    word = 0
    for lane, value in enumerate(values):
        word |= (int(value) & mask) << (lane * width)
    return word


def unpack_lanes(word, width, lanes):
    """One unsigned integer to a tuple of signed lane values."""
    mask = (1 << width) - 1
    values = []
    for lane in range(lanes):
        raw = (word >> (lane * width)) & mask
        values.append(raw - (1 << width) if raw >> (width - 1) else raw)
    return tuple(values)


@dataclass
class StreamRun:
    """What :func:`run_streams` saw: tokens and their cycle times, per port."""

    outputs: dict = field(default_factory=dict)
    arrivals: dict = field(default_factory=dict)
    accepts: dict = field(default_factory=dict)
    emits: dict = field(default_factory=dict)
    cycles: int = 0
    signals: dict = field(default_factory=dict)


def run_streams(core, inputs, outputs, *, valid_prob=1.0, ready_prob=1.0, seed=0, max_cycles=200_000,
                watch=(), vcd=None, load=()):
    """Simulate ``core`` with the given input tokens until every expected output token is out.

    Parameters
    ----------
    core : wiring.Component
        The design under test; its stream ports are looked up by attribute name.
    inputs : dict of str to list
        Tokens per input port. A token is a sequence of signed lane values (or a plain int for a
        one-lane or non-array payload).
    outputs : dict of str to int
        Number of tokens expected per output port.
    valid_prob : float
        Probability that the driver offers the next input token in a given cycle (random
        valid-gaps below 1).
    ready_prob : float
        Probability that an output port is ready in a given cycle (random back-pressure below 1).
    watch : iterable of str
        Names of extra signals of ``core`` whose final values are returned in ``signals``.
    load : list of int
        Words for the ``load`` port of a core with runtime weights (:mod:`cores.weights`), one a
        cycle before any stream moves; cycle 0 is the cycle after the last.

    Returns
    -------
    StreamRun
        Output tokens as tuples of signed lane values, and cycle times: ``arrivals`` (input token
        first offered), ``accepts`` (input token taken), ``emits`` (output token first valid).
    """
    rng = np.random.default_rng(seed)
    run = StreamRun()
    in_ports = {name: getattr(core, name) for name in inputs}
    out_ports = {name: getattr(core, name) for name in outputs}
    in_geometry = {name: _lane_geometry(port) for name, port in in_ports.items()}
    out_geometry = {name: _lane_geometry(port) for name, port in out_ports.items()}
    for name in inputs:
        run.arrivals[name], run.accepts[name] = [], []
    for name in outputs:
        run.outputs[name], run.emits[name] = [], []

    def word(name, token):
        width, lanes = in_geometry[name]
        if lanes is None:
            return int(token) & ((1 << width) - 1)
        token = [token] if np.isscalar(token) else token
        return pack_lanes(token, width)

    def token_of(name, value):
        width, lanes = out_geometry[name]
        if lanes is None:
            return unpack_lanes(value, width, 1)[0]
        return unpack_lanes(value, width, lanes)

    async def testbench(ctx):
        for load_word in load:
            ctx.set(core.load.valid, 1)
            ctx.set(core.load.payload, int(load_word))
            await ctx.tick()
        if load:
            ctx.set(core.load.valid, 0)
        sent = dict.fromkeys(inputs, 0)
        offered = dict.fromkeys(inputs, False)
        next_offer = dict.fromkeys(inputs, 0)
        seen_valid = dict.fromkeys(outputs, False)
        cycle = 0
        while any(len(run.outputs[n]) < outputs[n] for n in outputs) or any(sent[n] < len(inputs[n]) for n in inputs):
            if cycle >= max_cycles:
                raise TimeoutError(f"no completion after {max_cycles} cycles: "
                                   f"sent {sent}, received { {n: len(v) for n, v in run.outputs.items()} }")
            for name, port in in_ports.items():
                if not offered[name] and sent[name] < len(inputs[name]) and cycle >= next_offer[name]:
                    if valid_prob >= 1.0 or rng.random() < valid_prob:
                        offered[name] = True
                        run.arrivals[name].append(cycle)
                        ctx.set(port.payload.as_value(), word(name, inputs[name][sent[name]]))
                ctx.set(port.valid, int(offered[name]))
            for name, port in out_ports.items():
                ctx.set(port.ready, int(ready_prob >= 1.0 or rng.random() < ready_prob))
            for name, port in out_ports.items():
                if ctx.get(port.valid):
                    if not seen_valid[name]:
                        seen_valid[name] = True
                        run.emits[name].append(cycle)
                    if ctx.get(port.ready):
                        run.outputs[name].append(token_of(name, ctx.get(port.payload.as_value())))
                        seen_valid[name] = False
            for name, port in in_ports.items():
                if offered[name] and ctx.get(port.ready):
                    run.accepts[name].append(cycle)
                    sent[name] += 1
                    offered[name] = False
                    next_offer[name] = cycle + 1
            await ctx.tick()
            cycle += 1
        for name, port in in_ports.items():
            ctx.set(port.valid, 0)
        run.cycles = cycle
        for name in watch:
            run.signals[name] = ctx.get(getattr(core, name))

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return run


def check_contract(contract: TimingContract, run: StreamRun, output="o"):
    """Assert that a run without back-pressure followed ``contract`` to the cycle.

    Recomputes accept and emit times from the observed arrival times with
    :meth:`TimingContract.schedule` and compares them with what the simulation did.
    """
    expected = contract.schedule({port: run.arrivals[port] for port in contract.consumes})
    for port in contract.consumes:
        observed = np.asarray(run.accepts[port])
        if not np.array_equal(observed, expected.accepts[port]):
            bad = int(np.argmax(observed != expected.accepts[port]))
            raise AssertionError(f"port {port}: token {bad} accepted at cycle {observed[bad]}, "
                                 f"contract says {expected.accepts[port][bad]}")
    observed = np.asarray(run.emits[output])
    if not np.array_equal(observed, expected.emits):
        bad = int(np.argmax(observed != expected.emits)) if len(observed) == len(expected.emits) else min(len(observed), len(expected.emits))
        raise AssertionError(f"output {output}: token {bad} emitted at cycle "
                             f"{observed[bad] if bad < len(observed) else None}, contract says "
                             f"{expected.emits[bad] if bad < len(expected.emits) else None}")
