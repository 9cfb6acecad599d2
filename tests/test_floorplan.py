"""Floorplans of multi-die parts: the assignment and its accounting (:mod:`inrarch.floorplan`), the
Alveo dies, and the constraints Vivado reads (:mod:`boards.floorplan`)."""

import copy
import dataclasses
import itertools
import re

import numpy as np
import pytest
import torch

import inrarch
from boards import board_device, get_board
from boards.alveo_u50 import U50_DIES
from boards.alveo_u280 import U280_DIES
from boards.floorplan import FLOORPLAN_CONFIG, write_vitis_constraints
from cores.weights import LOAD_LATENCY
from devices import ULTRASCALE_PLUS, Die
from inrarch.emulate import relative_errors
from inrarch.floorplan import MEMORY_PORTS, RESOURCES, FloorplanError, Link, Task, floorplan
from inrarch.solver_report import write_plots

DIES = (Die("SLR0", {"DSP": 100, "BRAM36": 10, "URAM": 4}, memory=True, pblock="p0"),
        Die("SLR1", {"DSP": 100, "BRAM36": 10, "URAM": 4}, pblock="p1"),
        Die("SLR2", {"DSP": 100, "BRAM36": 10, "URAM": 4}, pblock="p2"))


def chain(sizes, bits=32):
    """Memory-facing input and output around a chain of tasks of ``sizes`` DSPs."""
    tasks = [Task("in", {}, memory_facing=True), Task("out", {}, memory_facing=True)]
    tasks += [Task(f"t{k}", {"DSP": size}) for k, size in enumerate(sizes)]
    names = ["in"] + [f"t{k}" for k in range(len(sizes))] + ["out"]
    return tasks, [Link(a, b, bits) for a, b in zip(names, names[1:])]


def brute_force(tasks, links, dies, fill=0.9):
    """``(fill, crossing bits)``: the share every die keeps within (``fill``, or the lowest peak share
    any assignment has where that is more) and the fewest crossing bits of any assignment within it."""
    movable = [task for task in tasks if not task.memory_facing]
    assignments = []
    for choice in itertools.product(range(len(dies)), repeat=len(movable)):
        place = {task.name: 0 for task in tasks if task.memory_facing}
        place.update({task.name: die for task, die in zip(movable, choice)})
        peak = max(sum(t.resources.get(r, 0) for t in tasks if place[t.name] == k) / die.capacity[r]
                   for k, die in enumerate(dies) for r in RESOURCES)
        assignments.append((peak, sum(link.bits * abs(place[link.source] - place[link.sink]) for link in links)))
    limit = max(fill, min(peak for peak, _ in assignments))
    return limit, min(cost for peak, cost in assignments if peak <= limit + 1e-9)


def test_a_design_that_fits_one_die_stays_in_the_memory_die():
    tasks, links = chain([10, 20, 30])
    plan = floorplan(tasks, links, DIES)
    assert set(plan.assignment.values()) == {0}
    assert plan.crossing_bits() == 0
    assert [row["streams"] for row in plan.boundaries()] == [0, 0]


@pytest.mark.parametrize("sizes", [[60, 60, 60], [80, 40, 70, 30], [50, 50, 50, 50, 50], [85, 10, 85, 10, 85]])
def test_the_assignment_has_the_fewest_crossing_bits_within_each_die(sizes):
    tasks, links = chain(sizes)
    plan = floorplan(tasks, links, DIES)
    use = plan.use()
    limit, crossing_bits = brute_force(tasks, links, DIES)
    assert all(use[k][r] <= limit * die.capacity[r] + 1e-9 for k, die in enumerate(DIES) for r in RESOURCES)
    assert plan.crossing_bits() == crossing_bits
    assert plan.assignment["in"] == plan.assignment["out"] == 0


def test_beyond_the_fill_share_the_dies_fill_to_the_lowest_peak_that_holds_the_design():
    # 240 DSPs in tasks of 30 on three dies of 100: at best 90, 90 and 60, above a fill of 50%
    tasks, links = chain([30] * 8)
    plan = floorplan(tasks, links, DIES, fill=0.5)
    shares = sorted(row["DSP_share"] for row in plan.as_dict()["dies"])
    assert shares == [0.6, 0.9, 0.9]


def test_crossings_are_counted_per_boundary():
    tasks, links = chain([95, 95, 95])
    plan = floorplan(tasks, links, DIES, fill=1.0)
    report = plan.as_dict()
    # every die holds one task; the chain goes up and the output comes back to the memory die
    assert sorted(plan.assignment[f"t{k}"] for k in range(3)) == [0, 1, 2]
    by_boundary = {tuple(row["between"]): (row["streams"], row["bits"]) for row in report["boundaries"]}
    assert sum(streams for streams, _ in by_boundary.values()) == sum(len(plan.path(link)) - 1 for link in links)
    assert report["crossing_bits"] == sum(bits for _, bits in by_boundary.values()) == plan.crossing_bits()
    for link in links:
        path = plan.path(link)
        assert path[0] == plan.assignment[link.source] and path[-1] == plan.assignment[link.sink]
        assert all(abs(a - b) == 1 for a, b in zip(path, path[1:]))


