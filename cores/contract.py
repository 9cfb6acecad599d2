"""Machine-readable timing contracts of streaming cores.

Every core in this library is a dataflow actor. It works in *firings*: one firing accepts a fixed
sequence of input tokens and emits a fixed sequence of output tokens. A :class:`TimingContract`
states, cycle-exactly, when a core accepts and emits tokens while its outputs are never
back-pressured. The latency solver (:mod:`inrarch.schedule`) composes these contracts into the
schedule of a whole design, and each core's tests check in simulation that the core keeps its
contract exactly.

The model
---------
A firing reads its inputs in *beats*. ``reads`` lists them as runs ``(ports, count)``: ``count``
consecutive beats, each taking one token from every port in ``ports`` in the same cycle. At most
one beat is accepted per cycle, and a beat is accepted in the first cycle where all of its tokens
are available and the core is ready for it. Between the last beat of one firing and the first beat
of the next, the core stays idle for ``cooldown`` cycles (time it needs to finish computing).

The firing's output tokens become valid at fixed offsets after the cycle its last beat was
accepted: token ``i`` at ``last_accept + writes[i]``. Every output port emits the same sequence of
token times. A token stays valid until it is taken; with an always-ready consumer it is taken in
the cycle it becomes valid.

Under back-pressure
-------------------
A contract states the timing while outputs are always taken. A :class:`CycleModel` states it
whatever the consumer does: cycle by cycle, which inputs a core takes and whether its output
offers a token. The default, :class:`ContractCycles`, runs the contract on a local clock that stops
while the output is stalled, which is exactly how a pipeline that holds under back-pressure behaves
(the element-wise and nonlinear cores, the reductions, the lane converter). Cores that keep
working while their output waits (a FIFO, the input pacer, a matrix-vector channel or a gather
that loads its next input meanwhile) provide their own ``cycle_model``, register by register.
tests/cores/test_interface.py checks every core's against its hardware, cycle by cycle.
"""

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["TimingContract", "Schedule", "CycleModel", "ContractCycles", "ContractTiming"]


@dataclass(frozen=True)
class Schedule:
    """Cycle times of every token of a run: ``accepts[port][k]`` and ``emits[k]``."""

    accepts: dict
    emits: np.ndarray


