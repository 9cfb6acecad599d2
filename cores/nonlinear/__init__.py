"""Element-wise nonlinear functions: sin, cos, tanh, sigmoid, softplus, exp, sqrt, relu and its
derivative step, and abs.

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
(and ``multipliers``, which :func:`inrarch.resources.core_dsps` counts) is known before
elaboration.

Every core has a ``reference`` method that returns the exact raw outputs the hardware gives,
computed with Python integers; the tests check the hardware against it bit for bit and check it
against float64 to measure the error. ``Sin.model(...)`` (and so on) builds the same model without
the hardware (:mod:`cores.model`). See ``docs/nonlinear.md`` for the measured errors.

The package holds the table fitting (``table``), the shared base (``base``), the sinusoids, the
saturating functions (tanh, sigmoid, softplus), exp and sqrt (``powers``), and relu, step and abs.
"""

from .powers import Exp, Sqrt
from .relu import Abs, Relu, Step
from .saturating import Sigmoid, Softplus, Tanh
from .sinusoid import Cos, Sin

__all__ = ["Sin", "Cos", "Tanh", "Sigmoid", "Softplus", "Exp", "Sqrt", "Relu", "Step", "Abs"]
