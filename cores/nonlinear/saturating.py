"""Saturating functions: tanh, sigmoid and softplus, a table up to where they reach their asymptote."""

import math
from fractions import Fraction

import numpy as np
from amaranth.hdl import Cat, Const, Mux

from ..fixed import convert, convert_raw
from .base import _NonlinearCore, _point, _TableFunction
from .table import GUARD_BITS, _delay, _register


class _Saturating(_TableFunction):
    """A function of ``z = scale * a`` (tanh, sigmoid, softplus) from a table on ``|z| < z_max``,
    past which it is within 1/4 ulp of its asymptote, and a symmetry for negative ``z``."""

    def _configure(self):
        frac = self.out_format.frac_bits
        extent = self.saturation_point(frac)
        reach = self._reach(extent)
        largest = min(2.0 ** (self.in_format.width - 1),
                      reach * 2.0 ** self.in_format.frac_bits / abs(self.scale) if self.scale else math.inf)
        # the output stage, and the symmetry (or softplus's linear part) in a stage of its own
        self._setup(self.function, extent, lambda bits: Fraction(1), self.derivative, frac, largest,
                    1 << (GUARD_BITS - 1), overhead_stages=1 + self.pipelining.post_multiply_add)
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
        if self.pipelining.post_multiply_add:  # apart from the saturation's comparisons
            out = _register(m, advance, out, f"reflected{lane}")
        return convert(out, _point(self.out_format.frac_bits), self.out_format)


class TanhModel(_Saturating):
    """The model of :class:`Tanh`."""

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


class Tanh(_NonlinearCore, TanhModel):
    """``o = tanh(scale * a)``, element-wise.

    ``z = scale * a`` is formed with ``A = out.frac_bits + 2`` fractional bits; ``tanh(|z|)``
    comes from a table on ``[0, z_max)``, with ``z_max = atanh(1 - 2**-(out.frac_bits+2))``
    rounded up to whole segments (9.4 at 24 fractional bits), and is 1 beyond; the sign of ``z``
    is applied last (odd symmetry).

    Parameters and ports as :class:`Sin`. ``overflow`` is set only when ``out_format`` cannot hold
    +1 and a result rounds to it.

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``, initiation interval 1: as :class:`Sin` (latency
    ``4 + order`` without the optional registers if every product fits one DSP), and with
    ``pipelining.post_multiply_add`` one more stage, the symmetry apart from the saturation: 11 for
    q4.12 to q2.14 (6 without the optional registers).

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``tanh`` (measured, ``docs/nonlinear.md``).
    """


class SigmoidModel(_Saturating):
    """The model of :class:`Sigmoid`."""

    derivative = 0.25

    @staticmethod
    def function(t):
        return 1.0 / (1.0 + np.exp(-t))

    @staticmethod
    def saturation_point(frac):
        return math.log(2.0 ** (frac + 2) - 1)

    def _reflect(self, magnitude):
        return self.one - magnitude


class Sigmoid(_NonlinearCore, SigmoidModel):
    """``o = 1 / (1 + exp(-scale * a))``, element-wise.

    As :class:`Tanh`, with ``sigmoid(z) = 1 - sigmoid(-z)`` for negative ``z``, a table on
    ``[0, z_max)`` with ``z_max = ln(2**(out.frac_bits+2) - 1)`` (18 at 24 fractional bits) and
    ``A = out.frac_bits`` fractional bits of ``z`` (its slope is at most 1/4).

    Parameters and ports as :class:`Sin`, timing as :class:`Tanh`. Error: at most 2 ulp of
    ``out_format`` (measured).
    """


class SoftplusModel(_Saturating):
    """The model of :class:`Softplus`."""

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
        if self.pipelining.post_multiply_add:  # apart from the saturation's comparisons
            total = _register(m, advance, total, f"total{lane}")
            over = _register(m, advance, over, f"over{lane}_total")
        value, overflowed = convert(total >> GUARD_BITS, _point(self.out_format.frac_bits), self.out_format)
        return Mux(over, self.out_format.max_raw, value), overflowed | over


class Softplus(_NonlinearCore, SoftplusModel):
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
    ``TimingContract.pipeline(("a",), latency)``: as :class:`Tanh`, the stage of its own holding
    the sum of ``max(z, 0)`` and the table's value; initiation interval 1.

    Error
    -----
    At most 2 ulp of ``out_format`` against float64 ``log1p(exp(z))`` where the result is in
    range (measured, ``docs/nonlinear.md``).
    """
