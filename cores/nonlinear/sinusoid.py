"""Sin and cos: a quarter-wave table in quarter turns."""

import numpy as np
from amaranth.hdl import Mux

from ..fixed import convert_raw
from .base import _NonlinearCore, _pi, _point, _TableFunction
from .table import GUARD_BITS, _delay


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
        # convert() of the negated magnitude, its bounds compared with the magnitude instead, so that
        # their carry chains run beside the negation's rather than after it
        fmt = self.out_format
        too_big = Mux(negate, magnitude < -fmt.max_raw, magnitude > fmt.max_raw)
        too_small = Mux(negate, magnitude > -fmt.min_raw, magnitude < fmt.min_raw)
        value = Mux(too_big, fmt.max_raw, Mux(too_small, fmt.min_raw, Mux(negate, -magnitude, magnitude)))
        return value[:fmt.width].as_signed(), too_big | too_small


class SinModel(_Sinusoid):
    """The model of :class:`Sin`."""


class Sin(_NonlinearCore, SinModel):
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
    dsp_shape : (int, int)
        Signed port widths of the device's DSP multiplier that every product is split for
        (:class:`~cores.multiply.Multiplier`; default the DSP48E2's 27 × 18).
    pipelining : Pipelining
        The optional pipeline registers (:class:`~cores.pipelining.Pipelining`; all of them by
        default): the products' input registers, the table's output register, and the add of the
        last Horner step (and, in the saturating functions, exp and sqrt, the reconstruction's add or
        rounding) in stages of their own.

    Ports
    -----
    a : In(stream.Signature(ArrayLayout(in_format.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(out_format.shape, lanes)))
    overflow : Out(1)
        Sticky: set once a result did not fit ``out_format`` (only ``±1`` in a 1-integer-bit format).

    Timing
    ------
    ``TimingContract.pipeline(("a",), latency)``, initiation interval 1: the reduction product,
    the table read (and its output register), one multiply per order, the final add, the sign and
    rounding: ``3 + pipelining.memory_output + sum(m.latency for m in lane_multipliers)``. Without
    the optional registers that is ``4 + order`` when every product fits one DSP, and each product
    split over ``p`` DSPs adds ``ceil(log2 p)`` stages (10 for q16.16 to q2.30 with scale 30,
    whose 32 × 55-bit reduction takes 6 DSPs). With all of them (the default) each DSP product's
    input registers, the table's output register and the addend of the Horner step that takes all
    of the offset add one stage each: 9 for q4.12 to q2.14 (5 without), 15 for q16.16 to q2.30.

    Error
    -----
    At most 2 ulp of ``out_format`` against ``sin(scale * a)`` in float64; measured below 1 ulp
    (0.83 at q16.16 to q2.30 with scale 30, see ``docs/nonlinear.md``).
    """


class CosModel(_Sinusoid):
    """The model of :class:`Cos`."""

    quarter_turns = 1


class Cos(_NonlinearCore, CosModel):
    """``o = cos(scale * a)``, element-wise: :class:`Sin` with the angle advanced by a quarter
    turn, added exactly to the quadrant. Same parameters, ports, timing and error as :class:`Sin`."""
