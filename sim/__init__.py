"""Cycle-accurate simulation of generated Verilog: Verilator, driven by cocotb.

``run_verilog(verilog, inputs=..., outputs=...)`` streams words through a design's stream ports and
returns the output words with the cycle of every transfer. Verilator is found and configured
automatically and compiled models are cached (:mod:`sim.verilator`).
"""

from .streams import CycleLimitExceeded, Deadlock, ExtraOutput, SimulationError, VerilogRun, run_verilog
from .verilator import BuildError

__all__ = ["run_verilog", "VerilogRun", "SimulationError", "Deadlock", "CycleLimitExceeded", "ExtraOutput", "BuildError"]
