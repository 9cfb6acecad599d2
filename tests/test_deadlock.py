"""The simulation watchdog names the FIFOs that were full and empty when nothing moved."""

import pytest
import torch

import inrarch
from cores.plumbing import StreamFIFO
from inrarch.top import DataflowDesign, fifo_names
from inrarch.verification import simulate_and_check
from sim import Deadlock

from backpressure import simulate

MODEL = inrarch.models.siren(in_features=2, hidden=8, layers=1, out_features=3, w0=30.0, seed=0)
BATCH = 4


def full_fifos(message):
    """The FIFO names a watchdog message lists as full."""
    assert "full FIFOs: " in message and "full FIFOs: none" not in message
    return message.split("full FIFOs: ")[1].split(";")[0].split(", ")


def test_the_solved_depths_never_block_a_write():
    design = inrarch.compile(inrarch.derivatives(MODEL, 1), torch.zeros(BATCH, 2, dtype=torch.float64))
    run = simulate(design.netlist, BATCH, design.schedule.depths)
    assert not run.deadlock and run.cycles == design.report["cycles_predicted"]
    assert all(not blocked for blocked in run.blocked.values())


def test_watchdog_names_the_blocked_fifos():
    """A sink that never takes a word backs the design up until every write waits: the watchdog
    must stop the run and say which FIFOs are full (the ones in front of that sink first)."""
    design = inrarch.compile(inrarch.derivatives(MODEL, 1), torch.zeros(BATCH, 2, dtype=torch.float64))
    x = torch.rand(BATCH, 2, dtype=torch.float64) * 2 - 1
    with pytest.raises(Deadlock) as stopped:
        design.simulate(x, ready_prob=1e-12, watchdog=300)
    full = full_fifos(str(stopped.value))
    assert any(name.endswith("->output.y0") for name in full)
    assert all(name in fifo_names(design.netlist) for name in full)


class Residual(torch.nn.Module):
    """``head(h + mix(h))`` with ``h = tanh(embed(x))``: ``h`` reaches the add directly and through a
    matmul, which emits nothing before it has read the whole of ``h``. The direct branch's FIFO must
    hold ``h`` meanwhile; the solver sizes it so."""

    def __init__(self):
        super().__init__()
        self.embed, self.mix, self.head = torch.nn.Linear(2, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 1)

    def forward(self, x):
        h = torch.tanh(self.embed(x))
        return self.head(h + self.mix(h))


def test_a_fifo_below_its_solved_depth_deadlocks_and_is_named():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Residual()
    design = inrarch.compile(model, torch.zeros(BATCH, 2))
    direct = next(stream for stream in design.netlist.streams
                  if stream.sink is not None and stream.sink.node.op == "add"
                  and design.schedule.depths[stream] > StreamFIFO.min_depth)
    name = fifo_names(design.netlist)[design.netlist.streams.index(direct)]
    assert not simulate(design.netlist, BATCH, design.schedule.depths).deadlock
    shallow = {**design.schedule.depths, direct: StreamFIFO.min_depth}
    design.elaboratable = DataflowDesign(design.netlist, shallow)  # before the Verilog is written
    x = torch.rand(BATCH, 2) * 2 - 1
    with pytest.raises(Deadlock) as stopped:
        design.simulate(x, watchdog=300)
    assert name in full_fifos(str(stopped.value))
    verification = simulate_and_check(design, model, x, tolerance=1e-3, watchdog=300)
    assert verification.result is None and len(verification.problems) == 1
    problem = verification.problems[0]
    assert problem.startswith("the watchdog stopped the simulation") and "\n" not in problem
    assert name in full_fifos(problem)
