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

With FIFOs shallower than that, writes meet full FIFOs and the schedule no longer follows from
the contracts alone. :func:`simulate` then predicts the timing with a cycle-level model of the
design under back-pressure: exact models of the FIFOs and the eager forks, the pacer's and the
matmul channels' own register-level ``cycle_model``, and for every other core its contract run on
a local clock that stops while its output is stalled, which is exactly how the element-wise and
non-linear pipelines hold. Gather and the
lane converters are modelled the same way, which is only an approximation for them (they keep
loading while their output waits).
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from cores.matmul import MatVec
from cores.pacer import Pacer

__all__ = ["FIFO_LATENCY", "MIN_FIFO_DEPTH", "SolvedSchedule", "BackpressureRun", "fifo_depth", "solve",
           "simulate"]

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
    """Schedule ``batch`` samples through ``netlist``; the result holds every stream's FIFO depth."""
    source = netlist.source
    tokens = source.node.numel * netlist.samples(batch)
    accepts, emits = {}, {}
    first = source.contract.schedule({"i": np.zeros(tokens, dtype=np.int64)})
    accepts[source], emits[source] = first.accepts, first.emits
    producers = {(id(s.sink), s.port): s.source for s in netlist.streams if s.sink is not None}
    for instance in netlist.instances[1:]:
        arrivals = {port: emits[producers[id(instance), port]] + FIFO_LATENCY for port in instance.inputs}
        result = instance.contract.schedule(arrivals)
        accepts[instance], emits[instance] = result.accepts, result.emits
    solved = SolvedSchedule(batch=batch, period=netlist.period, cycles=0, first_accept=int(accepts[source]["i"][0]),
                            last_output=0, accepts=accepts, emits=emits)
    for stream in netlist.streams:
        writes = emits[stream.source]
        reads = writes + FIFO_LATENCY if stream.sink is None else accepts[stream.sink][stream.port]
        solved.depths[stream] = max(MIN_FIFO_DEPTH, fifo_depth(writes, reads))
    solved.last_output = int(max(emits[s.source][-1] + FIFO_LATENCY for s in netlist.outputs))
    solved.cycles = solved.last_output - solved.first_accept + 1
    solved.critical = max(netlist.instances[1:], key=lambda i: i.contract.ii * i.firings_per_group, default=source)
    return solved


@dataclass
class BackpressureRun:
    """What :func:`simulate` predicts for one batch with given FIFO depths.

    Cycle numbers count from the cycle the first input token is accepted (cycle 0).
    """

    batch: int
    cycles: int                  # first input accepted → last output taken, inclusive; None on deadlock
    deadlock: bool
    writes: dict = field(default_factory=dict)    # stream -> cycles its tokens entered its FIFO
    blocked: dict = field(default_factory=dict)   # stream -> cycles a token waited for room in the FIFO
    peak_level: dict = field(default_factory=dict)  # stream -> largest FIFO level (StreamFIFO.level)


class _Fifo:
    """``SyncFIFOBuffered``: a memory of ``depth - 1`` entries and an output register."""

    def __init__(self, depth):
        self.capacity = depth - 1
        self.held = 0
        self.out_valid = False

    @property
    def w_rdy(self):
        return self.held != self.capacity

    @property
    def level(self):
        return self.held + self.out_valid

    def clock(self, write, r_en):
        move = self.held != 0 and (not self.out_valid or r_en)
        self.held += int(write) - int(move)
        if move:
            self.out_valid = True
        elif r_en:
            self.out_valid = False


class _ContractCore:
    """A core that keeps its contract on a local clock that stops while its output is stalled."""

    def __init__(self, contract, firings):
        self.runs = [(ports, count) for ports, count in contract.reads]
        self.writes = contract.writes
        self.cooldown = contract.cooldown
        self.firings = firings
        self.local = 0
        self.ready_at = 0
        self.run, self.beat, self.firing = 0, 0, 0
        self.pending = deque()

    @property
    def out_valid(self):
        return bool(self.pending) and self.pending[0] <= self.local

    def ready(self, valid, out_ready):
        """Ports that take a token this cycle, given which inputs are valid."""
        if self.firing == self.firings or self.local < self.ready_at or (self.out_valid and not out_ready):
            return ()
        ports = self.runs[self.run][0]
        return ports if all(valid[port] for port in ports) else ()

    def clock(self, taken, out_ready):
        advance = not self.out_valid or out_ready
        if taken:
            self.beat += 1
            self.ready_at = self.local + 1
            if self.beat == self.runs[self.run][1]:
                self.beat, self.run = 0, self.run + 1
                if self.run == len(self.runs):
                    self.run, self.firing = 0, self.firing + 1
                    self.pending.extend(self.local + w for w in self.writes)
                    self.ready_at += self.cooldown
        if self.out_valid and out_ready:
            self.pending.popleft()
        if advance:
            self.local += 1


