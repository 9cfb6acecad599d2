"""Floorplans of multi-die parts: the assignment and its accounting (:mod:`inrarch.floorplan`), the
Alveo dies, and the constraints Vivado reads (:mod:`boards.floorplan`)."""

import itertools
import re

import pytest

from boards.alveo_u50 import U50_DIES
from boards.alveo_u280 import U280_DIES
from boards.floorplan import FLOORPLAN_CONFIG, write_vitis_constraints
from devices import Die
from inrarch.floorplan import RESOURCES, FloorplanError, Link, Task, floorplan

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


def test_the_constraints_put_every_cell_in_the_pblock_of_its_die(tmp_path):
    tasks, links = chain([60, 60, 60])
    plan = floorplan(tasks, links, DIES)
    cells = {task.name: [f"dataflow/{task.name}", f"dataflow/fifo_{task.name}"] for task in tasks}
    placement = [(die.name, die.pblock, [path for task in tasks if plan.die(task.name) is die
                                         for path in cells[task.name]]) for die in DIES]
    tcl, config = write_vitis_constraints(placement, tmp_path)
    text = tcl.read_text()
    assigned = {}
    for pblock, body in re.findall(r"add_cells_to_pblock \[get_pblocks (\S+)\] \[get_cells \[list \\\n(.*?)\]\]",
                                   text, re.S):
        for path in re.findall(r"\$instance/(\S+)", body):
            assert path not in assigned, f"{path} is in two pblocks"
            assigned[path] = pblock
    for task, paths in cells.items():
        for path in paths:
            assert assigned[path] == plan.die(task).pblock
    assert f"OPT_DESIGN.TCL.PRE={tcl.resolve()}" in config.read_text() and config.name == FLOORPLAN_CONFIG
