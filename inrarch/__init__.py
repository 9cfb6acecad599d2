"""inrarch: nth-order gradients of implicit neural representations as streaming FPGA designs.

Pipeline: capture (:mod:`inrarch.capture`) → IR passes (:mod:`inrarch.passes`) → number formats
(:mod:`inrarch.formats`) → lowering to cores (:mod:`inrarch.lower`) → latency solver and FIFO
sizing (:mod:`inrarch.schedule`) → top-level component, Verilog and report (:mod:`inrarch.top`,
:mod:`inrarch.design`, :mod:`inrarch.report`), the whole run by :func:`inrarch.compile`
(:mod:`inrarch.compiler`) with its :class:`CompileOptions` (:mod:`inrarch.options`) → board
builds (:mod:`inrarch.build`, ``boards/``) → simulation (``sim/``) and its checks
(:mod:`inrarch.verification`). A design with runtime weights serves a family of networks
(:mod:`inrarch.weights`).
"""

import importlib

from . import models
from .derivatives import derivatives
from .errors import CompileError, InrarchError, OptionError
from .evaluation import reference

__all__ = ["models", "verification", "derivatives", "compile", "CompileOptions", "reference", "Design",
           "SimulationResult", "CompileError", "InrarchError", "OptionError"]

# The hardware half of the package (and Amaranth with it) is imported when first used, so that the
# IR, its passes and capture import without it.
_HARDWARE = {"compile": ".compiler", "Design": ".design", "SimulationResult": ".design",
             "CompileOptions": ".options"}
_HARDWARE_MODULES = {"verification"}


def __getattr__(name):
    if name in _HARDWARE:
        return getattr(importlib.import_module(_HARDWARE[name], __name__), name)
    if name in _HARDWARE_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
