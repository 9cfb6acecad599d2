"""Piecewise polynomial tables: fitting, sizing, and their exact evaluation in integers and in hardware."""

import math

import numpy as np
from amaranth.hdl import Shape, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from ..multiply import Multiplier
from ..rom import RegisteredRom

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
    integer from a port one bit narrower. ``latency`` is the memory read, its output register
    (``pipelining.memory_output``), ``multipliers[j].latency`` stages per multiply (1 where it
    fits one DSP without the optional registers of ``pipelining``) and the final add.
    """

    def __init__(self, function, extent, resolution, order, offset_bits, frac_bits, round_bias, dsp_shape,
                 pipelining):
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
        self.pipelining = pipelining
        self.multipliers = [Multiplier(shape, unsigned(bits - 1 if bits == mv and bits > 1 else bits), dsp_shape=dsp_shape,
                                       with_addend=bits == mv and bits > 1, pipelining=pipelining)
                            for shape, bits in zip(self._accumulator_shapes(), self.multiplier_bits)]
        self.latency = 1 + pipelining.memory_output + sum(multiplier.latency for multiplier in self.multipliers) + 1
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

    @property
    def registered_rom(self):
        """Whether the table is a :class:`~cores.rom.RegisteredRom` of ``pipelining.rom``, whose
        output register is the ``memory_output`` stage."""
        rom = self.pipelining.rom
        return self.pipelining.memory_output and rom is not None and rom.fits(self.segments)

    def memory(self):
        """A new read-only memory holding the table (one per elaboration, shared by the lanes): a
        :class:`~cores.rom.RegisteredRom` where :attr:`registered_rom`, else a
        :class:`~amaranth.lib.memory.Memory`."""
        if self.registered_rom:
            return RegisteredRom(self.pipelining.rom, self.layout, self.rows)
        return Memory(shape=self.layout, depth=self.segments, init=self.rows)

    def evaluate(self, m, advance, memory, index, v, name):
        """Hardware evaluation with a new read port of ``memory``: ``index`` and ``v`` are sampled
        in this stage, the result is a register ``self.latency`` stages later."""
        mv = self.offset_bits + 1
        v = _register(m, advance, v, f"{name}_v")
        if self.registered_rom:
            row = memory.read(index, advance)
            v = _register(m, advance, v, f"{name}_v_row")
        else:
            port = memory.read_port(domain="sync")
            m.d.comb += [port.addr.eq(index), port.en.eq(advance)]
            row = port.data
            if self.pipelining.memory_output:
                row = _register(m, advance, row, f"{name}_row")
                v = _register(m, advance, v, f"{name}_v_row")
        coefficients = [row[f"c{j}"] for j in range(self.order + 1)]
        acc = coefficients[self.order]
        for j in range(self.order - 1, -1, -1):
            bits, multiplier = self.multiplier_bits[j], self.multipliers[j]
            # the addition of c_j feeds the next multiplier (a DSP pre-adder), narrowed to the
            # accumulator's range, which is what the multiplier's pieces were cut for
            operand = Signal(multiplier.a_shape, name=f"{name}_acc{j}")
            m.d.comb += operand.eq(acc)
            if multiplier.with_addend:  # acc * v for the odd v: its low bit is the addend
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
