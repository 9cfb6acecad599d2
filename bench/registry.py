"""The registry's nonlinear cores (the ``scaled`` ops of :data:`inrarch.ops.OPS`), for the benches and
tests that must cover every one of them: a new op is measured and tested with no edit to their lists.

A list names its own cases for the cores it knows; :func:`missing` gives the registry's cores it
has none for, which it then takes at default formats: :func:`small_formats` (``q4.8`` in, 16 bits
out) or :func:`wide_formats` (``q8.24`` in, 32 bits out, inputs within ``±SPAN``), the output over
the op's bound or the function's largest value on those inputs.
"""

import numpy as np

from cores.fixed import Q
from inrarch.ir import Node
from inrarch.ops import OPS

__all__ = ["SPAN", "nonlinear_cores", "float64", "missing", "small_formats", "wide_formats"]

SPAN = 8.0
"""Largest magnitude of the real inputs of the wide default cases."""


def _specs():
    return {spec.core_class: spec for spec in OPS.values() if spec.scaled}


def nonlinear_cores():
    """Every nonlinear core class of the registry, in registry order."""
    return list(_specs())


def float64(cls):
    """The float64 function ``f(z)`` that the core ``cls`` computes as ``f(scale * a)``."""
    spec = _specs()[cls]
    return lambda z: spec.semantics(Node(spec.name, [], (1,), attrs={"scale": 1.0}), [np.asarray(z)])


def missing(cases):
    """The registry's nonlinear cores with no case in ``cases`` (each a sequence, the core first)."""
    covered = {case[0] for case in cases}
    return [cls for cls in nonlinear_cores() if cls not in covered]


def _output(cls, in_format, width, span):
    bound = _specs()[cls].bound
    if bound is None:
        z = np.linspace(-span, span, 4097)
        with np.errstate(all="ignore"):
            bound = float(np.max(np.abs(float64(cls)(z))))
    return str(Q.for_range(bound, width))


def small_formats(cls):
    """``(input format, output format)`` of a core's small default case: every input of ``q4.8``."""
    return "q4.8", _output(cls, Q(4, 8), 16, Q(4, 8).max_value)


def wide_formats(cls):
    """``(input format, output format)`` of a core's wide default case: ``q8.24``, inputs within ``±SPAN``."""
    return "q8.24", _output(cls, Q(8, 24), 32, SPAN)
