"""A library of parameterized Amaranth streaming cores for fixed-point dataflow designs.

Every core is a :class:`amaranth.lib.wiring.Component` whose ports are
:class:`amaranth.lib.stream` interfaces carrying vectors of ``lanes`` fixed-point elements, and
every core declares a cycle-exact :class:`~cores.contract.TimingContract` as ``core.contract``.
Every core has the same interface besides (:mod:`cores.model`): a bit-exact ``reference``, its
``multipliers`` and ``memories``; the computing cores also build it as a model with no hardware.
"""

from .contract import Schedule, TimingContract
from .fixed import Q, convert
from .ports import lanes_layout, lanes_signature
from .multiply import Multiplier
from .pipelining import UNPIPELINED, Pipelining
from .elementwise import Add, AddConst, Mul, MulAdd, MulConst, Neg, Scale, Sub
from .matmul import MatVec
from .nonlinear import Abs, Cos, Exp, Relu, Sigmoid, Sin, Softplus, Sqrt, Step, Tanh
from .pacer import Pacer
from .plumbing import Fork, Gather, LaneConverter, LaneSerializer, StreamFIFO
from .reduce import Accumulate, Sum

__all__ = [
    "Q", "convert", "TimingContract", "Schedule", "lanes_layout", "lanes_signature", "Multiplier", "Pipelining", "UNPIPELINED",
    "Add", "Sub", "Mul", "Neg", "Scale", "MulAdd", "AddConst", "MulConst",
    "Sin", "Cos", "Tanh", "Sigmoid", "Softplus", "Exp", "Sqrt", "Relu", "Step", "Abs", "MatVec", "Pacer", "Fork", "Gather", "LaneSerializer", "LaneConverter", "StreamFIFO", "Sum", "Accumulate",
]
