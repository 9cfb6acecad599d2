"""Element-wise nonlinear functions: sin, cos, tanh, sigmoid, softplus, exp, sqrt, relu and its
derivative step.

Every core here is a token pipeline that computes ``o = f(scale * a)`` lane by lane, where
``scale`` is a real constant folded into the core (a SIREN layer computes ``sin(30 * z)``). Sin,
cos, tanh, sigmoid, softplus, exp and sqrt share one structure:

1. *Range reduction.* One constant multiply maps the raw input to the function's natural
   variable ``t``, in fixed point with ``A`` fractional bits: quarter turns for sin and cos,
   ``z / ln 2`` for exp, ``z`` itself for tanh, sigmoid and softplus. The constant carries
   ``scale``, so the reduction is exact up to the constant's rounding, and it has enough
   fractional bits that the error it adds over the whole input range stays below ``2**-(A+1)``
   of ``t``. Sqrt instead normalizes its input by an even shift to ``t`` in [1, 4).
2. *Table.* ``t`` (folded by the function's symmetry) splits into a segment index and an offset
   ``s`` within the segment. A read-only memory holds one polynomial per segment (linear,
   quadratic or cubic in ``s``), evaluated in integer arithmetic by Horner's rule, one multiply
   after another. The offset is taken at the middle of its last bit, so folding ``t`` by a
   symmetry is a bitwise complement and the truncation of ``t`` is unbiased.
3. *Reconstruction.* Quadrant sign (sin), odd or complementary symmetry (tanh, sigmoid),
   saturation beyond the table's range (tanh, sigmoid, softplus), adding ``max(z, 0)``
   (softplus), or the power-of-two scaling (exp, sqrt), then rounding to the output format.

Every multiply is a :class:`~cores.multiply.Multiplier`: a product that fits one DSP48E2 (27 × 18
bits signed) is one registered ``*``, a wider one is split into DSP-sized partial products and
takes ``multiplier.latency`` stages. The widths are known from the formats, so each core's latency
(and :attr:`~_Nonlinear.multipliers`, which :func:`inrarch.resources.core_dsps` counts) is known
before elaboration.

Every core has a :meth:`~_Nonlinear.reference` method that returns the exact raw outputs the
hardware gives, computed with Python integers; the tests check the hardware against it bit for
bit and check it against float64 to measure the error. See ``docs/nonlinear.md`` for the measured
errors.
"""

import math
from fractions import Fraction

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .contract import TimingContract
from .fixed import Q, convert, convert_raw
from .multiply import Multiplier
from .ports import lanes_signature

__all__ = ["Sin", "Cos", "Tanh", "Sigmoid", "Softplus", "Exp", "Sqrt", "Relu", "Step"]

# Error allowed to the fitted polynomials, in output ulps. Measured totals then stay near 1 ulp
# (0.5 rounding, the fit, reduction and arithmetic errors); a looser fit halves some tables.
FIT_TARGET_ULPS = 0.5
# Bits kept below the table's target precision inside the polynomial evaluation: Horner's rule
# of order n (its truncations and coefficient roundings) then adds at most about
# 2n * 2**-GUARD_BITS output ulps.
GUARD_BITS = 4
# Largest table of each polynomial order the automatic sizing picks: each order costs one more
# multiply and buys much smaller tables (tanh at 24 bits: 150 cubic entries, or 1198 quadratic).
MAX_SEGMENTS = {1: 256, 2: 1024, 3: 2048}
# Largest table when the caller chooses the order.
MAX_ANY_SEGMENTS = 4096
# The tables are fitted and balanced in float64, exact to about 2**-50 of their values.
MAX_TABLE_FRAC_BITS = 46


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


def _constant_multiplier(a_shape, constant):
    """The :class:`~cores.multiply.Multiplier` of ``a * constant`` as :func:`_constant_product`
    builds it: by the odd part of the constant, so that a power of two is a wire, not a DSP."""
    return Multiplier(a_shape, _signed_shape([_odd_part(constant)[0]]))


def _constant_product(m, advance, multiplier, x, constant, name):
    odd, shift = _odd_part(constant)
    return multiplier.build(m, x, Const(odd, multiplier.b_shape), enable=advance, shift=shift, name=name)


def _objects(raw):
    """Raw inputs as a numpy array of Python ints (exact at any width)."""
    if not np.size(raw):
        return np.asarray(raw, dtype=object)
    return np.vectorize(int, otypes=[object])(np.asarray(raw))


def _register(m, advance, value, name, shape=None):
    """``value`` delayed by one pipeline stage (held while the pipeline stalls)."""
    reg = Signal(shape or value.shape(), name=name)
    with m.If(advance):
        m.d.sync += reg.eq(value)
    return reg


def _delay(m, advance, value, stages, name):
    for stage in range(stages):
        value = _register(m, advance, value, f"{name}_d{stage}")
    return value


def _point(frac_bits):
    """A format with ``frac_bits`` fractional bits for :func:`convert`, where only the binary point
    of the source matters."""
    return Q(64, frac_bits)


def _signed_shape(values):
    return signed(max((abs(int(v)).bit_length() for v in values), default=0) + 1)


def _range_shape(low, high):
    """The narrowest shape, of at least one bit, that holds every integer in ``[low, high]``."""
    return Shape.cast(range(low, max(high, 1) + 1))


