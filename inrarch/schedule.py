"""The latency solver: the exact cycle schedule of a design, and the FIFO depths it needs.

Every core keeps a cycle-exact :class:`~cores.contract.TimingContract`, so with FIFOs deep enough
that no core ever waits for room, the whole design's timing follows from the contracts alone:

1. The input pacer admits one sample per ``period`` cycles, the pace of the busiest core, from an
   always-valid source.
2. In topological order, each core's input arrival times are its producers' emit times plus the
   stream's latency (its FIFO's, and one cycle per relay station where it crosses dies); its
   contract gives its accept and emit times.
3. Each FIFO's depth is the largest occupancy this schedule gives it, computed from the exact
   behaviour of the design's FIFO (:meth:`cores.plumbing.StreamFIFO.depth_for`).

With those depths no write ever meets a full FIFO, so the hardware runs exactly this schedule:
the predicted cycle count is the simulated one. Because the schedule is admissible for these
capacities and every core reads its inputs in a fixed order (a Kahn process network), no other
timing of the outside world can deadlock the design either. Admitting samples at the pace of the
slowest core keeps every occupancy periodic, so the depths do not grow with the batch.
"""

from dataclasses import dataclass, field

import numpy as np

from cores.plumbing import StreamFIFO
from cores.weights import LOAD_LATENCY

__all__ = ["SolvedSchedule", "solve", "solve_load", "load_relays"]


@dataclass
class SolvedSchedule:
    """The solved timing of one batch."""

    batch: int
    period: int
    cycles: int                  # first input accepted → last output taken, inclusive
    first_accept: int
    last_output: int
    accepts: dict = field(default_factory=dict)   # instance -> {port: times}
    emits: dict = field(default_factory=dict)     # instance -> times
    depths: dict = field(default_factory=dict)    # stream -> depth
    critical: object = None      # the instance with the most busy cycles per sample
    first_sample_cycles: int = 0  # first input accepted → last output of the first group taken

    def reads(self, stream):
        """The cycles ``stream``'s tokens leave its FIFO: its sink's accepts, or, at a design output,
        as soon as the FIFO gives them."""
        if stream.sink is None:
            return self.emits[stream.source] + stream.latency
        return self.accepts[stream.sink][stream.port]

    def writes(self, stream):
        """The cycles ``stream``'s tokens enter its FIFO: their emits, after its relay stations."""
        return self.emits[stream.source] + stream.relay_latency


def solve(netlist, batch):
    """Schedule ``batch`` samples through ``netlist``; the result holds every stream's FIFO depth.

    A netlist keeps what it was solved for (:attr:`inrarch.lower.Netlist.schedules`), so asking
    again for the same batch costs nothing.
    """
    if batch not in netlist.schedules:
        netlist.schedules[batch] = _solve(netlist, batch)
    return netlist.schedules[batch]


def solve_load(netlist):
    """Cycles a weight load takes in ``netlist``, from the cycle its ``weights`` port takes an image's
    first word to the first cycle it can take a sample; None for a netlist without runtime weights.

    The design's :class:`cores.weights.WeightLoader` takes the image one word a cycle, the segment
    of every core that holds runtime weights in turn, and lets samples in
    :data:`cores.weights.LOAD_LATENCY` cycles after the last word, and one more per load relay on
    the longest way a word takes to a core in another die (:meth:`inrarch.lower.Netlist.load_path`).
    """
    words = sum(instance.core.weight_layout.words for instance in netlist.loaded())
    return words + LOAD_LATENCY + load_relays(netlist) if words else None


def load_relays(netlist):
    """The most :class:`cores.weights.LoadRelay` stages between the weight loader and a core."""
    return max((len(netlist.load_path(instance)) for instance in netlist.loaded()), default=0)


def _solve(netlist, batch):
    source = netlist.source
    tokens = source.node.numel * netlist.samples(batch)
    accepts, emits = {}, {}
    first = source.contract.schedule({"i": np.zeros(tokens, dtype=np.int64)})
    accepts[source], emits[source] = first.accepts, first.emits
    streams = {(id(s.sink), s.port): s for s in netlist.streams if s.sink is not None}
    producers = {key: stream.source for key, stream in streams.items()}
    for instance in netlist.instances[1:]:
        arrivals = {port: emits[producers[id(instance), port]] + streams[id(instance), port].latency
                    for port in instance.inputs}
        result = instance.contract.schedule(arrivals)
        accepts[instance], emits[instance] = result.accepts, result.emits
    solved = SolvedSchedule(batch=batch, period=netlist.period, cycles=0, first_accept=int(accepts[source]["i"][0]),
                            last_output=0, accepts=accepts, emits=emits)
    for stream in netlist.streams:
        solved.depths[stream] = StreamFIFO.depth_for(solved.writes(stream), solved.reads(stream))
    solved.last_output = int(max(solved.reads(s)[-1] for s in netlist.outputs))
    solved.cycles = solved.last_output - solved.first_accept + 1
    # Every core fires in order and no firing waits for a later one, so the first group of samples
    # leaves as it would alone: its last output gives the latency of one sample.
    first_group = max(solved.reads(s)[netlist.lanes * s.source.node.numel - 1] for s in netlist.outputs)
    solved.first_sample_cycles = int(first_group) - solved.first_accept + 1
    solved.critical = netlist.critical()
    return solved
