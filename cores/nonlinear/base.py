"""The shared base of the nonlinear cores: exact constants, the pipeline, range reduction and table."""

import math
from fractions import Fraction

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib.wiring import In, Out

from ..contract import ContractTiming, TimingContract
from ..fixed import Q
from ..model import ModelledComponent, Storage
from ..multiply import DSP48E2, Multiplier
from ..pipelining import Pipelining
from ..ports import lanes_signature
from .table import FIT_TARGET_ULPS, GUARD_BITS, _choose_table, _objects, _register, _signed_shape, _Table

def _arctan_inverse(n, bits, hyperbolic=False):
    """``atan(1/n)`` (or ``atanh(1/n)``) times ``2**bits``, by its Taylor series in integers."""
    total, power, k, sign = 0, (1 << bits) // n, 1, 1
    while power:
        total += sign * (power // k)
        power //= n * n
        k += 2
        sign = sign if hyperbolic else -sign
    return total


def _pi(bits):
    """pi as a Fraction, within ``2**-bits`` (Machin's formula)."""
    guard = bits + 16
    return Fraction(16 * _arctan_inverse(5, guard) - 4 * _arctan_inverse(239, guard), 1 << guard)


def _ln2(bits):
    """ln 2 as a Fraction, within ``2**-bits`` (``2 atanh(1/3)``)."""
    guard = bits + 16
    return Fraction(2 * _arctan_inverse(3, guard, hyperbolic=True), 1 << guard)


def _fixed_constant(value, min_frac, frac):
    """``(raw, frac)``: ``value`` rounded to ``frac`` fractional bits, with trailing zero bits
    dropped down to ``min_frac`` (so exact constants such as powers of two stay narrow).

    ``value(bits)`` returns the constant as a Fraction within ``2**-bits``.
    """
    raw = math.floor(value(frac + 64) * (1 << frac) + Fraction(1, 2))
    while frac > min_frac and raw % 2 == 0:
        raw //= 2
        frac -= 1
    return raw, frac


def _odd_part(constant):
    """``(odd, shift)`` with ``constant == odd << shift`` and ``odd`` odd (or 0)."""
    shift = (constant & -constant).bit_length() - 1 if constant else 0
    return constant >> shift, shift


def _constant_multiplier(a_shape, constant, dsp_shape, pipelining):
    """The :class:`~cores.multiply.Multiplier` of ``a * constant`` as :func:`_constant_product`
    builds it: by the odd part of the constant, so that a power of two is a wire, not a DSP."""
    return Multiplier(a_shape, _signed_shape([_odd_part(constant)[0]]), dsp_shape=dsp_shape, pipelining=pipelining)


def _constant_product(m, advance, multiplier, x, constant, name):
    odd, shift = _odd_part(constant)
    return multiplier.build(m, x, Const(odd, multiplier.b_shape), enable=advance, shift=shift, name=name)


def _point(frac_bits):
    """A format with ``frac_bits`` fractional bits for :func:`convert`, where only the binary point
    of the source matters."""
    return Q(64, frac_bits)


class _Nonlinear(ContractTiming):
    """The model of a nonlinear core: its constants, contract, bit-exact reference and resources.

    Subclasses implement :meth:`_configure` (derive constants and set ``self.latency``),
    :meth:`_model` (the integer model) and :meth:`_lane` (the same in hardware, which only the
    core's elaboration calls).
    """

    lane_multipliers = ()
    """Every :class:`~cores.multiply.Multiplier` one lane builds, in pipeline order (each lane
    builds its own)."""

    def __init__(self, in_format, out_format, *, scale=1.0, lanes=1, dsp_shape=DSP48E2, pipelining=Pipelining()):
        self.in_format = Q.parse(in_format)
        self.out_format = Q.parse(out_format)
        self.scale = float(scale)
        self.lanes = lanes
        self.dsp_shape = tuple(dsp_shape)
        self.pipelining = pipelining
        self._configure()
        self.contract = TimingContract.pipeline(("a",), self.latency)

    @property
    def multipliers(self):
        return self.lane_multipliers * self.lanes

    @property
    def memories(self):
        table = getattr(self, "table", None)
        return () if table is None else (Storage(table.entry_bits, table.segments, True, self.lanes),)

    def reference(self, a):
        """The raw outputs the hardware gives for raw inputs ``a`` (any shape; Python ints)."""
        return self._model(_objects(a))[0]

    def reference_overflow(self, a):
        """For each input, whether its result did not fit ``out_format`` (sets ``overflow``)."""
        return np.asarray(self._model(_objects(a))[1], dtype=bool)

    def _configure(self):
        """Derive the constants from the formats and the scale; set ``self.latency``."""

    def _model(self, x):
        raise NotImplementedError

    def _prepare(self, m):
        """Add what the lanes share (called once per elaboration, before :meth:`_lane`)."""

    def _lane(self, m, advance, x, lane):
        """Return ``(value, overflowed)`` of one lane, combinational after ``latency - 1`` stages."""
        raise NotImplementedError


class _NonlinearCore(ModelledComponent):
    """Shared stream handling of the nonlinear cores: a pipeline of ``latency`` stages that all
    hold while the output is back-pressured."""

    def members(self):
        return {
            "a": In(lanes_signature(self.in_format, self.lanes)),
            "o": Out(lanes_signature(self.out_format, self.lanes)),
            "overflow": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.a.ready.eq(advance)
        valid = self.a.valid & advance
        for stage in range(1, self.latency):
            valid = _register(m, advance, valid, f"valid{stage}")
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid)
        self._prepare(m)
        overflows = []
        for lane in range(self.lanes):
            value, overflowed = self._lane(m, advance, self.a.payload[lane], lane)
            with m.If(advance):
                m.d.sync += self.o.payload[lane].eq(value)
            overflows.append(overflowed)
        with m.If(advance & valid & Cat(overflows).any()):
            m.d.sync += self.overflow.eq(1)
        return m


class _TableFunction(_Nonlinear):
    """A function evaluated by range reduction, a table and a reconstruction.

    ``t = scale * a / unit`` is formed as ``a_raw * C`` with ``P`` fractional bits and read with
    ``A = arg_bits`` fractional bits. ``C`` is ``scale * 2**-F / unit`` (``F`` the input format's
    fractional bits) rounded to ``P = A + bits(largest relevant |a_raw|)`` fractional bits, fewer
    if it is exact: its rounding then moves ``t`` by less than ``2**-(A+1)``. ``A`` is chosen so
    that this, and the midpoint offset's error of at most ``2**-(A+1)``, each move the result by at
    most 1/8 output ulp. (:class:`Sqrt` reduces by a normalization instead: it sizes only the
    table, with :meth:`_size_table`.)

    ``order`` (1, 2 or 3) fixes the polynomial order of the table; by default the lowest order
    whose table is small enough is used (see ``MAX_SEGMENTS``).

    ``reduction`` is the :class:`~cores.multiply.Multiplier` of ``a_raw * C``: ``in.width`` bits
    by the odd part of ``C`` (a power of two is a shift, no DSP); none for :class:`Sqrt`.
    ``lane_multipliers`` lists it and then the Horner steps' (``table.multipliers`` from the last).
    """

    reduction = None

    def __init__(self, in_format, out_format, *, scale=1.0, lanes=1, order=None, dsp_shape=DSP48E2,
                 pipelining=Pipelining()):
        if order not in (None, 1, 2, 3):
            raise ValueError(f"table order must be 1, 2 or 3, not {order!r}")
        self.requested_order = order
        super().__init__(in_format, out_format, scale=scale, lanes=lanes, dsp_shape=dsp_shape, pipelining=pipelining)

    def _setup(self, function, extent, unit, derivative, table_frac, largest_input, round_bias,
               overhead_stages):
        """Size the table and the reduction.

        ``function`` on ``[0, extent)`` of ``t``; ``unit`` a callable giving the unit of ``t`` as a
        Fraction; ``derivative`` bounds ``|function'|``; ``table_frac`` is the table's target
        precision (one output ulp is at most ``2**-table_frac`` of the table's value);
        ``largest_input`` bounds the raw inputs whose result needs full precision.
        """
        self._size_table(function, extent, derivative, table_frac, round_bias)
        input_ulp = Fraction(2) ** -self.in_format.frac_bits
        magnitude = max(1, math.ceil(largest_input)).bit_length()
        self.constant, self.constant_frac = _fixed_constant(
            lambda bits: Fraction(self.scale) * input_ulp / unit(bits + 8),
            self.arg_bits, self.arg_bits + magnitude)
        self.reduction = _constant_multiplier(self.in_format.shape, self.constant, self.dsp_shape, self.pipelining)
        self.latency = self.reduction.latency + self.table.latency + overhead_stages

    def _size_table(self, function, extent, derivative, table_frac, round_bias):
        """Choose the table of ``function`` on ``[0, extent)`` of ``t`` and ``A = arg_bits``, the
        fractional bits of ``t`` it reads (arguments as :meth:`_setup`)."""
        target = FIT_TARGET_ULPS * 2.0 ** -table_frac
        order, resolution = _choose_table(function, extent, target, self.requested_order)
        self.arg_bits = max(resolution, table_frac + 2 + math.ceil(math.log2(derivative)))
        self.table = _Table(function, extent, resolution, order, self.arg_bits - resolution,
                            table_frac + GUARD_BITS, round_bias, self.dsp_shape, self.pipelining)

    def _prepare(self, m):
        self._memory = m.submodules.table = self.table.memory()

    @property
    def lane_multipliers(self):
        reduction = (self.reduction,) if self.reduction is not None else ()
        return reduction + tuple(reversed(self.table.multipliers))

    @property
    def table_segments(self):
        return self.table.segments

    @property
    def table_order(self):
        return self.table.order

    def _reduce_model(self, x):
        """``L``: the natural variable ``t`` floored to ``A`` fractional bits (signed)."""
        return (x * self.constant) >> (self.constant_frac - self.arg_bits)

    def _reduce(self, m, advance, x, lane):
        """The constant multiply (``reduction.latency`` stages) and ``L`` read from its result,
        sign-extended to at least ``A + 2`` bits so that the bits above the fraction (quadrant,
        sign) are there to slice."""
        product = _constant_product(m, advance, self.reduction, x, self.constant, f"product{lane}")
        extended = Signal(signed(max(len(product), self.constant_frac + 2)), name=f"reduced{lane}")
        m.d.comb += extended.eq(product)
        return extended[self.constant_frac - self.arg_bits:].as_signed()

    def _offset(self, folded):
        """Segment index and odd midpoint offset of an ``A``-bit folded variable (model)."""
        m = self.table.offset_bits
        return folded >> m, 2 * (folded & ((1 << m) - 1)) + 1

    def _offset_hw(self, folded):
        m = self.table.offset_bits
        return folded[m:], Cat(Const(1, 1), folded[:m])