class _Table:
    """A piecewise polynomial of ``function`` on ``[0, extent)`` in a read-only memory.

    The domain is cut into segments of width ``2**-resolution``. Segment ``i`` holds a polynomial
    ``c0 + c1*s + ... + cn*s**n`` (``n = order``) in the offset ``s`` in [0, 1) within the
    segment, fitted at Chebyshev nodes; ``c0`` is then re-centred so that the integer evaluation's
    error over the segment (fit, coefficient rounding and truncations together) is balanced
    around zero.

    The evaluation takes the segment index and an odd integer ``v`` of ``offset_bits + 1`` bits:
    ``s = v / 2**(offset_bits + 1)``, the middle of an ``offset_bits``-bit offset. It is Horner's
    rule, ``acc = c_j + acc * s`` from ``j = n-1`` down to 0, each product floored to
    ``frac_bits`` fractional bits, the coefficients' fractional bits. The inner products use only
    the top ``multiplier_bits[j]`` bits of ``v`` that their small accumulators need (an error
    below half a unit). ``round_bias`` is added to ``c0`` so that a later truncation of the result
    rounds to nearest.

    ``multipliers[j]`` is the :class:`~cores.multiply.Multiplier` of the step that adds ``c_j``:
    the accumulator, held at a range that bounds it over the whole table (interval arithmetic on
    the coefficients), times the ``multiplier_bits[j]`` unsigned bits of ``v``, or, when that is
    all of the odd ``v``, times ``v >> 1`` as ``acc * v = (acc * (v >> 1) << 1) + acc``: the same
    integer from a port one bit narrower. ``latency`` is the memory read, ``multipliers[j].latency``
    stages per multiply (1 where it fits one DSP) and the final add.
    """

    def __init__(self, function, extent, resolution, order, offset_bits, frac_bits, round_bias):
        if frac_bits > MAX_TABLE_FRAC_BITS:
            raise ValueError(f"a table of {frac_bits} fractional bits is beyond the float64 fit "
                             f"(at most {MAX_TABLE_FRAC_BITS}); use a narrower output format")
        self.order = order
        self.offset_bits = offset_bits
        self.frac_bits = frac_bits
        self.segments = math.ceil(extent * (1 << resolution))

        fitted = _fit(function, self.segments, resolution, order) * 2.0 ** frac_bits
        self.coefficients = [None] + [_objects(np.round(fitted[:, j])) for j in range(1, order + 1)]
        mv = offset_bits + 1
        self.multiplier_bits = [mv] * (order + 1)
        bound = 0
        for j in range(order - 1, 0, -1):
            bound += max(abs(int(c)) for c in self.coefficients[j + 1])
            self.multiplier_bits[j] = min(mv, bound.bit_length() + 1)

        samples = _offset_samples(mv)
        index = np.repeat(np.arange(self.segments), len(samples))
        v = np.tile(samples, self.segments)
        self.coefficients[0] = _objects(np.zeros(self.segments, dtype=np.int64))
        partial = np.asarray(self._evaluate(index, _objects(v)), dtype=np.float64)
        exact = function((index + v / 2.0 ** mv) / 2.0 ** resolution) * 2.0 ** frac_bits
        miss = (exact - partial).reshape(self.segments, len(samples))
        centre = np.floor((miss.max(axis=1) + miss.min(axis=1)) / 2 + 0.5)
        self.coefficients[0] = _objects(centre) + round_bias

        # a step that takes all of the odd v multiplies by v >> 1 instead (see evaluate)
        self.multipliers = [Multiplier(shape, unsigned(bits - 1 if bits == mv and bits > 1 else bits))
                            for shape, bits in zip(self._accumulator_shapes(), self.multiplier_bits)]
        self.latency = 1 + sum(multiplier.latency for multiplier in self.multipliers) + 1
        self.layout = data.StructLayout({f"c{j}": _signed_shape(c) for j, c in enumerate(self.coefficients)})
        self.rows = [{f"c{j}": int(c[i]) for j, c in enumerate(self.coefficients)} for i in range(self.segments)]

    @property
    def entry_bits(self):
        return self.layout.size

    def _accumulator_shapes(self):
        """``shapes[j]``: a shape that holds every accumulator the multiply adding ``c_j`` takes,
        bounded segment by segment (``c_j + floor(acc * w / 2**bits)`` with ``w`` in
        ``[0, 2**bits)``)."""
        low = high = [int(c) for c in self.coefficients[self.order]]
        shapes = [None] * self.order
        for j in range(self.order - 1, -1, -1):
            shapes[j] = _range_shape(min(low), max(high))
            bits = self.multiplier_bits[j]
            top = (1 << bits) - 1
            low = [int(c) + (min(lo * top, 0) >> bits) for c, lo in zip(self.coefficients[j], low)]
            high = [int(c) + (max(hi * top, 0) >> bits) for c, hi in zip(self.coefficients[j], high)]
        return shapes

    def _evaluate(self, index, v):
        index = np.asarray(index, dtype=np.int64)
        mv = self.offset_bits + 1
        acc = self.coefficients[self.order][index]
        for j in range(self.order - 1, -1, -1):
            bits = self.multiplier_bits[j]
            acc = self.coefficients[j][index] + ((acc * (v >> (mv - bits))) >> bits)
        return acc

    def reference(self, index, v):
        """Exact integer result for segment indices ``index`` (clamped to the table) and odd
        offsets ``v``."""
        return self._evaluate(np.minimum(np.asarray(index, dtype=np.int64), self.segments - 1), v)

    def memory(self):
        """A new read-only memory holding the table (one per elaboration, shared by the lanes)."""
        return Memory(shape=self.layout, depth=self.segments, init=self.rows)

    def evaluate(self, m, advance, memory, index, v, name):
        """Hardware evaluation with a new read port of ``memory``: ``index`` and ``v`` are sampled
        in this stage, the result is a register ``self.latency`` stages later."""
        port = memory.read_port(domain="sync")
        m.d.comb += [port.addr.eq(index), port.en.eq(advance)]
        mv = self.offset_bits + 1
        v = _register(m, advance, v, f"{name}_v")
        coefficients = [port.data[f"c{j}"] for j in range(self.order + 1)]
        acc = coefficients[self.order]
        for j in range(self.order - 1, -1, -1):
            bits, multiplier = self.multiplier_bits[j], self.multipliers[j]
            # the addition of c_j feeds the next multiplier (a DSP pre-adder), narrowed to the
            # accumulator's range, which is what the multiplier's pieces were cut for
            operand = Signal(multiplier.a_shape, name=f"{name}_acc{j}")
            m.d.comb += operand.eq(acc)
            if multiplier.b_shape.width < bits:  # acc * v for the odd v: its low bit is the addend
                product = multiplier.build(m, operand, v[1:], enable=advance, addend=operand, shift=1,
                                           name=f"{name}_p{j}")
            else:
                product = multiplier.build(m, operand, v[mv - bits:], enable=advance, name=f"{name}_p{j}")
            coefficients = [_delay(m, advance, c, multiplier.latency, f"{name}_c{i}_{j}")
                            for i, c in enumerate(coefficients[:j + 1])]
            v = _delay(m, advance, v, multiplier.latency, f"{name}_v{j}")
            acc = coefficients[j] + (product >> bits)
        return _register(m, advance, acc, f"{name}_y")


