"""Reduction cores: sums over groups of consecutive beats of a stream.

Both cores work in firings of ``group`` beats and emit one beat per firing. :class:`Sum` adds up
every element of the firing (all lanes of all beats) into one scalar: the sum over the innermost
axis of a row-major tensor stream. :class:`Accumulate` adds the beats lane by lane: the sum over an
outer axis when the lanes span the inner one.

Both add at full precision, so the only error is the single rounding to the output format at the
end. They accept a beat every cycle, the first beat of a firing right after the last beat of the
one before included. While the output is back-pressured the whole pipeline holds, so no beat is
lost or repeated.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from .contract import ContractTiming, TimingContract
from .fixed import Q, convert, convert_raw, exact_integers
from .model import ModelledComponent
from .ports import lanes_signature

__all__ = ["Sum", "Accumulate"]


def _growth(terms):
    """Integer bits that a sum of ``terms`` values needs beyond the width of one value."""
    return (terms - 1).bit_length()


class _Reduction(ContractTiming):
    """The model of a reduction core: its formats, contract, exact sums and resources.

    Parameters
    ----------
    in_format, out_format : Q
        Formats of the input stream ``a`` and of the output stream ``o``.
    group : int
        Beats per firing.
    lanes : int
        Elements per input beat.
    across_lanes : bool
        Add the lanes of each beat together (one output lane) or keep them apart (``lanes``
        output lanes).
    rounding, overflow : str
        How the exact sum is brought to ``out_format`` (see :func:`cores.fixed.convert`).
    """

    def __init__(self, in_format, out_format, group, *, lanes, across_lanes, rounding, overflow):
        if group < 1:
            raise ValueError(f"group must be at least 1 beat, not {group}")
        self._in_format = in_format
        self._out_format = out_format
        self._group = group
        self._lanes = lanes
        self._across_lanes = across_lanes
        self._rounding = rounding
        self._overflow_mode = overflow
        terms = group * lanes if across_lanes else group
        self._acc_format = Q(in_format.int_bits + _growth(terms), in_format.frac_bits)
        self._tree_depth = _growth(lanes) if across_lanes else 0
        self.contract = TimingContract(reads=((("a",), group),), writes=(self.latency,))

    @property
    def in_format(self):
        return self._in_format

    @property
    def out_format(self):
        return self._out_format

    @property
    def acc_format(self):
        """Format of the exact sum, before the rounding to ``out_format``."""
        return self._acc_format

    @property
    def group(self):
        return self._group

    @property
    def lanes(self):
        return self._lanes

    @property
    def out_lanes(self):
        return 1 if self._across_lanes else self._lanes

    @property
    def latency(self):
        """Cycles from a firing's last accepted beat to its output beat."""
        return self._tree_depth + 2

    @property
    def multipliers(self):
        return ()

    @property
    def memories(self):
        return ()

    def reference(self, raw):
        """Bit-exact model: raw outputs for raw inputs ``raw[..., n]``, ``n`` elements in stream order.

        ``n`` must hold whole firings (``group * lanes`` elements); the result has ``n / group``
        elements per row (``Accumulate``) or ``n / (group * lanes)`` (``Sum``).
        """
        raw = exact_integers(raw, self._acc_format.width + 1)
        firings = raw.shape[-1] // (self._group * self._lanes)
        beats = raw.reshape(*raw.shape[:-1], firings, self._group, self._lanes)
        sums = beats.sum(axis=(-2, -1)) if self._across_lanes else beats.sum(axis=-2).reshape(*raw.shape[:-1], -1)
        return convert_raw(sums, self._acc_format, self._out_format,
                           rounding=self._rounding, overflow=self._overflow_mode)[0]


