"""The latency solver: the exact cycle schedule of a design, and the FIFO depths it needs.

Every core keeps a cycle-exact :class:`~cores.contract.TimingContract`, so with FIFOs deep enough
that no core ever waits for room, the whole design's timing follows from the contracts alone:

1. The input pacer admits one sample per ``period`` cycles, the pace of the busiest core, from an
   always-valid source.
2. In topological order, each core's input arrival times are its producers' emit times plus the
   FIFO's latency; its contract gives its accept and emit times.
3. Each FIFO's depth is the largest occupancy this schedule gives it, computed from the exact
   behaviour of :class:`amaranth.lib.fifo.SyncFIFOBuffered` (one register stage after a memory).

With those depths no write ever meets a full FIFO, so the hardware runs exactly this schedule:
the predicted cycle count is the simulated one. Because the schedule is admissible for these
capacities and every core reads its inputs in a fixed order (a Kahn process network), no other
timing of the outside world can deadlock the design either. Admitting samples at the pace of the
slowest core keeps every occupancy periodic, so the depths do not grow with the batch.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FIFO_LATENCY", "MIN_FIFO_DEPTH", "SolvedSchedule", "fifo_depth", "solve"]

FIFO_LATENCY = 2  # SyncFIFOBuffered: written at t, readable at t + 2
MIN_FIFO_DEPTH = 3  # below this a SyncFIFOBuffered cannot take a beat every cycle


def fifo_depth(writes, reads):
    """Smallest ``SyncFIFOBuffered`` depth that accepts every write on time.

    ``writes[k]`` is the cycle token ``k`` is written, ``reads[k]`` the cycle it is read. The FIFO
    moves a token from its memory to its output register at ``max(writes[k] + 1, reads[k - 1])``;
    a write is accepted while fewer than ``depth - 1`` tokens sit in the memory.
    """
    writes = np.asarray(writes, dtype=np.int64)
    reads = np.asarray(reads, dtype=np.int64)
    if len(writes) == 0:
        return 2
    previous_read = np.concatenate([[np.iinfo(np.int64).min // 4], reads[:-1]])
    moved = np.maximum(writes + 1, previous_read)
    in_memory = np.arange(len(writes)) - np.searchsorted(moved, writes, side="left")
    return int(in_memory.max()) + 2


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
    occupancy_peak_cycle: dict = field(default_factory=dict)
    critical: object = None      # the instance with the most busy cycles per sample


def solve(netlist, batch):
    """Schedule ``batch`` samples through ``netlist`` and set every stream's FIFO depth."""
    source = netlist.source
    tokens = source.node.numel * batch
    accepts, emits = {}, {}
    first = source.contract.schedule({"i": np.zeros(tokens, dtype=np.int64)})
    accepts[source], emits[source] = first.accepts, first.emits
    for instance in netlist.instances[1:]:
        arrivals = {}
        for port, producer in zip(instance.inputs, instance.node.inputs):
            producer_instance = next(s.source for s in netlist.streams if s.sink is instance and s.port == port)
            arrivals[port] = emits[producer_instance] + FIFO_LATENCY
        result = instance.contract.schedule(arrivals)
        accepts[instance], emits[instance] = result.accepts, result.emits
    solved = SolvedSchedule(batch=batch, period=netlist.period, cycles=0, first_accept=int(accepts[source]["i"][0]),
                            last_output=0, accepts=accepts, emits=emits)
    for stream in netlist.streams:
        writes = emits[stream.source]
        reads = writes + FIFO_LATENCY if stream.sink is None else accepts[stream.sink][stream.port]
        stream.depth = max(MIN_FIFO_DEPTH, fifo_depth(writes, reads))
        solved.depths[stream] = stream.depth
    solved.last_output = int(max(emits[s.source][-1] + FIFO_LATENCY for s in netlist.outputs))
    solved.cycles = solved.last_output - solved.first_accept + 1
    solved.critical = max(netlist.instances[1:], key=lambda i: i.contract.ii * i.firings_per_sample, default=source)
    return solved