def _fit(function, segments, resolution, order):
    """Per-segment polynomial coefficients (columns ``c0 .. c_order`` in the offset s) interpolating
    ``function`` at Chebyshev nodes of each segment."""
    nodes = 0.5 - 0.5 * np.cos((2 * np.arange(order + 1) + 1) * np.pi / (2 * (order + 1)))
    values = function((np.arange(segments)[:, None] + nodes[None, :]) / 2.0 ** resolution)
    vandermonde = nodes[:, None] ** np.arange(order + 1)[None, :]
    return np.linalg.solve(vandermonde, values.T).T


def _fit_error(function, segments, resolution, order):
    coefficients = _fit(function, segments, resolution, order)
    s = np.linspace(0.0, 1.0, 33)
    approx = sum(coefficients[:, [j]] * s[None, :] ** j for j in range(order + 1))
    exact = function((np.arange(segments)[:, None] + s[None, :]) / 2.0 ** resolution)
    return float(np.max(np.abs(approx - exact)))


def _offset_samples(mv):
    """Odd offsets ``v`` of ``mv`` bits on which a segment's error is balanced: all of them when
    there are few, else 65 spread over the segment, its two ends included."""
    if mv <= 7:
        return np.arange(1, 1 << mv, 2, dtype=np.float64)
    spread = np.floor(np.linspace(0, (1 << (mv - 1)) - 1, 65))
    return 2 * spread + 1


def _choose_table(function, extent, target, order=None):
    """``(order, resolution)`` of the smallest table whose fit error is below ``target``.

    With ``order=None``, linear, quadratic then cubic polynomials are tried up to
    ``MAX_SEGMENTS[order]`` segments each; with a given order, up to ``MAX_ANY_SEGMENTS``.
    """
    limits = MAX_SEGMENTS if order is None else {order: MAX_ANY_SEGMENTS}
    for order, limit in limits.items():
        resolution = 0
        while math.ceil(extent * (1 << resolution)) <= limit:
            if _fit_error(function, math.ceil(extent * (1 << resolution)), resolution, order) <= target:
                return order, resolution
            resolution += 1
    raise ValueError(f"no table of at most {limit} segments is accurate enough; use a narrower output "
                     f"format{'' if len(limits) > 1 else ' or a higher order'}")


