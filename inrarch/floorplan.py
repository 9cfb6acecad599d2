"""Floorplans of multi-die (SSI) parts: which die each core goes to.

An Alveo U280 is three dies (super logic regions, SLR0 at the bottom to SLR2), a U50 two. A signal
between dies crosses the interposer on a super long line, which costs about a nanosecond more than
a route inside a die, so a design that spreads over the dies without a plan loses much of its
clock (AutoBridge, Guo et al., FPGA 2021: 147 → 297 MHz on average over 43 dataflow designs on the
U250 and U280, by floorplanning and pipelining every crossing). Here:

* :func:`floorplan` assigns every task (a core, with its DSP slices, block RAMs and UltraRAMs) to a
  die (:class:`devices.Die`, what the die offers a kernel after the platform's shell): as few bits
  as possible cross a die boundary, every die stays within what it offers, the memory-facing tasks
  stay in the die the card's memory is attached to, and among the assignments with the fewest
  crossing bits the one with the lowest peak share of a die wins. It solves this exactly as an
  integer program with HiGHS (``highspy``);
* :class:`Floorplan` counts, per boundary, the streams and bits that cross it, and per die what it
  holds (the report's ``"floorplan"``), and :meth:`Floorplan.path` lists the dies a stream passes:
  the compiler puts one register stage in each of them (a relay station), so that every crossing
  is register to register.
"""

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

from .lower import die_path
from .resources import core_dsps
from .schedule import solve

__all__ = ["Task", "Link", "Floorplan", "FloorplanError", "floorplan", "RESOURCES", "FILL", "MEMORY_PORTS",
           "netlist_tasks", "floorplan_netlist", "solve_on_dies", "account"]

#: The resources a floorplan accounts: the cores state them without synthesis
#: (``multipliers`` and ``memories``, :mod:`inrarch.resources`).
RESOURCES = ("DSP", "BRAM36", "URAM")


@dataclass(frozen=True)
class Task:
    """What a floorplan places: a core (or cores that share hardware), by name.

    ``resources`` gives its ``RESOURCES``; ``memory_facing`` tasks go to the memory die: the input
    pacer, which the kernel's memory port feeds, and :data:`MEMORY_PORTS`, the FIFOs of the
    design's outputs, which the kernel's memory ports drain.
    """

    name: str
    resources: dict
    memory_facing: bool = False


@dataclass(frozen=True)
class Link:
    """A stream of ``bits`` per beat from task ``source`` to task ``sink``; ``name`` says which."""

    source: str
    sink: str
    bits: int
    name: str = ""


class FloorplanError(ValueError):
    """The tasks do not fit the dies."""


@dataclass
class Floorplan:
    """Tasks assigned to dies.

    Attributes
    ----------
    dies : tuple of devices.Die
    assignment : dict
        Task name → index of its die in ``dies``.
    tasks, links : tuple
        What was placed.
    """

    dies: tuple
    assignment: dict
    tasks: tuple = ()
    links: tuple = ()

    def die(self, task):
        """The :class:`Die` of ``task`` (a name)."""
        return self.dies[self.assignment[task]]

    def path(self, link):
        """Indices of the dies ``link`` passes, from its source's to its sink's (one for a link within a die)."""
        return die_path(self.assignment[link.source], self.assignment[link.sink])

    def crossing_bits(self):
        """Bits per beat summed over every boundary every link crosses: what :func:`floorplan` minimizes."""
        return sum(link.bits * (len(self.path(link)) - 1) for link in self.links)

    def use(self):
        """``[{resource: amount}]`` per die."""
        totals = [dict.fromkeys(RESOURCES, 0) for _ in self.dies]
        for task in self.tasks:
            for resource in RESOURCES:
                totals[self.assignment[task.name]][resource] += task.resources.get(resource, 0)
        return totals

    def boundaries(self):
        """Per boundary between die ``k`` and ``k + 1``: the links that cross it, and their bits."""
        rows = []
        for k in range(len(self.dies) - 1):
            crossing = [link for link in self.links if _crosses(self.path(link), k)]
            rows.append({"between": [self.dies[k].name, self.dies[k + 1].name], "streams": len(crossing),
                         "bits": sum(link.bits for link in crossing)})
        return rows

    def as_dict(self):
        """The report's ``"floorplan"``: each die's use and share of what it offers, each boundary's
        crossings, and each task's die."""
        dies = []
        for die, use in zip(self.dies, self.use()):
            row = {"name": die.name, "memory": die.memory}
            for resource in RESOURCES:
                available = die.capacity[resource]
                row[resource] = round(use[resource], 1)
                row[f"{resource}_available"] = available
                row[f"{resource}_share"] = round(use[resource] / available, 4) if available else None
            row["tasks"] = sorted(task for task, index in self.assignment.items() if self.dies[index] is die)
            dies.append(row)
        return {"dies": dies, "boundaries": self.boundaries(), "crossing_bits": self.crossing_bits(),
                "assignment": {task: self.dies[index].name for task, index in sorted(self.assignment.items())}}


