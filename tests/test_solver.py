# amaranth: UnusedElaboratable=no
# (The design is elaborated by hand, so that the FIFOs' level signals can be watched.)
"""The latency solver's report, plots and back-pressure prediction, checked in Amaranth's simulator.

One small design is used throughout: the first and second derivatives of SIREN 2→8→8→3, where the
forward activations (cos of the pre-activations) rejoin the tangent chains at multipliers, so
FIFOs on the early branch of each reconvergence need more than the minimum depth.
"""

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

import inrarch
from inrarch.solver_report import fifo_occupancy, write_plots
from inrarch.top import DataflowDesign

from backpressure import simulate

BATCH = 4


@pytest.fixture(scope="module")
def design():
    fn = inrarch.derivatives(inrarch.models.siren(2, 8, 2, 3, 30.0, 0), 2)
    return inrarch.compile(fn, torch.zeros(BATCH, 2))


@pytest.fixture(scope="module")
def words(design):
    return _input_words(design)


@pytest.fixture(scope="module")
def wide_design():
    """SIREN 2→16→16→3 at order 2. In the 8-wide design every FIFO whose shrinking costs cycles is at
    the minimum depth of 3, which cannot shrink; here some deeper ones have no slack."""
    fn = inrarch.derivatives(inrarch.models.siren(2, 16, 2, 3, 30.0, 0), 2)
    return inrarch.compile(fn, torch.zeros(BATCH, 2))


def _input_words(design):
    fmt = design.input_format
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(BATCH, 2))
    return [int(w) for w in fmt.to_unsigned(fmt.quantize(x.reshape(-1)))]


def _fifo_name(netlist, stream):
    index = netlist.readers(stream.source).index(stream)
    sink = stream.sink.name if stream.sink is not None else stream.port
    return f"fifo_{stream.source.name}_to_{sink}_{stream.port}_{index}"


