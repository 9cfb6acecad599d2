"""Rate limiter at the entrance of a dataflow design."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .contract import TimingContract
from .fixed import Q
from .ports import lanes_signature

__all__ = ["Pacer", "PacerCycles"]


class Pacer(wiring.Component):
    """Admit one group of ``tokens`` tokens every ``period`` cycles.

    A dataflow design runs at the pace of its slowest core. Admitting samples no faster than that
    pace keeps every FIFO occupancy bounded and independent of the batch size, and makes the
    design's timing independent of how fast the outside world offers data, so the latency solver
    predicts it to the cycle.

    Parameters
    ----------
    fmt : Q
        Element format.
    tokens : int
        Tokens per group (one sample).
    period : int
        Minimum cycles between the first tokens of consecutive groups; at least ``2 * tokens``.

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(fmt.shape, 1)))
    o : Out(stream.Signature(ArrayLayout(fmt.shape, 1)))

    Timing
    ------
    Collects a group, emits it one token per cycle from the second cycle on, and accepts the next
    group ``period - tokens`` cycles after the last token of this one:
    ``TimingContract(reads=((("i",), tokens),), writes=(2, ..., tokens + 1), cooldown=period - tokens)``.
    """

    def __init__(self, fmt: Q, tokens: int, period: int):
        if period < 2 * tokens:
            raise ValueError(f"period {period} is shorter than twice the group of {tokens} tokens")
        self._fmt, self._tokens, self._period = fmt, tokens, period
        super().__init__({"i": In(lanes_signature(fmt, 1)), "o": Out(lanes_signature(fmt, 1))})
        self.contract = TimingContract(reads=((("i",), tokens),), writes=tuple(range(2, tokens + 2)),
                                       cooldown=period - tokens)

    multipliers = memories = ()

    def reference(self, i):
        """The raw tokens out: the tokens in."""
        return i

    def cycle_model(self, tokens):
        """The pacer register by register, admitting ``tokens`` tokens from an always-valid source."""
        return PacerCycles(self._tokens, self._period, tokens)

    def elaborate(self, platform):
        m = Module()
        tokens = self._tokens
        buffer = Signal(data.ArrayLayout(self._fmt.shape, tokens))
        loaded = Signal(range(tokens + 1))
        sent = Signal(range(tokens + 1))
        wait = Signal(range(self._period + 1))

        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)

        m.d.comb += self.i.ready.eq((loaded != tokens) & (wait == 0) & (sent == 0))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buffer[loaded].eq(self.i.payload[0]), loaded.eq(loaded + 1)]
            with m.If(loaded == tokens - 1):
                m.d.sync += wait.eq(self._period - tokens)

        emitting = (loaded == tokens)
        with m.If(~self.o.valid | self.o.ready):
            m.d.sync += self.o.valid.eq(emitting)
            with m.If(emitting):
                m.d.sync += [self.o.payload[0].eq(buffer[sent]), sent.eq(sent + 1)]
                with m.If(sent == tokens - 1):
                    m.d.sync += [sent.eq(0), loaded.eq(0)]
        return m


class PacerCycles:
    """:class:`Pacer`, register by register, for :func:`inrarch.schedule.simulate`.

    Each cycle, :meth:`ready` tells whether the pacer takes a token; :meth:`clock` then advances
    it, given whether it took one and whether its output was taken. ``out_valid`` is its output
    register's valid bit.
    """

    def __init__(self, tokens, period, total):
        self.tokens, self.period, self.remaining = tokens, period, total
        self.loaded = self.sent = self.wait = 0
        self.out_valid = False

    def ready(self, valid, out_ready):
        accept = self.remaining and self.loaded != self.tokens and self.wait == 0 and self.sent == 0
        return ("i",) if accept else ()

    def clock(self, taken, out_ready):
        emitting = self.loaded == self.tokens
        if self.wait:
            self.wait -= 1
        if taken:
            self.remaining -= 1
            self.loaded += 1
            if self.loaded == self.tokens:
                self.wait = self.period - self.tokens
        if not self.out_valid or out_ready:
            self.out_valid = emitting
            if emitting:
                self.sent += 1
                if self.sent == self.tokens:
                    self.sent = self.loaded = 0