def _crosses(path, k):
    """Whether a path of die indices crosses the boundary between die ``k`` and ``k + 1``."""
    return any({a, b} == {k, k + 1} for a, b in zip(path, path[1:]))


#: Share of what a die offers that a floorplan fills when it can: AMD's Vitis guide (UG1393,
#: "Determining Where to Place the Kernels") reserves about 10% of each die's resources for the
#: infrastructure that connects the kernels, and a die filled to the brim also routes poorly.
FILL = 0.9


def floorplan(tasks, links, dies, *, fill=FILL):
    """Assign every task to a die: fewest crossing bits, then the lowest peak share of a die.

    Parameters
    ----------
    tasks : sequence of Task
    links : sequence of Link
        Between tasks by name; a link's cost is its bits times the boundaries it crosses.
    dies : sequence of devices.Die
        At least one; the first die with ``memory`` takes the memory-facing tasks.
    fill : float
        Every die holds at most this share of what it offers of each resource, or, where the
        tasks need more, the lowest peak share that holds them all.

    Returns a :class:`Floorplan`. Raises :class:`FloorplanError` naming the resource when the
    tasks cannot fit: one task larger than any die, or all of them together.
    """
    tasks, links, dies = tuple(tasks), tuple(links), tuple(dies)
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError("task names must be unique")
    memory_die = next((k for k, die in enumerate(dies) if die.memory), 0)
    for resource in RESOURCES:
        need = sum(task.resources.get(resource, 0) for task in tasks)
        offered = sum(die.capacity[resource] for die in dies)
        if need > offered:
            raise FloorplanError(f"the design needs {need:g} {resource} and the dies offer {offered:g}")
        largest = max(tasks, key=lambda task: task.resources.get(resource, 0), default=None)
        if largest is not None and largest.resources.get(resource, 0) > max(die.capacity[resource] for die in dies):
            raise FloorplanError(f"core {largest.name} needs {largest.resources[resource]:g} {resource}, more than "
                                 f"any one die offers ({max(die.capacity[resource] for die in dies):g})")
    if len(dies) == 1:
        return Floorplan(dies, dict.fromkeys(names, 0), tasks, links)
    problem = _Problem(tasks, links, dies, memory_die)
    limit = max(fill, problem.solve("peak"))
    crossing = problem.solve("crossing", peak_limit=limit)
    return Floorplan(dies, problem.solve("peak", peak_limit=limit, crossing_limit=crossing, assignment=True),
                     tasks, links)


@contextmanager
def _quiet():
    """HiGHS prints its banner from C++ when a solver is made: keep it off the process's stdout."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class _Problem:
    """The floorplan as an integer program: binary ``place[task][die]``, each task in one die (the
    memory-facing ones in the memory die), a distance per link at least the difference of its ends'
    die indices, and every die's use of every resource at most ``peak`` times what it offers."""

    def __init__(self, tasks, links, dies, memory_die):
        self.tasks, self.links, self.dies, self.memory_die = tasks, links, dies, memory_die

    def solve(self, objective, *, peak_limit=None, crossing_limit=None, assignment=False):
        """Minimize ``"peak"`` (the highest share of a die) or ``"crossing"`` (the bits times the
        boundaries crossed) with the other bounded; return the optimum, or the assignment."""
        import highspy  # noqa: PLC0415 -- only multi-die boards need it

        with _quiet():
            solver = highspy.Highs()
        for option, value in (("output_flag", False), ("random_seed", 0), ("threads", 1), ("mip_rel_gap", 0.0)):
            solver.setOptionValue(option, value)
        dies = self.dies
        place = {task.name: [solver.addBinary() for _ in dies] for task in self.tasks}
        for task in self.tasks:
            solver.addConstr(sum(place[task.name]) == 1)
            if task.memory_facing:
                solver.addConstr(place[task.name][self.memory_die] == 1)
        position = {name: sum(k * x for k, x in enumerate(xs)) for name, xs in place.items()}
        crossing = 0
        for link in self.links:
            if link.source != link.sink:
                distance = solver.addVariable(lb=0)
                solver.addConstr(distance >= position[link.source] - position[link.sink])
                solver.addConstr(distance >= position[link.sink] - position[link.source])
                crossing = crossing + link.bits * distance
        peak = solver.addVariable(lb=0, ub=1 if peak_limit is None else peak_limit)
        for k, die in enumerate(dies):
            for resource in RESOURCES:
                users = [task for task in self.tasks if task.resources.get(resource, 0)]
                if users and die.capacity[resource]:
                    solver.addConstr(sum(task.resources[resource] * place[task.name][k] for task in users)
                                     <= die.capacity[resource] * peak)
                elif users:
                    solver.addConstr(sum(place[task.name][k] for task in users) == 0)
        if crossing_limit is not None and not isinstance(crossing, int):
            solver.addConstr(crossing <= crossing_limit)
        solver.minimize(peak if objective == "peak" else crossing)
        status = solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise FloorplanError(f"no assignment of the cores to {', '.join(die.name for die in dies)} keeps every "
                                 f"die within what it offers ({solver.modelStatusToString(status)})")
        if assignment:
            return {name: max(range(len(dies)), key=lambda k: solver.val(xs[k])) for name, xs in place.items()}
        # A bound for the next solve, loose by a rounding error of the solver's.
        return solver.getObjectiveValue() + 1e-6


