"""Rate limiter at the entrance of a dataflow design."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .contract import TimingContract
from .fixed import Q
from .model import ModelledComponent
from .ports import lanes_layout, lanes_signature

__all__ = ["Pacer", "PacerCycles"]


class PacerModel:
    """The model of :class:`Pacer`: its contract, its shortest period and its cycle model."""

    def __init__(self, fmt: Q, tokens: int, period: int, *, lanes=1):
        group = lanes * tokens
        if period < self.min_period(tokens, lanes):
            raise ValueError(f"period {period} is shorter than the group of {lanes} x {tokens} tokens "
                             f"followed by its {tokens} output beats")
        self._fmt, self._tokens, self._period, self._lanes = fmt, tokens, period, lanes
        self.contract = TimingContract(reads=((("i",), group),), writes=tuple(range(2, tokens + 2)),
                                       cooldown=period - group)

    @property
    def period(self):
        """Cycles between the first tokens of consecutive groups."""
        return self._period

    @staticmethod
    def min_period(tokens, lanes=1):
        """The shortest period of a pacer of ``lanes`` samples of ``tokens`` tokens: it collects the
        group's ``lanes * tokens`` tokens, then emits its ``tokens`` beats, taking no token meanwhile."""
        return (lanes + 1) * tokens

    multipliers = memories = ()

    def reference(self, i):
        """The raw tokens out for the raw tokens in: ``i[..., g * lanes * tokens]`` sample-major
        (``g`` groups) to ``[..., g * tokens * lanes]`` beat-major, lane-minor."""
        samples = np.reshape(i, np.shape(i)[:-1] + (-1, self._lanes, self._tokens))
        return np.swapaxes(samples, -1, -2).reshape(np.shape(i))

    def cycle_model(self, firings):
        """The pacer register by register (:class:`PacerCycles`), admitting ``firings`` groups from an
        always-valid source."""
        return PacerCycles(self._tokens, self._period, firings * self._lanes * self._tokens, lanes=self._lanes)


class Pacer(ModelledComponent, PacerModel):
    """Admit one group of ``lanes`` samples of ``tokens`` tokens every ``period`` cycles.

    A dataflow design runs at the pace of its slowest core. Admitting samples no faster than that
    pace keeps every FIFO occupancy bounded and independent of the batch size, and makes the
    design's timing independent of how fast the outside world offers data, so the latency solver
    predicts it to the cycle.

    The input takes one element per beat, samples one after the other. The output carries the
    group's ``lanes`` samples side by side: beat ``j`` holds element ``j`` of sample ``s`` in
    lane ``s``.

    Parameters
    ----------
    fmt : Q
        Element format.
    tokens : int
        Tokens per sample.
    period : int
        Minimum cycles between the first tokens of consecutive groups; at least
        :meth:`min_period`, ``(lanes + 1) * tokens`` (see Timing).
    lanes : int
        Samples per group, the lanes of ``o``.

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(fmt.shape, 1)))
    o : Out(stream.Signature(ArrayLayout(fmt.shape, lanes)))

    Timing
    ------
    Collects a group of ``lanes * tokens`` input tokens, emits it as ``tokens`` beats, one per
    cycle from the second cycle on, and accepts the next group ``period - lanes * tokens`` cycles
    after the last token of this one:
    ``TimingContract(reads=((("i",), lanes * tokens),), writes=(2, ..., tokens + 1),
    cooldown=period - lanes * tokens)``. The buffer takes no token while it is emitting, and
    its last beat is taken ``tokens`` cycles after the group's last token, hence the bound on
    ``period``.
    """

    def members(self):
        return {"i": In(lanes_signature(self._fmt, 1)), "o": Out(lanes_signature(self._fmt, self._lanes))}

    def elaborate(self, platform):
        m = Module()
        tokens, group = self._tokens, self._lanes * self._tokens
        buffer = Signal(data.ArrayLayout(self._fmt.shape, group))
        samples = data.ArrayLayout(lanes_layout(self._fmt, tokens), self._lanes)(buffer.as_value())
        loaded = Signal(range(group + 1))
        sent = Signal(range(tokens + 1))
        wait = Signal(range(self._period + 1))

        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)

        m.d.comb += self.i.ready.eq((loaded != group) & (wait == 0) & (sent == 0))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buffer[loaded].eq(self.i.payload[0]), loaded.eq(loaded + 1)]
            with m.If(loaded == group - 1):
                m.d.sync += wait.eq(self._period - group)

        emitting = (loaded == group)
        with m.If(~self.o.valid | self.o.ready):
            m.d.sync += self.o.valid.eq(emitting)
            with m.If(emitting):
                m.d.sync += [self.o.payload[lane].eq(samples[lane][sent]) for lane in range(self._lanes)]
                m.d.sync += sent.eq(sent + 1)
                with m.If(sent == tokens - 1):
                    m.d.sync += [sent.eq(0), loaded.eq(0)]
        return m


class PacerCycles:
    """:class:`Pacer`, register by register: its :class:`~cores.contract.CycleModel`.

    Each cycle, :meth:`ready` tells whether the pacer takes a token; :meth:`clock` then advances
    it, given whether it took one and whether its output was taken. ``out_valid`` is its output
    register's valid bit. ``total`` counts input tokens, a whole number of groups of
    ``lanes * tokens``.
    """

    def __init__(self, tokens, period, total, *, lanes=1):
        if total % (lanes * tokens):
            raise ValueError(f"{total} input tokens are not whole groups of {lanes} x {tokens}")
        self.tokens, self.group, self.period, self.remaining = tokens, lanes * tokens, period, total
        self.loaded = self.sent = self.wait = 0
        self.out_valid = False

    def ready(self, valid, out_ready):
        accept = self.remaining and self.loaded != self.group and self.wait == 0 and self.sent == 0
        return ("i",) if accept else ()

    def clock(self, taken, out_ready):
        emitting = self.loaded == self.group
        if self.wait:
            self.wait -= 1
        if taken:
            self.remaining -= 1
            self.loaded += 1
            if self.loaded == self.group:
                self.wait = self.period - self.group
        if not self.out_valid or out_ready:
            self.out_valid = emitting
            if emitting:
                self.sent += 1
                if self.sent == self.tokens:
                    self.sent = self.loaded = 0
