"""Cycle-accurate simulation of generated Verilog: Verilator, driven by cocotb.

``run_verilog(verilog, inputs=..., outputs=...)`` streams words through a design's stream ports and
returns the output words with the cycle of every transfer. Verilator is found and configured
automatically and compiled models are cached (:mod:`sim.verilator`).

For cocotb tests of your own: :class:`StreamDriver` and :class:`StreamMonitor` send and take the
words of a stream port, and :func:`verilator_runner` builds and runs the test (docs/cocotb.md).
"""

from .cocotb_streams import StreamDriver, StreamMonitor
from .streams import CycleLimitExceeded, Deadlock, ExtraOutput, SimulationError, VerilogRun, run_verilog
from .verilator import BuildError, verilator_runner

__all__ = ["run_verilog", "VerilogRun", "SimulationError", "Deadlock", "CycleLimitExceeded", "ExtraOutput", "BuildError",
           "StreamDriver", "StreamMonitor", "verilator_runner"]