def test_what_cannot_fit_is_a_clear_error():
    tasks, links = chain([150])
    with pytest.raises(FloorplanError, match="core t0 needs 150 DSP, more than any one die offers"):
        floorplan(tasks, links, DIES)
    tasks, links = chain([90] * 4)
    with pytest.raises(FloorplanError, match="needs 360 DSP and the dies offer 300"):
        floorplan(tasks, links, DIES)
    tasks, links = chain([60, 60, 60, 60, 60])  # 300: fits only when every die is full
    tasks = tasks + [Task("wide", {"DSP": 0, "URAM": 5})]
    with pytest.raises(FloorplanError, match="more than any one die offers"):
        floorplan(tasks, links, DIES)


def test_the_alveo_dies_are_ug1120s():
    assert [die.name for die in U280_DIES] == ["SLR0", "SLR1", "SLR2"]
    assert [die.capacity["DSP"] for die in U280_DIES] == [2733, 2877, 2880]
    assert sum(die.capacity["DSP"] for die in U280_DIES) <= 9024
    assert [die.memory for die in U280_DIES] == [True, False, False]
    assert [die.name for die in U50_DIES] == ["SLR0", "SLR1"] and U50_DIES[0].memory


def parse_constraints(text):
    """``{cell path inside the kernel: pblock}`` from a written floorplan.tcl; fails on a cell in two pblocks."""
    assigned = {}
    for pblock, body in re.findall(r"add_cells_to_pblock \[get_pblocks (\S+)\] \[get_cells \[list \\\n(.*?)\]\]",
                                   text, re.S):
        for path in re.findall(r"\$instance/(\S+)", body):
            assert path not in assigned, f"{path} is in two pblocks"
            assigned[path] = pblock
    return assigned


def test_the_constraints_put_every_cell_in_the_pblock_of_its_die(tmp_path):
    tasks, links = chain([60, 60, 60])
    plan = floorplan(tasks, links, DIES)
    cells = {task.name: [task.name, f"fifo_{task.name}"] for task in tasks}
    placement = [(die.name, die.pblock, [path for task in tasks if plan.die(task.name) is die
                                         for path in cells[task.name]], die.memory) for die in DIES]
    tcl, config = write_vitis_constraints(placement, tmp_path, installed=tmp_path / "elsewhere")
    text = tcl.read_text()
    assigned = parse_constraints(text)
    for task, paths in cells.items():
        for path in paths:
            assert assigned[f"dataflow/{path}"] == plan.die(task).pblock
    # the kernel's own cells (its memory ports) go to the memory die
    assert 'add_cells_to_pblock [get_pblocks p0] [get_cells -filter "NAME != $instance/dataflow" $instance/*]' in text
    assert f"OPT_DESIGN.TCL.PRE={(tmp_path / 'elsewhere' / 'floorplan.tcl').resolve()}" in config.read_text()
    assert config.name == FLOORPLAN_CONFIG


# Designs ------------------------------------------------------------------------------------------

def three_dies(dsps):
    """Three dies too small for a design of ``dsps`` DSPs in two: it spreads over all three."""
    capacity = {"LUT": 10**6, "FF": 10**6, "DSP": int(dsps * 0.45) + 1, "BRAM36": 100, "URAM": 0}
    return tuple(Die(f"SLR{k}", dict(capacity), memory=k == 0, pblock=f"pblock_dynamic_SLR{k}") for k in range(3))


@pytest.fixture(scope="module")
def spread_design():
    model = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=3, w0=30.0, seed=0)
    fn = inrarch.derivatives(model, 1)
    one_die = inrarch.compile(fn, torch.zeros(4, 2))
    device = dataclasses.replace(ULTRASCALE_PLUS, dies=three_dies(one_die.report["dsp_estimate"]))
    return model, one_die, inrarch.compile(fn, torch.zeros(4, 2), device=device)


def test_every_crossing_stream_has_a_relay_station_in_each_die_it_passes(spread_design):
    _, _, design = spread_design
    netlist = design.netlist
    floorplan = design.report["floorplan"]
    assert floorplan["crossing_streams"] > 0 and all(row["streams"] for row in floorplan["boundaries"])
    for stream in netlist.streams:
        source = netlist.dies[stream.source.name]
        sink = netlist.dies[stream.sink.name if stream.sink is not None else None]
        if source == sink:
            assert stream.path == ()
        else:
            assert stream.path[0] == source and stream.path[-1] == sink and len(stream.path) == abs(sink - source) + 1
    assert floorplan["relay_stations"] == sum(len(stream.path) for stream in netlist.streams)
    for die in floorplan["dies"]:
        assert all(die[resource] <= die[f"{resource}_available"] for resource in RESOURCES)


