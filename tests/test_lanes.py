"""Sample lanes: designs that compute several samples at once, and the budget that chooses them.

The Verilator cases build small SIRENs (float32, as users build them) with 2 and 4 lanes, the
pacer interleaving samples into lanes and a LaneSerializer on every output putting them back,
and compare every output with float64 torch and the cycles with the solver's.
"""

import numpy as np
import pytest
import torch

import inrarch
from inrarch.errors import CompileError
from devices import ULTRASCALE_PLUS
from inrarch.lower import _Folding, choose_lanes, lower
from inrarch.schedule import solve

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def model():
    return inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=3, w0=30.0, seed=0)


def _check_against_torch(design, fn, x):
    result = design.simulate(x, valid_prob=0.7, ready_prob=0.7, seed=3)
    for got, ref in zip(result.outputs, inrarch.reference(fn, x)):
        ref = ref.detach().numpy()
        assert got.shape == ref.shape
        assert np.max(np.abs(got - ref)) <= TOLERANCE * np.max(np.abs(ref))
    assert not result.overflow
    return design.simulate(x)


@pytest.mark.parametrize("lanes, batch", [(2, 7), (4, 9)])
def test_a_design_with_lanes_runs_in_verilator_and_matches_torch(model, lanes, batch):
    fn = inrarch.derivatives(model, 1)
    design = inrarch.compile(fn, torch.zeros(batch, 2), lanes=lanes)
    assert design.report["lanes"] == lanes == design.netlist.lanes
    x = torch.tensor(np.random.default_rng(lanes).uniform(-1.0, 1.0, size=(batch, 2)), dtype=torch.float32)
    result = _check_against_torch(design, fn, x)
    # The batch is padded to whole groups of lanes, and the solver predicts the padded run exactly.
    assert result.cycles == design.report["cycles_predicted"]
    assert [len(out) for out in result.outputs] == [batch] * len(result.outputs)


def test_a_budget_folded_design_with_lanes_keeps_its_predicted_cycles(model):
    fn = inrarch.derivatives(model, 1)
    fast = inrarch.compile(fn, torch.zeros(6, 2), lanes=2)
    folded = inrarch.compile(fn, torch.zeros(6, 2), lanes=2, dsp_budget=fast.report["dsp_estimate"] // 2)
    assert folded.report["dsp_estimate"] <= fast.report["dsp_estimate"] // 2
    assert folded.netlist.period > fast.netlist.period
    x = torch.tensor(np.random.default_rng(5).uniform(-1.0, 1.0, size=(6, 2)), dtype=torch.float32)
    assert _check_against_torch(folded, fn, x).cycles == folded.report["cycles_predicted"]


def test_lanes_multiply_the_multipliers_but_not_the_weights(model):
    fn = inrarch.derivatives(model, 1)
    one = inrarch.compile(fn, torch.zeros(32, 2), lanes=1)
    three = inrarch.compile(fn, torch.zeros(32, 2), lanes=3)
    assert three.report["multipliers"] == 3 * one.report["multipliers"]
    assert three.report["dsp_estimate"] == 3 * one.report["dsp_estimate"]
    assert three.report["weight_bits"] == one.report["weight_bits"]
    # A group of three takes longer than one sample (its outputs leave one element per cycle),
    # but less than three samples do.
    assert one.netlist.period < three.netlist.period < 3 * one.netlist.period
    assert three.report["cycles_predicted"] < one.report["cycles_predicted"]


def test_a_larger_budget_never_takes_more_cycles_and_fills_it(model):
    fn = inrarch.derivatives(model, 1)
    batch = 16
    previous = None
    for budget in (40, 80, 160, 320, 640):
        design = inrarch.compile(fn, torch.zeros(batch, 2), dsp_budget=budget)
        report = design.report
        assert report["dsp_estimate"] <= budget
        if previous is not None:
            assert report["cycles_predicted"] <= previous
        previous = report["cycles_predicted"]
    assert report["lanes"] > 1


def test_the_chosen_lanes_finish_the_batch_no_later_than_any_other_that_fits(model):
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(16, 2))
    graph = design.graph
    folding = _Folding(graph, design.formats, ULTRASCALE_PLUS, None)
    budget = 5 * folding.dsps(folding.fastest)
    chosen = solve(lower(graph, design.formats, dsp_budget=budget, batch=16), 16).cycles
    for lanes in range(1, 6):
        netlist = lower(graph, design.formats, dsp_budget=budget, batch=16, lanes=lanes)
        assert netlist.dsps <= budget
        assert chosen <= solve(netlist, 16).cycles, f"{lanes} lanes are faster"
    assert choose_lanes(folding, budget, batch=1) == (1, folding.fastest)


def test_the_first_sample_latency_is_reported(model):
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(8, 2), lanes=2)
    assert design.report["first_sample_cycles"] == solve(design.netlist, 1).cycles
    assert design.schedule.cycles > design.report["first_sample_cycles"]  # from the batch's own schedule
    assert design.report["first_sample_cycles"] < design.report["cycles_predicted"]


def test_lanes_below_one_are_refused(model):
    with pytest.raises(CompileError, match="lanes must be at least 1, not 0"):
        inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2), lanes=0)


def test_buffer_memory_is_bounded_by_the_budget_not_the_batch(model):
    fn = inrarch.derivatives(model, 1)
    budget = 3 * inrarch.compile(fn, torch.zeros(4, 2)).report["dsp_estimate"]
    reports = [inrarch.compile(fn, torch.zeros(batch, 2), dsp_budget=budget).report for batch in (64, 256)]
    assert reports[0]["lanes"] == reports[1]["lanes"] > 1
    assert reports[0]["buffer_bits"] == reports[1]["buffer_bits"]
    assert reports[0]["buffer_bits_by_kind"].keys() >= {"FIFO", "MatVec", "Gather", "LaneSerializer"}