class _ReductionCore(ModelledComponent):
    """Shared pipeline: an optional registered adder tree across lanes, accumulators, rounding."""

    def members(self):
        return {
            "a": In(lanes_signature(self._in_format, self._lanes)),
            "o": Out(lanes_signature(self._out_format, self.out_lanes)),
            "overflow": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        fire = self.a.valid & advance
        m.d.comb += self.a.ready.eq(advance)

        beat = Signal(range(self._group))
        with m.If(fire):
            m.d.sync += beat.eq(Mux(beat == self._group - 1, 0, beat + 1))

        # Each beat travels with its own valid/first/last flags, so bubbles from input gaps can
        # sit anywhere in the pipeline.
        valid, first, last = fire, beat == 0, beat == self._group - 1
        terms = [self.a.payload[lane] for lane in range(self._lanes)]
        if self._across_lanes:
            for level in range(self._tree_depth):
                next_terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                              for i in range(0, len(terms), 2)]
                registered = [Signal(value.shape(), name=f"tree{level}_{i}") for i, value in enumerate(next_terms)]
                flags = [Signal(name=f"tree{level}_{flag}") for flag in ("valid", "first", "last")]
                with m.If(advance):
                    m.d.sync += [reg.eq(value) for reg, value in zip(registered, next_terms)]
                    m.d.sync += [reg.eq(value) for reg, value in zip(flags, (valid, first, last))]
                terms = registered
                valid, first, last = flags

        done = Signal()
        with m.If(advance):
            m.d.sync += [done.eq(valid & last), self.o.valid.eq(done)]
        lane_overflow = []
        for lane, term in enumerate(terms):
            acc = Signal(self._acc_format.shape, name=f"acc{lane}")
            with m.If(advance & valid):
                m.d.sync += acc.eq(Mux(first, 0, acc) + term)
            rounded, overflowed = convert(acc, self._acc_format, self._out_format,
                                          rounding=self._rounding, overflow=self._overflow_mode)
            with m.If(advance & done):
                m.d.sync += self.o.payload[lane].eq(rounded)
            lane_overflow.append(overflowed)
        with m.If(advance & done & Cat(lane_overflow).any()):
            m.d.sync += self.overflow.eq(1)
        return m


class SumModel(_Reduction):
    """The model of :class:`Sum`."""

    def __init__(self, in_format, out_format, group, *, lanes=1, rounding="nearest", overflow="saturate"):
        super().__init__(in_format, out_format, group, lanes=lanes, across_lanes=True,
                         rounding=rounding, overflow=overflow)


class Sum(_ReductionCore, SumModel):
    """Sum of every element of ``group`` consecutive beats: one scalar per firing.

    With ``lanes=1`` each output token is the sum of ``group`` consecutive input tokens (the sum
    over the innermost axis of a row-major tensor stream of rows of ``group`` elements). With more
    lanes, the sum covers all lanes of all ``group`` beats (rows of ``group * lanes`` elements).

    Parameters
    ----------
    in_format, out_format : Q
        Formats of the input and output streams.
    group : int
        Input beats per output token.
    lanes : int
        Elements per input beat.
    rounding, overflow : str
        How the exact sum is brought to ``out_format`` (see :func:`cores.fixed.convert`).

    Ports
    -----
    a : In(stream.Signature(ArrayLayout(in_format.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(out_format.shape, 1)))
    overflow : Out(1)
        Sticky: set once any sum did not fit ``out_format``.

    Timing
    ------
    ``TimingContract(reads=((("a",), group),), writes=(ceil(log2(lanes)) + 2,))``, cooldown 0:
    a beat every cycle. The lanes of a beat are added by a registered adder tree, one level per
    cycle, and the beats by one accumulator of ``in_format.width + ceil(log2(group * lanes))``
    bits.

    Error
    -----
    At most 1/2 ulp of ``out_format`` (none when it holds ``acc_format``), unless saturated.
    """


class AccumulateModel(_Reduction):
    """The model of :class:`Accumulate`."""

    def __init__(self, in_format, out_format, group, *, lanes=1, rounding="nearest", overflow="saturate"):
        super().__init__(in_format, out_format, group, lanes=lanes, across_lanes=False,
                         rounding=rounding, overflow=overflow)


class Accumulate(_ReductionCore, AccumulateModel):
    """Lane-by-lane sum of ``group`` consecutive beats: one beat of ``lanes`` elements per firing.

    Output lane ``l`` is the sum of lane ``l`` of the ``group`` beats of a firing: the sum over an
    outer axis of a row-major tensor stream whose inner axis is spread over the lanes.

    Parameters
    ----------
    in_format, out_format : Q
        Formats of the input and output streams.
    group : int
        Input beats per output beat.
    lanes : int
        Elements per beat, on both streams.
    rounding, overflow : str
        How the exact sums are brought to ``out_format`` (see :func:`cores.fixed.convert`).

    Ports
    -----
    a : In(stream.Signature(ArrayLayout(in_format.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(out_format.shape, lanes)))
    overflow : Out(1)
        Sticky: set once any sum did not fit ``out_format``.

    Timing
    ------
    ``TimingContract(reads=((("a",), group),), writes=(2,))``, cooldown 0: a beat every cycle.
    One accumulator of ``in_format.width + ceil(log2(group))`` bits per lane.

    Error
    -----
    At most 1/2 ulp of ``out_format`` (none when it holds ``acc_format``), unless saturated.
    """