class _Nonlinear(wiring.Component):
    """Shared stream handling of the nonlinear cores: a pipeline of ``latency`` stages that all
    hold while the output is back-pressured.

    Subclasses implement :meth:`_configure` (derive constants and set ``self.latency``),
    :meth:`_model` (the integer model) and :meth:`_lane` (the same in hardware).
    """

    multipliers = ()
    """Every :class:`~cores.multiply.Multiplier` one lane builds, in pipeline order (each lane
    builds its own): the core's DSP slices are ``lanes`` times their ``dsps``."""

    def __init__(self, in_format, out_format, *, scale=1.0, lanes=1):
        self.in_format = Q.parse(in_format)
        self.out_format = Q.parse(out_format)
        self.scale = float(scale)
        self.lanes = lanes
        self._configure()
        super().__init__({
            "a": In(lanes_signature(self.in_format, lanes)),
            "o": Out(lanes_signature(self.out_format, lanes)),
            "overflow": Out(1),
        })
        self.contract = TimingContract.pipeline(("a",), self.latency)

    def reference(self, raw_inputs):
        """The raw outputs the hardware gives for ``raw_inputs`` (any shape; Python ints)."""
        return self._model(_objects(raw_inputs))[0]

    def reference_overflow(self, raw_inputs):
        """For each input, whether its result did not fit ``out_format`` (sets ``overflow``)."""
        return np.asarray(self._model(_objects(raw_inputs))[1], dtype=bool)

    def _configure(self):
        """Derive the constants from the formats and the scale; set ``self.latency``."""

    def _model(self, x):
        raise NotImplementedError

    def _prepare(self, m):
        """Add what the lanes share (called once per elaboration, before :meth:`_lane`)."""

    def _lane(self, m, advance, x, lane):
        """Return ``(value, overflowed)`` of one lane, combinational after ``latency - 1`` stages."""
        raise NotImplementedError

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
    ``multipliers`` lists it and then the Horner steps' (``table.multipliers`` from the last).
    """

    reduction = None

    def __init__(self, in_format, out_format, *, scale=1.0, lanes=1, order=None):
        if order not in (None, 1, 2, 3):
            raise ValueError(f"table order must be 1, 2 or 3, not {order!r}")
        self.requested_order = order
        super().__init__(in_format, out_format, scale=scale, lanes=lanes)

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
        self.reduction = _constant_multiplier(self.in_format.shape, self.constant)
        self.latency = self.reduction.latency + self.table.latency + overhead_stages

    def _size_table(self, function, extent, derivative, table_frac, round_bias):
        """Choose the table of ``function`` on ``[0, extent)`` of ``t`` and ``A = arg_bits``, the
        fractional bits of ``t`` it reads (arguments as :meth:`_setup`)."""
        target = FIT_TARGET_ULPS * 2.0 ** -table_frac
        order, resolution = _choose_table(function, extent, target, self.requested_order)
        self.arg_bits = max(resolution, table_frac + 2 + math.ceil(math.log2(derivative)))
        self.table = _Table(function, extent, resolution, order, self.arg_bits - resolution,
                            table_frac + GUARD_BITS, round_bias)

    def _prepare(self, m):
        self._memory = m.submodules.table = self.table.memory()

    @property
    def multipliers(self):
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


class _Sinusoid(_TableFunction):
    """sin or cos of ``scale * a``: shared by :class:`Sin` and :class:`Cos`."""

    quarter_turns = 0

    def _configure(self):
        self._setup(lambda t: np.sin(np.pi / 2 * t), 1.0, lambda bits: _pi(bits) / 2, np.pi / 2,
                    self.out_format.frac_bits, 2.0 ** (self.in_format.width - 1),
                    1 << (GUARD_BITS - 1), overhead_stages=1)

    def _model(self, x):
        A = self.arg_bits
        turns = self._reduce_model(x)
        quadrant = ((turns >> A) + self.quarter_turns) & 3
        mirror, negate = quadrant & 1, quadrant >> 1
        mask = (1 << A) - 1
        index, v = self._offset((turns & mask) ^ (mirror * mask))
        magnitude = self.table.reference(index, v) >> GUARD_BITS
        out = np.where(negate == 1, -magnitude, magnitude)
        return convert_raw(out, _point(self.out_format.frac_bits), self.out_format)

    def _lane(self, m, advance, x, lane):
        A = self.arg_bits
        turns = self._reduce(m, advance, x, lane)
        quadrant = (turns[A:A + 2] + self.quarter_turns)[:2]
        index, v = self._offset_hw(turns[:A] ^ quadrant[0].replicate(A))
        y = self.table.evaluate(m, advance, self._memory, index, v, f"table{lane}")
        negate = _delay(m, advance, quadrant[1], self.table.latency, f"negate{lane}")
        magnitude = y >> GUARD_BITS
        return convert(Mux(negate, -magnitude, magnitude), _point(self.out_format.frac_bits), self.out_format)


class Sin(_Sinusoid):
    """``o = sin(scale * a)``, element-wise.

    The input is multiplied by a constant ``scale / (pi/2)`` so that ``a_raw * C`` is the angle in
    quarter turns; its integer part modulo 4 is the quadrant, and its ``A = out.frac_bits + 3``
    fractional bits index a quarter-wave table of ``sin(pi/2 * t)``, mirrored (bitwise complement)
    in odd quadrants and negated in the lower half. The reduction is valid over the full input
    range: ``C`` has ``A + in.width`` fractional bits (fewer only if exact), so its rounding moves
    the angle by less than ``2**-(A+1)`` quarter turns even for the largest input.

    Parameters
    ----------
    in_format, out_format : Q
        Formats of ``a`` and ``o``. ``o`` needs 2 integer bits to hold ``sin = ±1`` without
        saturating.
    scale : float
        The constant multiplying the input (SIREN's ``omega_0``).
    lanes : int
        Elements per beat.
    order : 1, 2, 3 or None
        Polynomial order of the quarter-wave table; None (default) picks the lowest order whose
        table is small enough (quadratic with 512 entries at q2.30; ``order=3`` gives 64 entries).

    Ports
    -----
    a : In(stream.Signature(ArrayLayout(in_format.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(out_format.shape, lanes)))
    overflow : Out(1)
        Sticky: set once a result did not fit ``out_format`` (only ``±1`` in a 1-integer-bit format).

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``, initiation interval 1: the reduction product,
    the table read, one multiply per order, the final add, the sign and rounding. Latency
    ``4 + order`` when every product fits one DSP; each product split over ``p`` DSPs adds
    ``ceil(log2 p)`` stages: ``3 + sum(m.latency for m in multipliers)`` (10 for q16.16 to q2.30
    with scale 30, whose 32 × 55-bit reduction takes 6 DSPs).

    Error
    -----
    At most 2 ulp of ``out_format`` against ``sin(scale * a)`` in float64; measured below 1 ulp
    (0.83 at q16.16 to q2.30 with scale 30, see ``docs/nonlinear.md``).
    """


class Cos(_Sinusoid):
    """``o = cos(scale * a)``, element-wise: :class:`Sin` with the angle advanced by a quarter
    turn, added exactly to the quadrant. Same parameters, ports, timing and error as :class:`Sin`."""

    quarter_turns = 1


class _Saturating(_TableFunction):
    """A function of ``z = scale * a`` (tanh, sigmoid, softplus) from a table on ``|z| < z_max``,
    past which it is within 1/4 ulp of its asymptote, and a symmetry for negative ``z``."""

    def _configure(self):
        frac = self.out_format.frac_bits
        extent = self.saturation_point(frac)
        reach = self._reach(extent)
        largest = min(2.0 ** (self.in_format.width - 1),
                      reach * 2.0 ** self.in_format.frac_bits / abs(self.scale) if self.scale else math.inf)
        self._setup(self.function, extent, lambda bits: Fraction(1), self.derivative, frac, largest,
                    1 << (GUARD_BITS - 1), overhead_stages=1)
        self.one = 1 << frac
        self.index_bits = max(1, (self.table.segments - 1).bit_length())

    def _reach(self, extent):
        """``|z|`` up to which results need full precision (beyond, they saturate)."""
        return extent

    def _fold_model(self, z):
        """``(negative, saturated, index, v)`` of ``z``: the table reads ``|z|`` (``~z`` for a
        negative ``z``, exact under the midpoint convention), unless ``|z| >= z_max``."""
        limit = self.table.segments << self.table.offset_bits
        negative = z < 0
        saturated = (z >= limit) | (z < -limit)
        folded = np.where(negative, ~z, z) & ((1 << (self.arg_bits + self.index_bits)) - 1)
        return (negative, saturated, *self._offset(folded))

    def _fold(self, z):
        limit = self.table.segments << self.table.offset_bits
        negative = z[-1]
        saturated = (z >= limit) | (z < -limit)
        folded = (z.as_unsigned() ^ negative.replicate(len(z)))[:self.arg_bits + self.index_bits]
        return (negative, saturated, *self._offset_hw(folded))

    def _model(self, x):
        negative, saturated, index, v = self._fold_model(self._reduce_model(x))
        magnitude = np.where(saturated, self.one, self.table.reference(index, v) >> GUARD_BITS)
        out = np.where(negative, self._reflect(magnitude), magnitude)
        return convert_raw(out, _point(self.out_format.frac_bits), self.out_format)

    def _lane(self, m, advance, x, lane):
        negative, saturated, index, v = self._fold(self._reduce(m, advance, x, lane))
        y = self.table.evaluate(m, advance, self._memory, index, v, f"table{lane}")
        negative = _delay(m, advance, negative, self.table.latency, f"negative{lane}")
        saturated = _delay(m, advance, saturated, self.table.latency, f"saturated{lane}")
        magnitude = Mux(saturated, self.one, y >> GUARD_BITS)
        out = Mux(negative, self._reflect(magnitude), magnitude)
        return convert(out, _point(self.out_format.frac_bits), self.out_format)


class Tanh(_Saturating):
    """``o = tanh(scale * a)``, element-wise.

    ``z = scale * a`` is formed with ``A = out.frac_bits + 2`` fractional bits; ``tanh(|z|)``
    comes from a table on ``[0, z_max)``, with ``z_max = atanh(1 - 2**-(out.frac_bits+2))``
    rounded up to whole segments (9.4 at 24 fractional bits), and is 1 beyond; the sign of ``z``
    is applied last (odd symmetry).

    Parameters, ports and timing as :class:`Sin` (latency ``4 + order`` if every product fits one
    DSP). ``overflow`` is set only when ``out_format`` cannot hold +1 and a result rounds to it.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``tanh`` (measured, ``docs/nonlinear.md``).
    """

    derivative = 1.0

    @staticmethod
    def function(t):
        return np.tanh(t)

    @staticmethod
    def saturation_point(frac):
        return 0.5 * math.log(2.0 ** (frac + 3) - 1)

    @staticmethod
    def _reflect(magnitude):
        return -magnitude


class Sigmoid(_Saturating):
    """``o = 1 / (1 + exp(-scale * a))``, element-wise.

    As :class:`Tanh`, with ``sigmoid(z) = 1 - sigmoid(-z)`` for negative ``z``, a table on
    ``[0, z_max)`` with ``z_max = ln(2**(out.frac_bits+2) - 1)`` (18 at 24 fractional bits) and
    ``A = out.frac_bits`` fractional bits of ``z`` (its slope is at most 1/4).

    Parameters, ports and timing as :class:`Sin`. Error: at most 2 ulp of ``out_format`` (measured).
    """

    derivative = 0.25

    @staticmethod
    def function(t):
        return 1.0 / (1.0 + np.exp(-t))

    @staticmethod
    def saturation_point(frac):
        return math.log(2.0 ** (frac + 2) - 1)

    def _reflect(self, magnitude):
        return self.one - magnitude


class Softplus(_Saturating):
    """``o = log(1 + exp(scale * a))``, element-wise.

    ``softplus(z) = max(z, 0) + g(|z|)`` with ``g(u) = softplus(-u) = log(1 + exp(-u))``, which
    falls from ``ln 2`` at 0 to below 1/4 ulp at ``z_max = -log(expm1(2**-(out.frac_bits+2)))``
    (18.7 at 25 fractional bits). ``z`` is formed with ``A = out.frac_bits + 2`` fractional bits
    (the slope of softplus is up to 1) and ``g(|z|)`` comes from a table on ``[0, z_max)``, 0
    beyond: large negative ``z`` give 0 and large positive ``z`` give ``z`` itself. ``max(z, 0)``
    is taken at the same midpoint of the last bit of ``z`` as the table's offset, so the sum is
    ``softplus`` of one point within half a bit of ``z``. Results of ``2**(out.int_bits-1)`` or
    more saturate to the largest value and set ``overflow``.

    Parameters, ports as :class:`Sin`. ``scale`` is ``beta`` of ``torch.nn.Softplus`` (the
    ``1/beta`` factor outside the logarithm is a separate scaling).

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: as :class:`Sin` (``4 + order`` if every product
    fits one DSP); initiation interval 1.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``log1p(exp(z))`` where the result is in
    range (measured, ``docs/nonlinear.md``).
    """

    # Bounds the slope of the whole result, max(z, 0) included, which sets A.
    derivative = 1.0

    @staticmethod
    def function(u):
        return np.log1p(np.exp(-u))

    @staticmethod
    def saturation_point(frac):
        return -math.log(math.expm1(2.0 ** -(frac + 2)))

    def _reach(self, extent):
        # z itself is the result up to the largest output
        return max(extent, 2.0 ** (self.out_format.int_bits - 1))

    def _configure(self):
        super()._configure()
        # max(z, 0) at the midpoint of z's last bit, A + 1 fractional bits, added to the table's
        # value (the table is never finer than its precision, so A + 1 <= its fractional bits)
        self.linear_shift = self.table.frac_bits - self.arg_bits - 1
        # z >= 2**(out.int_bits-1) overflows; below, max(z, 0) fits linear_bits unsigned bits
        self.linear_bits = max(0, self.arg_bits + self.out_format.int_bits - 1)

    def _model(self, x):
        z = self._reduce_model(x)
        negative, saturated, index, v = self._fold_model(z)
        y = np.where(saturated, 1 << (GUARD_BITS - 1), self.table.reference(index, v))
        linear = np.where(negative, 0, 2 * z + 1) << self.linear_shift
        value, overflowed = convert_raw((linear + y) >> GUARD_BITS, _point(self.out_format.frac_bits),
                                        self.out_format)
        over = z >= 1 << self.linear_bits
        return np.where(over, self.out_format.max_raw, value), overflowed | over

    def _lane(self, m, advance, x, lane):
        z = self._reduce(m, advance, x, lane)
        negative, saturated, index, v = self._fold(z)
        y = self.table.evaluate(m, advance, self._memory, index, v, f"table{lane}")
        delay = self.table.latency
        linear = _delay(m, advance, Mux(negative, 0, Cat(Const(1, 1), z[:self.linear_bits])), delay,
                        f"linear{lane}")
        over = _delay(m, advance, z >= 1 << self.linear_bits, delay, f"over{lane}")
        saturated = _delay(m, advance, saturated, delay, f"saturated{lane}")
        total = (linear << self.linear_shift) + Mux(saturated, 1 << (GUARD_BITS - 1), y)
        value, overflowed = convert(total >> GUARD_BITS, _point(self.out_format.frac_bits), self.out_format)
        return Mux(over, self.out_format.max_raw, value), overflowed | over


class Exp(_TableFunction):
    """``o = exp(scale * a)``, element-wise.

    ``t = scale * a / ln 2`` splits into an integer ``k`` and a fraction ``f``:
    ``exp(z) = 2**k * 2**f``. A table gives ``2**f`` in [1, 2) with ``table_frac = out.frac_bits
    + out.int_bits - 2`` bits (one output ulp at the largest representable result), and a
    barrel shift by ``k`` rounds it to the output format. Results of ``2**(out.int_bits-1)`` or
    more saturate to the largest value and set ``overflow``; results below half an ulp are 0.

    Parameters, ports as :class:`Sin`.

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: a barrel-shift stage more than :class:`Sin`,
    ``5 + order`` if every product fits one DSP, ``4 + sum(m.latency for m in multipliers)`` in
    general; initiation interval 1.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``exp`` where the result is in range
    (measured, ``docs/nonlinear.md``).
    """

    def _configure(self):
        out = self.out_format
        table_frac = out.frac_bits + out.int_bits - 2
        # The reduction errs by |a_raw| * 2**-(P+1) in t, a relative error of the result: it costs
        # most at the largest unsaturated output (below, e**z * |z| is smaller for any z < 0).
        reach = max(1.0, (out.int_bits - 1) * math.log(2))
        largest = min(2.0 ** (self.in_format.width - 1),
                      reach * 2.0 ** self.in_format.frac_bits / abs(self.scale) if self.scale else math.inf)
        self._setup(np.exp2, 1.0, _ln2, 2 * math.log(2), table_frac, largest, 0, overhead_stages=2)
        self.table_frac_bits = table_frac + GUARD_BITS
        # Right shift of the table value, minus one: 2**k * y / 2**(Fy - Fo) rounded half up is
        # ((y >> (shift - 1)) + 1) >> 1 with shift = Fy - Fo - k.
        self.shift_base = self.table_frac_bits - out.frac_bits - 1
        self.largest_k = out.int_bits - 2
        self.smallest_k = -(out.frac_bits + 1)
        self.shift_bits = (self.shift_base - self.smallest_k).bit_length()

    def _model(self, x):
        A = self.arg_bits
        t = self._reduce_model(x)
        k = t >> A
        index, v = self._offset(t & ((1 << A) - 1))
        y = self.table.reference(index, v)
        shift = np.clip(self.shift_base - k, 0, self.shift_base - self.smallest_k)
        rounded = ((y >> shift) + 1) >> 1
        over = k > self.largest_k
        out = np.where(over, self.out_format.max_raw, np.where(k < self.smallest_k, 0, rounded))
        value, overflowed = convert_raw(out, _point(self.out_format.frac_bits), self.out_format)
        return value, overflowed | over

    def _lane(self, m, advance, x, lane):
        A = self.arg_bits
        t = self._reduce(m, advance, x, lane)
        k = t[A:].as_signed()
        index, v = self._offset_hw(t[:A])
        y = self.table.evaluate(m, advance, self._memory, index, v, f"table{lane}")
        over = _delay(m, advance, k > self.largest_k, self.table.latency, f"over{lane}")
        under = _delay(m, advance, k < self.smallest_k, self.table.latency, f"under{lane}")
        shift = _delay(m, advance, (self.shift_base - k)[:self.shift_bits], self.table.latency, f"shift{lane}")
        shifted = _register(m, advance, y >> shift, f"shifted{lane}")
        over = _register(m, advance, over, f"over{lane}_s")
        under = _register(m, advance, under, f"under{lane}_s")
        rounded = (shifted + 1) >> 1
        out = Mux(over, self.out_format.max_raw, Mux(under, 0, rounded))
        value, overflowed = convert(out, _point(self.out_format.frac_bits), self.out_format)
        return value, overflowed | over


class Sqrt(_TableFunction):
    """``o = sqrt(scale * a)``, element-wise, and 0 where ``scale * a <= 0``.

    ``x = scale/|scale| * a`` (0 if negative) is normalized by an even shift: ``t = x * 4**s`` in
    [1, 4), with ``s`` the leading zero bit pairs of ``x`` and ``t`` read as 2 integer and ``A``
    fractional bits. Then ``sqrt(scale * a) = sqrt(K * t) / 2 * 2**(p - s)``, where
    ``K * 4**p = |scale| * 2**(W - F)`` with ``K`` in [1, 4) (``W`` the even width of ``x``, ``F``
    the input's fractional bits) is exact in floating point. A table gives ``sqrt(K * t) / 2`` in
    [1/2, 2) on ``t - 1`` in [0, 3), with ``table_frac = out.frac_bits + min(p, out.int_bits - 1)``
    bits (one output ulp at the largest representable result) and ``A = table_frac + 1`` (its slope
    is below 1/2); a barrel shift by ``s`` rounds it half up to the output format. Results of
    ``2**(out.int_bits-1)`` or more saturate to the largest value and set ``overflow``.

    Parameters, ports as :class:`Sin`.

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: the leading-zero count, the normalizing shift,
    the table read, one multiply per order, the final add, the barrel shift, the rounding: latency
    ``6 + order`` if every product fits one DSP, ``5 + sum(m.latency for m in multipliers)`` in
    general; initiation interval 1.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``sqrt`` where the result is in range
    (measured, ``docs/nonlinear.md``); exact at 0.
    """

    def _configure(self):
        out = self.out_format
        self.sign = (self.scale > 0) - (self.scale < 0)
        # -min_raw needs every bit of the input for a negative scale
        self.pairs = (self.in_format.width - (self.sign > 0) + 1) // 2
        mantissa, exponent = math.frexp(abs(self.scale) * 2.0 ** (2 * self.pairs - self.in_format.frac_bits))
        self.power = (exponent - 1) // 2 if self.scale else 0
        scaling = mantissa * 2.0 ** (exponent - 2 * self.power) if self.scale else 1.0
        table_frac = max(0, out.frac_bits + min(self.power, out.int_bits - 1))
        self._size_table(lambda u: np.sqrt(scaling * (1 + u)) / 2, 3.0, 0.5, table_frac, 0)
        # s below this overflows (2**(p - s) >= 2**out.int_bits times a table value >= 1/2)
        self.smallest_s = self.power - out.int_bits + 1
        # Right shift of the table value, minus one: y * 2**(p - s - Fy) in output ulps rounded
        # half up is ((y >> (shift - 1)) + 1) >> 1 with shift = Fy - Fo - p + s.
        self.shift_base = self.table.frac_bits - out.frac_bits - self.power - 1
        self.shift_bits = max(0, self.shift_base + self.pairs - 1).bit_length()
        self.latency = 2 + self.table.latency + 2

    def _arg(self, t):
        """The table's ``A``-bit argument ``t - 1`` from the normalized ``t`` (model)."""
        fraction = 2 * self.pairs - 2
        return (t >> (fraction - self.arg_bits) if fraction >= self.arg_bits
                else t << (self.arg_bits - fraction)) - (1 << self.arg_bits)

    def _model(self, x):
        x = np.maximum(x * self.sign, 0)
        zero = x == 0
        length = np.vectorize(lambda v: v.bit_length(), otypes=[object])(x) if x.size else x
        s = np.minimum((2 * self.pairs - length) // 2, self.pairs - 1)
        index, v = self._offset(self._arg(x << (2 * s)))
        y = self.table.reference(index, v)
        rounded = ((y >> np.maximum(self.shift_base + s, 0)) + 1) >> 1
        over = (s < self.smallest_s) & ~zero
        out = np.where(zero, 0, np.where(over, self.out_format.max_raw, rounded))
        value, overflowed = convert_raw(out, _point(self.out_format.frac_bits), self.out_format)
        return value, overflowed | over

    def _lane(self, m, advance, a, lane):
        width = 2 * self.pairs
        x = Mux(a > 0, a, 0) if self.sign > 0 else Mux(a < 0, -a, 0) if self.sign < 0 else Const(0)
        s = Const(self.pairs - 1)
        for pair in range(self.pairs):  # the highest nonzero pair wins
            s = Mux(x[2 * pair:2 * pair + 2].any(), self.pairs - 1 - pair, s)
        zero = _register(m, advance, x == 0, f"zero{lane}")
        s = _register(m, advance, s, f"s{lane}", range(self.pairs))
        x = _register(m, advance, x, f"x{lane}", width)
        t = _register(m, advance, (x << Cat(Const(0, 1), s))[:width], f"t{lane}")
        fraction = width - 2
        if fraction >= self.arg_bits:
            bits = t[fraction - self.arg_bits:fraction]
        else:
            bits = Cat(Const(0, self.arg_bits - fraction), t[:fraction])
        index, v = self._offset_hw(Cat(bits, (t[fraction:] - 1)[:2]))
        y = self.table.evaluate(m, advance, self._memory, index, v, f"table{lane}")
        delay = 1 + self.table.latency
        over = _delay(m, advance, ~zero & (s < self.smallest_s), delay, f"over{lane}")
        zero = _delay(m, advance, zero, delay, f"zero{lane}")
        shift = _delay(m, advance, (self.shift_base + s)[:self.shift_bits], delay, f"shift{lane}")
        shifted = _register(m, advance, y >> shift, f"shifted{lane}")
        over = _register(m, advance, over, f"over{lane}_s")
        zero = _register(m, advance, zero, f"zero{lane}_s")
        out = Mux(zero, 0, Mux(over, self.out_format.max_raw, (shifted + 1) >> 1))
        value, overflowed = convert(out, _point(self.out_format.frac_bits), self.out_format)
        return value, overflowed | over


class Relu(_Nonlinear):
    """``o = max(scale * a, 0)``, element-wise.

    The scale is a constant with ``in.int_bits + out.frac_bits`` fractional bits (fewer if
    exact: ``scale = 1`` is a plain wire), so its rounding adds at most 1/4 ulp.

    Parameters, ports as :class:`Sin`.

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: the product (``multiplier.latency`` stages, 1
    where it fits one DSP), then rounding to ``out_format``; latency 2 unless the product is split.

    Error
    -----
    At most 1/2 ulp of ``out_format`` plus the constant's rounding (none for exact scales).
    """

    def _configure(self):
        self.constant, self.constant_frac = _fixed_constant(
            lambda bits: Fraction(self.scale), 0, max(0, self.in_format.int_bits + self.out_format.frac_bits))
        self._product_point = _point(self.in_format.frac_bits + self.constant_frac)
        self.multiplier = _constant_multiplier(self.in_format.shape, self.constant)
        self.latency = self.multiplier.latency + 1

    @property
    def multipliers(self):
        return (self.multiplier,)

    def _model(self, x):
        product = x * self.constant
        return convert_raw(np.where(product > 0, product, 0), self._product_point, self.out_format)

    def _lane(self, m, advance, x, lane):
        product = _constant_product(m, advance, self.multiplier, x, self.constant, f"product{lane}")
        return convert(Mux(product < 0, 0, product), self._product_point, self.out_format)


class Step(_Nonlinear):
    """``o = 1 if scale * a > 0 else 0``, element-wise (the derivative of :class:`Relu`).

    Parameters, ports as :class:`Sin`. ``overflow`` is set when a 1 is output and
    ``out_format`` cannot hold it (it then saturates to the largest value).

    Timing
    ------
    ``TimingContract.pipeline(("a",), 1)``. Exact.
    """

    latency = 1

    def _configure(self):
        self.sign = (self.scale > 0) - (self.scale < 0)
        one = 1 << self.out_format.frac_bits
        self.one = min(one, self.out_format.max_raw)
        self._one_overflows = one > self.out_format.max_raw

    def _model(self, x):
        positive = x * self.sign > 0
        return np.where(positive, self.one, 0).astype(object), positive & self._one_overflows

    def _lane(self, m, advance, x, lane):
        positive = (x > 0) if self.sign > 0 else (x < 0) if self.sign < 0 else Const(0)
        return Mux(positive, self.one, 0), positive & int(self._one_overflows)
