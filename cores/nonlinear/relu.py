"""Relu and its derivative, step, and abs: no table."""

from fractions import Fraction

import numpy as np
from amaranth.hdl import Const, Mux, signed

from ..fixed import convert, convert_raw
from .base import _constant_multiplier, _constant_product, _fixed_constant, _Nonlinear, _NonlinearCore, _point
from .table import _register


class _ScaledProduct(_Nonlinear):
    """The model of a core that multiplies by a constant, then takes ``stages`` more: the constant
    ``factor`` has ``in.int_bits + out.frac_bits`` fractional bits (fewer if exact)."""

    stages = 1

    @property
    def factor(self):
        return self.scale

    def _configure(self):
        self.constant, self.constant_frac = _fixed_constant(
            lambda bits: Fraction(self.factor), 0, max(0, self.in_format.int_bits + self.out_format.frac_bits))
        self._product_point = _point(self.in_format.frac_bits + self.constant_frac)
        self.multiplier = _constant_multiplier(self.in_format.shape, self.constant, self.dsp_shape, self.pipelining)
        self.latency = self.multiplier.latency + self.stages

    @property
    def lane_multipliers(self):
        return (self.multiplier,)


class ReluModel(_ScaledProduct):
    """The model of :class:`Relu`."""

    def _model(self, x):
        product = x * self.constant
        return convert_raw(np.where(product > 0, product, 0), self._product_point, self.out_format)

    def _lane(self, m, advance, x, lane):
        product = _constant_product(m, advance, self.multiplier, x, self.constant, f"product{lane}")
        return convert(Mux(product < 0, 0, product), self._product_point, self.out_format)


class Relu(_NonlinearCore, ReluModel):
    """``o = max(scale * a, 0)``, element-wise.

    The scale is a constant with ``in.int_bits + out.frac_bits`` fractional bits (fewer if
    exact: ``scale = 1`` is a plain wire), so its rounding adds at most 1/4 ulp.

    Parameters, ports as :class:`Sin`.

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: the product (``multiplier.latency`` stages, 1
    where it fits one DSP, one more for its input registers with ``pipelining.multiplier_inputs``
    unless the scale is a power of two), then rounding to ``out_format``; latency 2 without the
    optional registers unless the product is split.

    Error
    -----
    At most 1/2 ulp of ``out_format`` plus the constant's rounding (none for exact scales).
    """


class StepModel(_Nonlinear):
    """The model of :class:`Step`."""

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


class Step(_NonlinearCore, StepModel):
    """``o = 1 if scale * a > 0 else 0``, element-wise (the derivative of :class:`Relu`).

    Parameters, ports as :class:`Sin`. ``overflow`` is set when a 1 is output and
    ``out_format`` cannot hold it (it then saturates to the largest value).

    Timing
    ------
    ``TimingContract.pipeline(("a",), 1)``. Exact.
    """


class AbsModel(_ScaledProduct):
    """The model of :class:`Abs`."""

    # the magnitude, with the rounding's half ulp, takes a carry chain of its own before the saturation
    stages = 2

    @property
    def factor(self):
        return abs(self.scale)

    def _model(self, x):
        product = x * self.constant
        return convert_raw(np.where(product < 0, -product, product), self._product_point, self.out_format)

    def _lane(self, m, advance, x, lane):
        product = _constant_product(m, advance, self.multiplier, x, self.constant, f"product{lane}")
        # The rounding's half ulp goes into the magnitude's carry chain (|p| + half, or half - p),
        # so that the next stage only drops bits and saturates: rounded half up, as convert() does.
        shift = self._product_point.frac_bits - self.out_format.frac_bits
        half = 1 << (shift - 1) if shift > 0 else 0
        magnitude = _register(m, advance, Mux(product < 0, half - product, product + half), f"magnitude{lane}",
                              shape=signed(len(product) + 2))
        return convert(magnitude, self._product_point, self.out_format, rounding="truncate")


class Abs(_NonlinearCore, AbsModel):
    """``o = |scale * a|``, element-wise (FINER's activations ``sin((|z| + 1) z)`` use it).

    As :class:`Relu`, with the scale's magnitude (``|scale * a| = |scale| |a|``), and one more
    stage: the magnitude of the product, with the rounding's half ulp added in the same carry
    chain, takes a stage of its own before the saturation.

    Parameters, ports as :class:`Sin`. ``overflow`` is set when a magnitude exceeds
    ``out_format`` (it then saturates to the largest value).

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``: the product (``multiplier.latency`` stages),
    its magnitude, then rounding to ``out_format``; latency 3 where the product fits one DSP
    without the optional registers.

    Error
    -----
    At most 1/2 ulp of ``out_format`` plus the constant's rounding (none for exact scales).
    """
