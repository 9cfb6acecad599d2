"""Exp and sqrt: a table on one octave (exp) or two (sqrt), scaled by a power of two."""

import math

import numpy as np
from amaranth.hdl import Cat, Const, Mux

from ..fixed import convert, convert_raw
from .base import _ln2, _NonlinearCore, _point, _TableFunction
from .table import GUARD_BITS, _delay, _register


def _round_half_up(m, advance, pipelining, shifted, flags, lane):
    """``(shifted + 1) >> 1`` and the ``flags`` of the same item: registered once more with
    ``pipelining.post_multiply_add``, so that the rounding's carry chain and the saturation's are
    not in one stage."""
    rounded = (shifted + 1) >> 1
    if not pipelining.post_multiply_add:
        return rounded, flags
    return (_register(m, advance, rounded, f"rounded{lane}"),
            [_register(m, advance, flag, f"{flag.name}_r") for flag in flags])


class ExpModel(_TableFunction):
    """The model of :class:`Exp`."""

    def _configure(self):
        out = self.out_format
        table_frac = out.frac_bits + out.int_bits - 2
        # The reduction errs by |a_raw| * 2**-(P+1) in t, a relative error of the result: it costs
        # most at the largest unsaturated output (below, e**z * |z| is smaller for any z < 0).
        reach = max(1.0, (out.int_bits - 1) * math.log(2))
        largest = min(2.0 ** (self.in_format.width - 1),
                      reach * 2.0 ** self.in_format.frac_bits / abs(self.scale) if self.scale else math.inf)
        self._setup(np.exp2, 1.0, _ln2, 2 * math.log(2), table_frac, largest, 0,
                    overhead_stages=2 + self.pipelining.post_multiply_add)
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
        rounded, (over, under) = _round_half_up(m, advance, self.pipelining, shifted, (over, under), lane)
        out = Mux(over, self.out_format.max_raw, Mux(under, 0, rounded))
        value, overflowed = convert(out, _point(self.out_format.frac_bits), self.out_format)
        return value, overflowed | over


class Exp(_NonlinearCore, ExpModel):
    """``o = exp(scale * a)``, element-wise.

    ``t = scale * a / ln 2`` splits into an integer ``k`` and a fraction ``f``:
    ``exp(z) = 2**k * 2**f``. A table gives ``2**f`` in [1, 2) with ``table_frac = out.frac_bits
    + out.int_bits - 2`` bits (one output ulp at the largest representable result), and a
    barrel shift by ``k`` rounds it to the output format. Results of ``2**(out.int_bits-1)`` or
    more saturate to the largest value and set ``overflow``; results below half an ulp are 0.

    Parameters, ports as :class:`Sin`.

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: a barrel-shift stage more than :class:`Sin`, and
    with ``pipelining.post_multiply_add`` the rounding in a stage of its own:
    ``4 + pipelining.memory_output + pipelining.post_multiply_add + sum(m.latency for m in
    lane_multipliers)``, which is ``5 + order`` without the optional registers if every product
    fits one DSP (6 for q4.12 to q8.8, 11 with all of them); initiation interval 1.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``exp`` where the result is in range
    (measured, ``docs/nonlinear.md``).
    """


class SqrtModel(_TableFunction):
    """The model of :class:`Sqrt`."""

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
        self.latency = 2 + self.table.latency + 2 + self.pipelining.post_multiply_add

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
        rounded, (over, zero) = _round_half_up(m, advance, self.pipelining, shifted, (over, zero), lane)
        out = Mux(zero, 0, Mux(over, self.out_format.max_raw, rounded))
        value, overflowed = convert(out, _point(self.out_format.frac_bits), self.out_format)
        return value, overflowed | over


class Sqrt(_NonlinearCore, SqrtModel):
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
    the table read, one multiply per order, the final add, the barrel shift, the rounding (in a
    stage of its own with ``pipelining.post_multiply_add``): latency
    ``5 + pipelining.memory_output + pipelining.post_multiply_add + sum(m.latency for m in
    lane_multipliers)``, ``6 + order`` without the optional registers if every product fits one DSP
    (7 for q4.12 to q4.12, 11 with all of them); initiation interval 1.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``sqrt`` where the result is in range
    (measured, ``docs/nonlinear.md``); exact at 0.
    """