def test_the_relay_stations_add_latency_the_simulation_keeps_to(spread_design):
    model, one_die, design = spread_design
    # latency only: the same period, a few cycles more
    assert design.netlist.period == one_die.netlist.period
    assert one_die.report["cycles_predicted"] < design.report["cycles_predicted"] <= one_die.report["cycles_predicted"] + 12
    x = torch.tensor(np.random.default_rng(0).uniform(-1.0, 1.0, size=(4, 2)), dtype=torch.float32)
    result = design.simulate(x)
    assert result.cycles == design.report["cycles_predicted"] and not result.overflow
    reference = inrarch.derivatives(copy.deepcopy(model).double(), 1)(x.double())
    for got, expected in zip(result.outputs, reference):
        expected = expected.detach().numpy()
        assert np.max(np.abs(got - expected)) <= 1e-3 * np.max(np.abs(expected))


def test_the_written_constraints_give_every_core_a_die(spread_design, tmp_path):
    _, _, design = spread_design
    tcl, _ = write_vitis_constraints(design.die_placement(), tmp_path)
    assigned = parse_constraints(tcl.read_text())
    pblocks = {die.name: die.pblock for die in design.netlist.floorplan.dies}
    floorplan = design.report["floorplan"]
    for instance in design.netlist.instances:
        # the core's submodule is named after the first instance of its blueprint
        first = next(i.name for i in design.netlist.instances if i.blueprint is instance.blueprint)
        assert assigned[f"dataflow/{first}"] == pblocks[floorplan["assignment"][first]]
    # every submodule of the design is in exactly one pblock
    submodules = {name for _, _, cells, _ in design.die_placement() for name in cells}
    assert {path.removeprefix("dataflow/") for path in assigned} == submodules
    assert any(name.startswith("relay") for name in submodules)


def test_the_weight_loader_is_in_the_memory_die_and_its_words_cross_dies_through_relays(spread_design):
    """The loader sits by the memory; the words for a core in another die pass a load relay in each
    die on the way, placed there; the load waits for them, and the simulation keeps to the
    predicted load and run cycles with a network other than the example."""
    model, one_die, _ = spread_design
    device = dataclasses.replace(ULTRASCALE_PLUS, dies=three_dies(one_die.report["dsp_estimate"]))
    fn = inrarch.derivatives(model, 1)
    design = inrarch.compile(fn, torch.zeros(4, 2), device=device, weights="runtime")
    netlist = design.netlist
    placement = {cell: die for die, _, cells, _ in design.die_placement() for cell in cells}
    assert placement["weight_loader"] == "SLR0" and len(set(placement.values())) == 3
    paths = [netlist.load_path(instance) for instance in netlist.loaded()]
    for k, (instance, path) in enumerate(zip(netlist.loaded(), paths)):
        if netlist.dies[instance.name] == 0:
            assert path == ()
        else:
            assert path == tuple(range(netlist.dies[instance.name] + 1))
        for j, die in enumerate(path):
            assert placement[f"load_relay{j}_{k}"] == f"SLR{die}"
    relays = max(len(path) for path in paths)
    assert relays == 3  # some loaded core is in the far die
    floorplan = design.report["floorplan"]
    assert floorplan["load_relays"] == sum(map(len, paths)) and floorplan["crossing_loads"] == sum(map(bool, paths))
    assert design.report["weight_load_cycles"] == design.weight_words + LOAD_LATENCY + relays

    other = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=3, w0=30.0, seed=1)
    x = torch.tensor(np.random.default_rng(1).uniform(-1.0, 1.0, size=(4, 2)), dtype=torch.float32)
    result = design.simulate(x, weights=other)
    assert result.load_cycles == design.report["weight_load_cycles"]
    assert result.cycles == design.report["cycles_predicted"] and not result.overflow
    errors = relative_errors(result.outputs, inrarch.reference(fn, x, weights=other))
    assert max(errors) <= 1e-3, errors


@pytest.mark.parametrize("order", [1, 2])
def test_the_default_design_fits_the_u280s_dies(order, full_mode):
    if order == 2 and not full_mode:
        pytest.skip("compiles the order-2 default design (about a minute): run with --full")
    design = inrarch.compile(inrarch.derivatives(inrarch.models.siren(), order), torch.zeros(64, 2),
                             device=board_device(get_board("alveo_u280")))
    floorplan = design.report["floorplan"]
    assert [die["name"] for die in floorplan["dies"]] == ["SLR0", "SLR1", "SLR2"]
    for die in floorplan["dies"]:
        assert all(die[resource] <= die[f"{resource}_available"] for resource in RESOURCES), die
    assert floorplan["assignment"]["input"] == "SLR0" and floorplan["assignment"][MEMORY_PORTS] == "SLR0"
    for stream in design.netlist.streams:
        sink = stream.sink.name if stream.sink is not None else None
        assert bool(stream.path) == (design.netlist.dies[stream.source.name] != design.netlist.dies[sink])


def test_the_plots_draw_the_floorplan(spread_design, tmp_path):
    _, one_die, design = spread_design
    written = [path.name for path in write_plots(design, tmp_path)]
    assert "floorplan.png" in written and (tmp_path / "floorplan.png").stat().st_size > 10_000
    assert "floorplan.png" not in [path.name for path in write_plots(one_die, tmp_path / "one")]
