"""Signed fixed-point (Q-format) numbers, in Python and in hardware.

A :class:`Q` format describes a signed two's-complement number with ``int_bits`` integer bits
(the sign bit included) and ``frac_bits`` fractional bits. A raw integer ``r`` stands for the
real value ``r * 2**-frac_bits``. Formats are plain values: cores take them as parameters and the
compiler assigns one to every edge of a design.

Conversions between formats are explicit. :func:`convert` builds the hardware for one, with a
choice of rounding (``"nearest"``: round half up, or ``"truncate"``: toward minus infinity) and of
overflow handling (``"saturate"`` or ``"wrap"``), and reports whether the value overflowed so that a
core can keep a sticky overflow flag. :meth:`Q.quantize` and :meth:`Q.to_float` are the same
conversions on numpy arrays, bit for bit.
"""

import math
import re
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Mux, Value, signed

__all__ = ["Q", "convert", "convert_raw", "exact_integers", "exact_matmul"]

# int64 holds every intermediate of the software models below this many bits.
INT64_EXACT_BITS = 62
# float64 holds every integer below 2**53 exactly, so BLAS sums such integers exactly.
FLOAT64_EXACT_BITS = 53

_FORMAT_RE = re.compile(r"^[qs]?(-?\d+)\.(-?\d+)$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Q:
    """A signed fixed-point format.

    Parameters
    ----------
    int_bits : int
        Integer bits, the sign bit included. May be zero or negative for formats of small
        numbers (``Q(-6, 24)`` is 18 bits holding magnitudes below ``2**-7``).
    frac_bits : int
        Fractional bits. The width ``int_bits + frac_bits`` is at least 1.
    """

    int_bits: int
    frac_bits: int

    def __post_init__(self):
        if self.int_bits + self.frac_bits < 1:
            raise ValueError(f"Q format needs a width of at least 1 bit, not q{self.int_bits}.{self.frac_bits}")

    @classmethod
    def parse(cls, text):
        """Parse ``"q16.16"`` (or ``"16.16"``, ``"s16.16"``): integer bits, then fractional bits."""
        if isinstance(text, Q):
            return text
        match = _FORMAT_RE.match(str(text).strip())
        if match is None:
            raise ValueError(f"bad number format {text!r}: expected qI.F, e.g. q16.16 (I integer bits with sign, F fractional bits)")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def for_range(cls, max_abs, width):
        """The format of ``width`` bits with the most fractional bits that still holds ``±max_abs``."""
        if not math.isfinite(max_abs):
            raise ValueError(f"cannot choose a format for values of magnitude {max_abs}")
        if max_abs <= 0:
            return cls(1, width - 1)
        int_bits = 1 + math.ceil(math.log2(max_abs))
        if cls(int_bits, width - int_bits).max_value < max_abs:
            int_bits += 1
        return cls(int_bits, width - int_bits)

    @property
    def width(self):
        return self.int_bits + self.frac_bits

    @property
    def shape(self):
        return signed(self.width)

    @property
    def min_raw(self):
        return -(1 << (self.width - 1))

    @property
    def max_raw(self):
        return (1 << (self.width - 1)) - 1

    @property
    def ulp(self):
        return 2.0 ** -self.frac_bits

    @property
    def max_value(self):
        return self.max_raw * self.ulp

    def __str__(self):
        return f"q{self.int_bits}.{self.frac_bits}"

    def quantize(self, values, *, rounding="nearest", overflow="saturate"):
        """Real values to raw integers (numpy ``object`` array of Python ints for exactness)."""
        scaled = np.asarray(values, dtype=np.float64) * (2.0 ** self.frac_bits)
        if not np.all(np.isfinite(scaled)):
            raise ValueError("cannot quantize NaN or infinite values")
        raw = np.floor(scaled + 0.5) if rounding == "nearest" else np.floor(scaled)
        if raw.size and np.max(np.abs(raw)) < 2.0 ** 62:
            raw = raw.astype(np.int64).astype(object)  # exact: these floats are integers below 2**62
        else:
            raw = np.vectorize(int, otypes=[object])(raw) if raw.size else raw.astype(object)
        return self.fit_raw(raw, overflow=overflow)

    def fit_raw(self, raw, *, overflow="saturate"):
        """Bring raw integers into this format's range, saturating or wrapping.

        int64 arrays stay int64 when the format fits them; anything else becomes Python ints.
        """
        raw = np.asarray(raw)
        if raw.dtype != np.int64 or self.width > INT64_EXACT_BITS:
            raw = raw.astype(object)
        if overflow == "saturate":
            return np.clip(raw, self.min_raw, self.max_raw)
        modulus = 1 << self.width
        return (raw - self.min_raw) % modulus + self.min_raw

    def to_float(self, raw):
        """Raw integers to real values (float64)."""
        return np.asarray(raw, dtype=np.float64) * self.ulp

    def to_unsigned(self, raw):
        """Raw integers as the unsigned bit patterns a simulator port carries."""
        return np.asarray(raw, dtype=object) & ((1 << self.width) - 1)

    def from_unsigned(self, bits):
        """Unsigned bit patterns read from a simulator port to raw signed integers."""
        bits = np.asarray(bits, dtype=object) & ((1 << self.width) - 1)
        return np.where(bits >= (1 << (self.width - 1)), bits - (1 << self.width), bits)


def exact_integers(raw, bits):
    """``raw`` as an array that holds ``bits``-bit signed integers exactly: int64 (fast) when they
    fit it with room for a rounding carry, else Python ints."""
    return np.asarray(raw, dtype=np.int64 if bits <= INT64_EXACT_BITS else object)


def exact_matmul(x, x_bits, matrix, matrix_bits):
    """``x @ matrix.T`` for raw signed integers of ``x_bits`` and ``matrix_bits``, exactly, at BLAS speed.

    A float64 matrix product is exact while every partial sum is an integer below 2**53. Wider
    operands are cut into limbs (low limbs unsigned, the top one signed) narrow enough for that,
    and the limb products are shifted and added as integers: int64 when the result fits it, else
    Python ints. Python-int matrix products, hundreds of times slower, are never needed.
    """
    depth = matrix.shape[-1]
    budget = FLOAT64_EXACT_BITS - max(depth - 1, 0).bit_length()
    x_limbs, matrix_limbs = min(((a, b) for a in range(1, 9) for b in range(1, 9)
                                 if -(-x_bits // a) + -(-matrix_bits // b) <= budget), key=lambda pair: pair[0] * pair[1])
    result_bits = x_bits + matrix_bits + max(depth - 1, 0).bit_length()
    total = None
    for x_shift, x_part in _limbs(x, x_bits, x_limbs):
        for matrix_shift, matrix_part in _limbs(matrix, matrix_bits, matrix_limbs):
            part = exact_integers((x_part @ matrix_part.T).astype(np.int64), result_bits) << (x_shift + matrix_shift)
            total = part if total is None else total + part
    return total


def _limbs(raw, bits, count):
    """``(shift, limb)`` pairs, limbs as float64 arrays, with ``raw == sum(limb << shift)``."""
    size = -(-bits // count)
    raw = exact_integers(raw, bits)
    return [(size * k, np.asarray((raw >> (size * k)) & ((1 << size) - 1) if k < count - 1 else raw >> (size * k),
                                  dtype=np.float64))
            for k in range(count)]


def convert_raw(raw, src, dst, *, rounding="nearest", overflow="saturate"):
    """Software model of :func:`convert` on raw integers in format ``src``; returns ``(raw, overflowed)``.

    The arithmetic is exact either way; it runs on int64 when every intermediate fits.
    """
    shift = src.frac_bits - dst.frac_bits
    raw = exact_integers(raw, max(src.width - min(shift, 0), dst.width) + 1)
    if shift > 0:
        if rounding == "nearest":
            raw = raw + (1 << (shift - 1))
        raw = raw >> shift
    elif shift < 0:
        raw = raw << (-shift)
    overflowed = (raw < dst.min_raw) | (raw > dst.max_raw)
    return dst.fit_raw(raw, overflow=overflow), overflowed


def convert(value, src, dst, *, rounding="nearest", overflow="saturate"):
    """Hardware conversion of ``value`` from format ``src`` to format ``dst``.

    Parameters
    ----------
    value : Value
        A signed value holding a raw number in format ``src``. It may be wider than ``src.width``
        (e.g. a full-precision product); only its fractional point position matters.
    src, dst : Q
        Formats of the input and of the result.
    rounding : "nearest" or "truncate"
        Round half up, or drop the discarded bits (round toward minus infinity).
    overflow : "saturate" or "wrap"
        Clamp to the range of ``dst``, or keep the low bits.

    Returns
    -------
    (Value, Value)
        The converted value, of shape ``dst.shape``, and a 1-bit flag that is set when the value
        did not fit ``dst``. Both are combinational; register them in the calling core.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        value = value.as_signed()
    shift = src.frac_bits - dst.frac_bits
    if shift > 0:
        if rounding == "nearest":
            value = value + (1 << (shift - 1))
        value = value >> shift
    elif shift < 0:
        value = value << (-shift)
    too_big = value > dst.max_raw
    too_small = value < dst.min_raw
    if overflow == "saturate":
        result = Mux(too_big, dst.max_raw, Mux(too_small, dst.min_raw, value))
    else:
        result = value
    return result[:dst.width].as_signed(), too_big | too_small
