"""inrarch: nth-order gradients of implicit neural representations as streaming FPGA designs.

Pipeline: capture (:mod:`inrarch.capture`) → IR passes (:mod:`inrarch.passes`) → number formats
(:mod:`inrarch.formats`) → lowering to cores (:mod:`inrarch.lower`) → latency solver and FIFO
sizing (:mod:`inrarch.schedule`) → top-level component, Verilog and report (:mod:`inrarch.top`,
:mod:`inrarch.design`, :mod:`inrarch.report`), the whole run by :func:`inrarch.compile`
(:mod:`inrarch.compiler`) → board builds (:mod:`inrarch.build`, ``boards/``) → simulation (``sim/``).
"""

import importlib

from . import models
from .derivatives import derivatives
from .errors import CompileError, InrarchError
from .evaluation import reference

__all__ = ["models", "derivatives", "compile", "reference", "Design", "SimulationResult", "CompileError",
           "InrarchError"]

# The hardware half of the package (and Amaranth with it) is imported when first used, so that the
# IR, its passes and capture import without it.
_HARDWARE = {"compile": ".compiler", "Design": ".design", "SimulationResult": ".design"}


def __getattr__(name):
    if name in _HARDWARE:
        return getattr(importlib.import_module(_HARDWARE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
