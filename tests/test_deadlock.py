"""The simulation watchdog names the FIFOs that were full and empty when nothing moved."""

import pytest
import torch

import inrarch
from inrarch import schedule
from sim import Deadlock

MODEL = inrarch.models.siren(in_features=2, hidden=8, layers=1, out_features=3, w0=30.0, seed=0)
BATCH = 4


def test_the_solved_depths_never_block_a_write():
    design = inrarch.compile(inrarch.derivatives(MODEL, 1), torch.zeros(BATCH, 2, dtype=torch.float64))
    run = schedule.simulate(design.netlist, BATCH)
    assert not run.deadlock and run.cycles == design.report["cycles_predicted"]
    assert all(not blocked for blocked in run.blocked.values())


def test_watchdog_names_the_blocked_fifos():
    """A sink that never takes a word backs the design up until every write waits: the watchdog
    must stop the run and say which FIFOs are full (the ones in front of that sink first)."""
    design = inrarch.compile(inrarch.derivatives(MODEL, 1), torch.zeros(BATCH, 2, dtype=torch.float64))
    x = torch.rand(BATCH, 2, dtype=torch.float64) * 2 - 1
    with pytest.raises(Deadlock) as stopped:
        design.simulate(x, ready_prob=1e-12, watchdog=300)
    message = str(stopped.value)
    assert "full FIFOs: " in message and "full FIFOs: none" not in message
    full = message.split("full FIFOs: ")[1].split(";")[0].split(", ")
    assert any(name.endswith("->output.y0") for name in full)
    assert all(name in design.elaboratable.fifo_names for name in full)