def _simulate_amaranth(netlist, depths, words, max_cycles=5000):
    """Run the design with an always-valid input and always-ready outputs; watch every FIFO.

    Returns cycles (first input accepted → last output taken, inclusive) and per stream the
    cycles of its FIFO writes (from the first accept), its blocked write cycles and peak level.
    """
    top = DataflowDesign(netlist, depths)
    module = top.elaborate(None)
    fifos = {stream: module._named_submodules[_fifo_name(netlist, stream)][0].component for stream in netlist.streams}
    expected = {s.port: len(words) // netlist.source.node.numel * s.source.node.numel for s in netlist.outputs}
    seen = {"writes": {s: [] for s in fifos}, "blocked": dict.fromkeys(fifos, 0), "peak": dict.fromkeys(fifos, 0)}

    async def bench(ctx):
        outputs = {port: getattr(top, port) for port in expected}
        for port in outputs.values():
            ctx.set(port.ready, 1)
        sent, got, cycle, first, last = 0, dict.fromkeys(expected, 0), 0, None, None
        while sent < len(words) or any(got[p] < expected[p] for p in expected):
            assert cycle < max_cycles, "no completion: deadlock"
            ctx.set(top.x.valid, int(sent < len(words)))
            ctx.set(top.x.payload.as_value(), words[min(sent, len(words) - 1)])
            if sent < len(words) and ctx.get(top.x.ready):
                first = cycle if first is None else first
                sent += 1
            for port_name, port in outputs.items():
                if ctx.get(port.valid):
                    got[port_name] += 1
                    last = cycle
            for stream, fifo in fifos.items():
                seen["peak"][stream] = max(seen["peak"][stream], ctx.get(fifo.level))
                if ctx.get(fifo.i.valid):
                    if ctx.get(fifo.i.ready):
                        seen["writes"][stream].append(cycle)
                    else:
                        seen["blocked"][stream] += 1
            await ctx.tick()
            cycle += 1
        seen["cycles"] = last - first + 1
        seen["writes"] = {s: [c - first for c in w] for s, w in seen["writes"].items()}

    sim = Simulator(module)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def _reconvergent(netlist):
    """Streams into cores with several inputs: each rejoins a path that forked earlier."""
    return [s for s in netlist.streams if s.sink is not None and len(s.sink.inputs) > 1]


@pytest.fixture(scope="module")
def solved_run(design, words):
    return _simulate_amaranth(design.netlist, design.schedule.depths, words)


def _shrunk(design, words, stream):
    depths = _one_shallower(design, stream)
    return _simulate_amaranth(design.netlist, depths, words), simulate(design.netlist, BATCH, depths)


def _one_shallower(design, stream):
    return {**design.schedule.depths, stream: design.schedule.depths[stream] - 1}


def _assert_prediction_matches(simulated, predicted, netlist):
    assert predicted.cycles == simulated["cycles"]
    for stream in netlist.streams:
        name = _fifo_name(netlist, stream)
        assert predicted.writes[stream] == simulated["writes"][stream], name
        assert predicted.blocked[stream] == simulated["blocked"][stream], name
        assert predicted.peak_level[stream] == simulated["peak"][stream], name


def test_report_has_memory_types_and_critical_path(design):
    report = design.report
    assert all(f["memory"] in ("SRL", "LUTRAM", "BRAM", "URAM") for f in report["fifos"])
    assert sum(report["fifo_bits_by_memory"].values()) == report["fifo_bits"]
    path = report["critical_path"]
    bound = max(design.netlist.instances[1:], key=lambda i: i.contract.ii * i.firings_per_group)
    assert path["busy_cycles_per_group"] == bound.contract.ii * bound.firings_per_group <= design.netlist.period
    schedule = design.schedule
    for output, stream in zip(path["outputs"], design.netlist.outputs):
        first_out = schedule.emits[stream.source][0] + 2
        assert output["latency"] == sum(h["latency"] for h in output["path"]) == first_out - schedule.first_accept
        assert output["path"][0]["core"] == "input" and output["path"][-1]["core"] == stream.port


def test_plots_are_written(design, tmp_path):
    files = write_plots(design, tmp_path)
    assert [f.name for f in files] == ["timeline.png", "fifo_occupancy.png"]
    assert all(f.stat().st_size > 1000 for f in files)


def test_occupancy_from_the_schedule_stays_within_the_depths(design):
    for stream in design.netlist.streams:
        _, levels = fifo_occupancy(stream, design.schedule)
        assert levels.min() >= 0 and levels[-1] == 0
        assert levels.max() <= design.schedule.depths[stream]


def test_solved_depths_run_at_the_predicted_cycles_and_are_tight(design, solved_run):
    assert solved_run["cycles"] == design.report["cycles_predicted"]
    assert all(blocked == 0 for blocked in solved_run["blocked"].values())
    peaks, depths = solved_run["peak"], design.schedule.depths
    assert all(peaks[s] <= depths[s] for s in design.netlist.streams)
    assert any(peaks[s] == depths[s] for s in design.netlist.streams)
    _assert_prediction_matches(solved_run, simulate(design.netlist, BATCH, depths), design.netlist)
    for stream in design.netlist.streams:  # with no stalls, the writes are the solved emits
        assert solved_run["writes"][stream] == list(design.schedule.emits[stream.source] - design.schedule.first_accept)


def test_shrinking_the_deepest_reconvergent_fifo_stalls_as_predicted(design, words, solved_run):
    stream = max(_reconvergent(design.netlist), key=design.schedule.depths.get)
    assert design.schedule.depths[stream] > 3
    simulated, predicted = _shrunk(design, words, stream)
    assert simulated["blocked"][stream] > 0
    assert simulated["writes"][stream] != solved_run["writes"][stream]
    _assert_prediction_matches(simulated, predicted, design.netlist)


def test_a_shrunk_fifo_on_the_latency_path_costs_the_predicted_cycles(wide_design):
    """Shrinking a FIFO whose early branch has no slack slows the whole batch, by the predicted cycles."""
    design, words = wide_design, _input_words(wide_design)
    costly = []
    for stream in _reconvergent(design.netlist):
        if design.schedule.depths[stream] > 3:
            predicted = simulate(design.netlist, BATCH, _one_shallower(design, stream))
            if predicted.cycles > design.report["cycles_predicted"]:
                costly.append(stream)
    assert costly, "no reconvergent FIFO is on a path without slack"
    stream = max(costly, key=design.schedule.depths.get)
    simulated, predicted = _shrunk(design, words, stream)
    assert simulated["cycles"] > design.report["cycles_predicted"]
    _assert_prediction_matches(simulated, predicted, design.netlist)
