"""inrarch: nth-order gradients of implicit neural representations as streaming FPGA designs.

Pipeline: capture (:mod:`inrarch.capture`) → IR passes (:mod:`inrarch.passes`) → number formats
(:mod:`inrarch.formats`) → lowering to cores (:mod:`inrarch.lower`) → latency solver and FIFO
sizing (:mod:`inrarch.schedule`) → top-level component, Verilog and report (:mod:`inrarch.top`,
:mod:`inrarch.design`, :mod:`inrarch.report`), the whole run by :func:`inrarch.compile`
(:mod:`inrarch.compiler`) with its :class:`CompileOptions` (:mod:`inrarch.options`) → board
builds (:mod:`inrarch.build`, ``boards/``) → simulation (``sim/``) and its checks
(:mod:`inrarch.verification`).
"""

from . import models, verification
from .derivatives import derivatives
from .compiler import compile
from .design import Design, SimulationResult
from .errors import CompileError, InrarchError, OptionError
from .evaluation import reference
from .options import CompileOptions

__all__ = ["models", "verification", "derivatives", "compile", "CompileOptions", "reference", "Design",
           "SimulationResult", "CompileError", "InrarchError", "OptionError"]
