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
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["TimingContract", "Schedule"]


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
