import numpy as np
import pytest
from amaranth.sim import Simulator

from cores.fixed import Q
from cores.pacer import Pacer, PacerCycles
from cores.testing import check_contract, run_streams

# A test builds pacers only to see which periods they take.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

FMT = Q(4, 12)


def random_values(count, seed):
    return [int(v) for v in np.random.default_rng(seed).integers(FMT.min_raw, FMT.max_raw, count)]


def interleaved(values, tokens, lanes):
    """Output beats for sample-major input values: beat j of a group holds element j of each sample."""
    groups = np.reshape(values, (-1, lanes, tokens))
    return [tuple(int(v) for v in beat) for group in groups for beat in group.T]


# (tokens, period, lanes); each lane count has a case at its shortest period, (lanes + 1) * tokens.
CASES = [(1, 2, 1), (2, 7, 1), (3, 6, 1), (2, 6, 2), (3, 13, 2), (1, 4, 3), (3, 12, 3)]


@pytest.mark.parametrize("tokens,period,lanes", CASES)
def test_pacer_keeps_contract_with_input_gaps(tokens, period, lanes):
    pacer = Pacer(FMT, tokens, period, lanes=lanes)
    values = random_values(12 * lanes * tokens, tokens + lanes)
    run = run_streams(pacer, {"i": values}, {"o": 12 * tokens}, valid_prob=0.5, seed=period)
    assert run.outputs["o"] == interleaved(values, tokens, lanes)
    check_contract(pacer.contract, run)
    starts = np.asarray(run.accepts["i"])[::lanes * tokens]
    assert np.all(np.diff(starts) >= period)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_pacer_moves_every_item_once_under_stalls(lanes):
    pacer = Pacer(FMT, 3, 8 * lanes, lanes=lanes)
    values = random_values(60 * lanes, 5)
    run = run_streams(pacer, {"i": values}, {"o": 60}, valid_prob=0.6, ready_prob=0.4, seed=3)
    assert run.outputs["o"] == interleaved(values, 3, lanes)


def test_pacer_reference_interleaves_samples():
    pacer = Pacer.model(FMT, 2, 9, lanes=3)
    # two batches of one group: samples a, b, c of elements (x0, x1)
    raw = np.array([[10, 11, 20, 21, 30, 31], [40, 41, 50, 51, 60, 61]])
    assert pacer.reference(raw).tolist() == [[10, 20, 30, 11, 21, 31], [40, 50, 60, 41, 51, 61]]


@pytest.mark.parametrize("tokens,lanes", [(4, 1), (2, 2), (3, 3)])
def test_pacer_rejects_period_shorter_than_group_and_beats(tokens, lanes):
    shortest = (lanes + 1) * tokens
    Pacer(FMT, tokens, shortest, lanes=lanes)
    with pytest.raises(ValueError, match="period"):
        Pacer(FMT, tokens, shortest - 1, lanes=lanes)


@pytest.mark.parametrize("tokens,period,lanes", [(3, 7, 1), (2, 6, 2), (2, 11, 3)])
def test_cycle_model_is_the_pacer_under_backpressure(tokens, period, lanes):
    """PacerCycles takes and emits in the cycles the hardware does, from an always-valid source."""
    pacer = Pacer(FMT, tokens, period, lanes=lanes)
    total = 5 * lanes * tokens
    model = PacerCycles(tokens, period, total, lanes=lanes)
    rng = np.random.default_rng(period)
    ready = rng.random(20 * period) < 0.5
    seen = {"hardware": [], "model": []}

    async def testbench(ctx):
        sent = 0
        for out_ready in ready:
            ctx.set(pacer.i.valid, int(sent < total))
            ctx.set(pacer.o.ready, int(out_ready))
            taken = sent < total and bool(ctx.get(pacer.i.ready))
            seen["hardware"].append((taken, bool(ctx.get(pacer.o.valid))))
            model_taken = bool(model.ready(None, out_ready))
            seen["model"].append((model_taken, model.out_valid))
            model.clock(model_taken, out_ready)
            sent += taken
            await ctx.tick()

    sim = Simulator(pacer)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert sum(valid and out_ready for (_, valid), out_ready in zip(seen["hardware"], ready)) == 5 * tokens
    assert seen["model"] == seen["hardware"]


def test_cycle_model_counts_whole_groups():
    with pytest.raises(ValueError, match="groups"):
        PacerCycles(3, 12, 9, lanes=2)