@dataclass(frozen=True)
class TimingContract:
    """Cycle-exact timing of a core under no output back-pressure.

    Parameters
    ----------
    reads : tuple of (tuple of str, int)
        The input beats of one firing as runs of ``(port names, beat count)``.
    writes : tuple of int
        For each output token of a firing, the cycle offset after the firing's last accepted beat
        at which it becomes valid. Strictly increasing; 0 only for combinational cores.
    cooldown : int
        Idle cycles between a firing's last beat and the next firing's first beat.
    """

    reads: tuple
    writes: tuple
    cooldown: int = 0

    def __post_init__(self):
        if not self.reads or any(count < 1 or not ports for ports, count in self.reads):
            raise ValueError("a firing reads at least one beat, from at least one port")
        if not self.writes or self.writes[0] < 0 or any(b <= a for a, b in zip(self.writes, self.writes[1:])):
            raise ValueError("write offsets must be strictly increasing and not negative")
        if self.cooldown < 0:
            raise ValueError("cooldown cannot be negative")

    @classmethod
    def pipeline(cls, ports, latency):
        """A token-level pipeline: one beat from all ``ports`` in, one token out ``latency`` cycles later."""
        return cls(reads=((tuple(ports), 1),), writes=(latency,))

    @property
    def beats(self):
        return sum(count for _, count in self.reads)

    @property
    def ii(self):
        """Cycles per firing when inputs never wait (the initiation interval)."""
        return self.beats + self.cooldown

    @property
    def latency(self):
        """Cycles from a firing's last accepted beat to its first output token."""
        return self.writes[0]

    @property
    def produces(self):
        """Output tokens per firing, on each output port."""
        return len(self.writes)

    @property
    def consumes(self):
        """Input tokens per firing, by port."""
        counts = {}
        for ports, count in self.reads:
            for port in ports:
                counts[port] = counts.get(port, 0) + count
        return counts

    def is_token_pipeline(self):
        return len(self.reads) == 1 and self.reads[0][1] == 1 and len(self.writes) == 1 and self.cooldown == 0

    def schedule(self, arrivals):
        """Accept and emit times of every token, given when each input token becomes available.

        Parameters
        ----------
        arrivals : dict of str to array of int
            For each input port, the cycle in which each of its tokens first becomes valid at the
            port. Every port must hold the same whole number of firings.

        Returns
        -------
        Schedule
        """
        consumes = self.consumes
        lengths = {port: len(arrivals[port]) for port in consumes}
        firings = {lengths[port] // n for port, n in consumes.items()}
        if len(firings) != 1 or any(lengths[port] % n for port, n in consumes.items()):
            raise ValueError(f"inputs {lengths} are not a whole number of firings of {consumes}")
        firings = firings.pop()
        arrivals = {port: np.asarray(arrivals[port], dtype=np.int64) for port in consumes}
        if self.is_token_pipeline():
            return self._schedule_pipeline(arrivals)
        accepts = {port: np.empty(lengths[port], dtype=np.int64) for port in consumes}
        emits = np.empty(firings * self.produces, dtype=np.int64)
        writes = np.asarray(self.writes, dtype=np.int64)
        index = dict.fromkeys(consumes, 0)
        ready = np.iinfo(np.int64).min // 4
        for firing in range(firings):
            for ports, count in self.reads:
                ready_at = np.full(count, ready, dtype=np.int64)
                for port in ports:
                    ready_at = np.maximum(ready_at, arrivals[port][index[port]:index[port] + count])
                steps = np.arange(count, dtype=np.int64)
                times = np.maximum.accumulate(ready_at - steps) + steps
                for port in ports:
                    accepts[port][index[port]:index[port] + count] = times
                    index[port] += count
                ready = times[-1] + 1
            last = ready - 1
            emits[firing * self.produces:(firing + 1) * self.produces] = last + writes
            ready = last + 1 + self.cooldown
        return Schedule(accepts, emits)

    def _schedule_pipeline(self, arrivals):
        ready_at = np.maximum.reduce([arrivals[port] for port in arrivals]) if len(arrivals) > 1 else next(iter(arrivals.values()))
        steps = np.arange(len(ready_at), dtype=np.int64)
        times = np.maximum.accumulate(ready_at - steps) + steps
        return Schedule({port: times for port in arrivals}, times + self.writes[0])


class CycleModel(Protocol):
    """A core's handshakes, cycle by cycle, whatever its producers and consumer do.

    Each cycle, :meth:`ready` gives the input ports that take a token, given which of them offer
    one and whether the output is taken; :meth:`clock` then advances the model by that cycle.
    ``out_valid`` is whether the output offers a token in the current cycle. A core gives its model
    with ``core.cycle_model(firings)``, for a run of ``firings`` firings.
    """

    out_valid: bool

    def ready(self, valid, out_ready):
        """The input ports that take a token this cycle; ``valid[port]`` tells whether ``port``
        offers one (``valid`` is None for a core with no input port)."""

    def clock(self, taken, out_ready):
        """Advance by one cycle, in which the inputs of :meth:`ready` were ``taken`` (or not) and
        the output was taken if it was valid and ``out_ready``."""


class ContractCycles:
    """The default :class:`CycleModel`: ``contract`` kept on a local clock that stops while the
    output is stalled, for ``firings`` firings."""

    def __init__(self, contract, firings):
        self.runs = contract.reads
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


class ContractTiming:
    """What a core (or its model) whose timing under back-pressure is its contract's inherits:
    :class:`ContractCycles` as its cycle model."""

    def cycle_model(self, firings):
        """Its :class:`CycleModel` for a run of ``firings`` firings."""
        return ContractCycles(self.contract, firings)