def _core_model(instance, netlist, batch):
    core = instance.core
    if instance is netlist.source and isinstance(core, Pacer):
        return core.cycle_model(netlist.samples(batch) * instance.node.numel)
    if isinstance(core, MatVec):
        return core.cycle_model(int(instance.inputs[0][1:]))
    return _ContractCore(instance.contract, netlist.samples(batch) // netlist.lanes * instance.firings_per_group)


def simulate(netlist, batch, depths, *, max_cycles=None):
    """Predict the cycle-level timing of ``batch`` samples with the given FIFO depths.

    Parameters
    ----------
    netlist : inrarch.lower.Netlist
    batch : int
        Samples offered back to back by an always-valid source; outputs are always ready.
    depths : dict of Stream to int
        FIFO depth per stream, e.g. the solver's (:attr:`SolvedSchedule.depths`).
    max_cycles : int, optional
        Give up (a deadlock) when no token has moved for this many cycles; default
        ``4 * period + 64``.

    Returns
    -------
    BackpressureRun
    """
    idle_limit = max_cycles or 4 * netlist.period + 64
    models = {instance: _core_model(instance, netlist, batch) for instance in netlist.instances}
    fifos = {stream: _Fifo(depths[stream]) for stream in netlist.streams}
    by_source = netlist.readers_by_source()
    readers = {instance: by_source.get(id(instance), []) for instance in netlist.instances}
    inputs = {instance: {} for instance in netlist.instances}
    for stream in netlist.streams:
        if stream.sink is not None:
            inputs[stream.sink][stream.port] = stream
    taken_by = {stream: False for stream in netlist.streams}
    expected = {stream: netlist.samples(batch) * stream.source.node.numel for stream in netlist.outputs}
    delivered = dict.fromkeys(netlist.outputs, 0)
    result = BackpressureRun(batch=batch, cycles=None, deadlock=False,
                             writes={stream: [] for stream in netlist.streams},
                             blocked=dict.fromkeys(netlist.streams, 0), peak_level=dict.fromkeys(netlist.streams, 0))
    first = last = None
    cycle = idle = 0
    while any(delivered[s] < expected[s] for s in netlist.outputs):
        if idle > idle_limit:
            result.deadlock = True
            return result
        moved = False
        out_ready, writes = {}, {}
        for instance, model in models.items():
            valid = model.out_valid
            ready = True
            for stream in readers[instance]:
                offer = valid and not taken_by[stream]
                writes[stream] = offer and fifos[stream].w_rdy
                if offer and not fifos[stream].w_rdy:
                    result.blocked[stream] += 1
                ready = ready and (taken_by[stream] or fifos[stream].w_rdy)
            out_ready[instance] = ready
        r_en = {stream: True for stream in netlist.outputs}
        taken_inputs = {}
        for instance, model in models.items():
            ports = inputs[instance]
            if instance is netlist.source:
                taken = bool(model.ready(None, out_ready[instance]))
            else:
                valid = {port: fifos[stream].out_valid for port, stream in ports.items()}
                accepted = model.ready(valid, out_ready[instance])
                for port, stream in ports.items():
                    r_en[stream] = port in accepted
                taken = bool(accepted)
            taken_inputs[instance] = taken
            if taken and instance is netlist.source and first is None:
                first = cycle
        for stream, fifo in fifos.items():
            if writes[stream]:
                result.writes[stream].append(cycle - (first or 0))
                moved = True
            if fifo.out_valid and r_en[stream]:
                moved = True
                if stream.sink is None:
                    delivered[stream] += 1
                    last = cycle
            result.peak_level[stream] = max(result.peak_level[stream], fifo.level)
            fifo.clock(writes[stream], r_en[stream])
        for instance, model in models.items():
            valid, ready = model.out_valid, out_ready[instance]
            for stream in readers[instance]:
                taken_by[stream] = False if valid and ready else taken_by[stream] or writes[stream]
            model.clock(taken_inputs[instance], ready)
            moved = moved or taken_inputs[instance]
        idle = 0 if moved else idle + 1
        cycle += 1
    result.cycles = last - first + 1
    return result