#: The task that stands for the kernel's memory ports: the design's outputs and their FIFOs go to
#: it, in the memory die.
MEMORY_PORTS = "memory ports"


def _core_resources(core, device):
    """``{resource: amount}`` of a core: its DSP slices and its memories on ``device``."""
    used = dict.fromkeys(RESOURCES, 0)
    used["DSP"] = core_dsps(core)
    for width, depth, initialized, copies in core.memories:
        blocks = device.memory_blocks(width, depth, initialized=initialized)
        used["BRAM36"] += copies * blocks["BRAM36"]
        used["URAM"] += copies * blocks["URAM"]
    return used


def netlist_tasks(netlist, device, depths):
    """The :class:`Task` and :class:`Link` of a netlist with FIFOs of ``depths`` (stream → depth),
    and ``{instance name: task name}``.

    A task is a core (the instances that share one, a MatVec's two channels, are one task) with
    the FIFOs of the streams it reads, which sit in its die; the input pacer, which the kernel's
    memory port feeds, is memory-facing, and the design's outputs are links to
    :data:`MEMORY_PORTS`, which holds their FIFOs. Every stream is a link of its bits per beat.
    """
    task_of, resources = {}, {}
    for instance in netlist.instances:
        first = next(other for other in netlist.instances if other.blueprint is instance.blueprint)
        task_of[instance.name] = first.name
        if first is instance:
            resources[instance.name] = _core_resources(instance.core, device)
    resources[MEMORY_PORTS] = dict.fromkeys(RESOURCES, 0)
    task_of[None] = MEMORY_PORTS
    links = []
    for stream in netlist.streams:
        sink = task_of[stream.sink.name if stream.sink is not None else None]
        fifo = _core_resources(stream.fifo(depths[stream]).model, device)
        for resource in RESOURCES:
            resources[sink][resource] += fifo[resource]
        links.append(Link(task_of[stream.source.name], sink, stream.width,
                          name=f"{stream.source.name} -> {stream.sink.name if stream.sink else stream.port}"))
    tasks = [Task(name, used, memory_facing=name in (MEMORY_PORTS, netlist.source.name))
             for name, used in resources.items()]
    return tasks, links, task_of


def floorplan_netlist(netlist, device, depths):
    """Floorplan ``netlist`` (FIFOs of ``depths``) on ``device.dies``: set ``netlist.floorplan``,
    ``netlist.dies`` (instance name → die index, ``None`` the memory ports) and every crossing
    stream's ``path``, the dies whose relay stations it passes. Raises :class:`FloorplanError`
    when the design does not fit the dies."""
    tasks, links, task_of = netlist_tasks(netlist, device, depths)
    plan = floorplan(tasks, links, device.dies)
    for stream, link in zip(netlist.streams, links):
        path = plan.path(link)
        stream.path = path if len(path) > 1 else ()
    netlist.schedules.clear()  # solved without the relay stations
    netlist.floorplan = plan
    netlist.dies = {name: plan.assignment[task] for name, task in task_of.items()}
    return plan


def solve_on_dies(netlist, device, batch):
    """The solved schedule of ``netlist`` for ``batch`` samples; on a device with dies, after its
    floorplan (:func:`floorplan_netlist`) has put relay stations on the streams that cross dies,
    so that the solver counts their latency and sizes the FIFOs behind them."""
    schedule = solve(netlist, batch)
    if device.dies:
        floorplan_netlist(netlist, device, schedule.depths)
        schedule = solve(netlist, batch)
        account(netlist, device, schedule.depths)
    return schedule


def account(netlist, device, depths):
    """``netlist.floorplan`` with each task's resources counted again for FIFOs of ``depths``: the
    solver sizes the FIFOs once more after the relay stations are in, and the report gives the
    final figures."""
    tasks, links, _ = netlist_tasks(netlist, device, depths)
    netlist.floorplan = Floorplan(netlist.floorplan.dies, netlist.floorplan.assignment, tuple(tasks), tuple(links))
    return netlist.floorplan
