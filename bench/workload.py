"""``python -m bench.workload``: inrarch against INR-Arch and torch on INR-Arch's own workload.

The workload is the SIREN 2→256→256→256→256→3 (w0 = 30) at batch 64. For each gradient order,
DSP budget and way of forming the derivatives it compiles the design and takes the latency
solver's cycles, the buffer memory and the DSP estimate. The derivatives are formed two ways:

* ``forward``: :func:`inrarch.derivatives`, nested forward mode that computes each mixed partial
  once, using their symmetry;
* ``reverse``: :func:`autograd_per_component`, reverse mode with one backward pass per output
  component and order, as INR-Arch does and as its torch baseline does.

Without options it also times torch on the CPU for both, in this process (median and shortest of
``--repeats`` runs after warm-up, float32, with the threads and the machine's load average
stated), and records everything under
``"workload"`` in ``bench/results.json``. ``--simulate`` also runs each design in Verilator
(cycles, error against float64 torch, overflow) and records ``"workload_simulated"``; a run
with any problem :func:`inrarch.verification.check_simulation` finds (an output beyond
``TOLERANCE``, cycles other than predicted, overflow, a deadlock) records nothing and exits 1
with one line naming each.
``--quick`` runs the small SIREN 2→16→16→3 in Verilator, in a few minutes, and records
``"workload_quick"``. ``python -m bench.publish`` then rewrites the README's tables.
"""

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import torch

from cores.fixed import Q
from inrarch import derivatives, models
from inrarch.capture import capture
from inrarch.compiler import compile as compile_design
from inrarch.formats import Formats
from inrarch.lower import lower
from inrarch.passes import optimize
from inrarch.schedule import solve
from inrarch.verification import simulate_and_check

from . import results
from .constants import (INR_ARCH, INR_ARCH_CLOCK_MHZ, INR_ARCH_ORDER_1_RESOURCES, QUICK, U280_DSP_BUDGET, WORKLOAD)
from .results import machine_load

__all__ = ["MODES", "autograd_per_component", "workload_function", "compile_row",
           "cycles_at_formats", "torch_baseline", "simulation_failures", "TOLERANCE", "main"]

MODES = ("forward", "reverse")
#: Error allowed per simulated output, as a fraction of its largest magnitude: the format search's target.
TOLERANCE = 1e-3


def autograd_per_component(model, order):
    """INR-Arch's CPU/GPU baseline: ``torch.autograd.grad`` on every component of every gradient."""

    def fn(x):
        x = x.detach().requires_grad_(True)
        y = model(x)
        current = [y[:, o] for o in range(y.shape[1])]
        results = [y]
        for _ in range(order):
            current = [g[:, i] for c in current
                       for g in [torch.autograd.grad(c.sum(), x, create_graph=True)[0]] for i in range(x.shape[1])]
            results.append(torch.stack(current, 1))
        return results

    return fn


def workload_function(model, order, mode):
    """The function of ``x`` the bench compiles: derivatives up to ``order`` formed in ``mode``."""
    if mode == "forward":
        return derivatives(model, order)
    if mode == "reverse":
        return autograd_per_component(model, order)
    raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


def torch_baseline(fn, x, repeats):
    """Median and shortest wall time (ms) of ``fn(x)`` on the CPU after two warm-up calls."""
    for _ in range(2):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def _example(batch):
    return torch.zeros(batch, WORKLOAD["in_features"], dtype=torch.float64)


def _samples(batch, seed):
    return torch.tensor(np.random.default_rng(seed).uniform(-1.0, 1.0, size=(batch, WORKLOAD["in_features"])))


def compile_row(model, order, mode, batch, dsp_budget):
    """Compile one design; return ``(design, row)``, the row holding its compile-only figures."""
    fn = workload_function(model, order, mode)
    start = time.perf_counter()
    design = compile_design(fn, _example(batch), dsp_budget=dsp_budget)
    compile_seconds = time.perf_counter() - start
    report = design.report
    return design, {
        "order": order, "mode": mode, "batch": batch, "dsp_budget": dsp_budget,
        "cycles_predicted": report["cycles_predicted"],
        "first_sample_cycles": report["first_sample_cycles"], "lanes": report["lanes"],
        "clock_mhz": report["clock_mhz"],
        "multipliers": report["multipliers"], "dsp_estimate": report["dsp_estimate"],
        "macs_per_sample": report["macs_per_sample"],
        "buffer_bits": report["buffer_bits"], "buffer_bits_by_kind": report["buffer_bits_by_kind"],
        "fifo_count": report["fifo_count"], "weight_bits": report["weight_bits"],
        "nodes": len(design.graph.nodes),
        "weight_width": report["format_search"]["weight_width"],
        "formats": report["formats"],
        "compile_seconds": round(compile_seconds, 1),
    }


def cycles_at_formats(fn, batch, formats, weight_width, dsp_budget):
    """The solver's cycles for ``fn`` with the number formats given per node name, without the
    format search: capture, passes, lowering and the solver as :func:`inrarch.compile` runs them."""
    graph, _ = capture(fn, _example(batch))
    graph = optimize(graph)
    recorded = Formats({node: Q.parse(formats[node.name]) for node in graph.nodes},
                       {node: weight_width for node in graph.nodes if "weight" in node.attrs or node.op == "mul_const"})
    return solve(lower(graph, recorded, dsp_budget=dsp_budget, batch=batch), batch).cycles


def _simulate(design, fn, row, seed):
    """Run ``design`` in Verilator and add its figures and its problems (one line each) to ``row``."""
    x = _samples(row["batch"], seed)
    design.verilog()
    start = time.perf_counter()
    verification = simulate_and_check(design, fn, x, tolerance=TOLERANCE, progress=True)
    row["simulation_problems"] = verification.problems
    result = verification.result
    if result is not None:
        row.update({
            "cycles_simulated": result.cycles, "max_error": max(verification.errors),
            "max_error_per_output": verification.errors,
            "overflow": result.overflow, "overflow_core": result.overflow_core,
            "verilog_seconds": round(design.timings["verilog_seconds"], 1),
            "verilator_build_seconds": round(result.run.build_seconds, 1),
            "verilator_cached": result.run.cached,
            "verilator_run_seconds": round(result.run.wall_seconds, 1),
            "simulate_seconds": round(time.perf_counter() - start, 1),
        })


def simulation_failures(rows):
    """One line per simulated row with a problem, naming the row and every problem."""
    return [f"order {row['order']} {row['mode']} mode, DSP budget {row['dsp_budget']}: "
            + "; ".join(row["simulation_problems"]) for row in rows if row.get("simulation_problems")]


def _torch_rows(model, orders, batch, repeats, seed):
    x = _samples(batch, seed).float()
    model = copy.deepcopy(model).float()
    rows = []
    for order in orders:
        for mode in MODES:
            median, shortest = torch_baseline(workload_function(model, order, mode), x, repeats)
            rows.append({"order": order, "mode": mode, "cpu_ms": round(median, 3), "min_cpu_ms": round(shortest, 3)})
    return rows


def _print_rows(rows):
    columns = ("order", "mode", "dsp_budget", "cycles_predicted", "cycles_simulated", "max_error", "overflow",
               "dsp_estimate", "buffer_bits", "compile_seconds", "simulate_seconds")
    print("\t".join(columns))
    for row in rows:
        print("\t".join(str(row.get(name, "-")) for name in columns))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budgets", type=int, nargs="+",
                        help=f"DSP budgets to build for (default: the U280's usable {U280_DSP_BUDGET} and "
                             "INR-Arch's 3199; with --quick only the first)")
    parser.add_argument("--quick", action="store_true", help="small SIREN 2→16→16→3, simulated in Verilator")
    parser.add_argument("--simulate", action="store_true", help="run every design in Verilator")
    parser.add_argument("--repeats", type=int, default=20, help="torch runs to take the median of")
    parser.add_argument("--torch-threads", type=int, default=torch.get_num_threads(),
                        help="CPU threads of the torch baseline (default: torch's, %(default)s here); on a "
                             "machine busy with other work, fewer threads than cores time it more steadily")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input samples")
    args = parser.parse_args(argv)
    spec = QUICK if args.quick else WORKLOAD
    budgets = args.budgets or [U280_DSP_BUDGET] + ([] if args.quick else [INR_ARCH_ORDER_1_RESOURCES["DSP"]])
    simulate = args.simulate or args.quick
    model = models.siren(**spec)
    rows = []
    for budget in budgets:
        for order in args.orders:
            for mode in args.modes:
                print(f"order {order}, {mode} mode, DSP budget {budget} ...", file=sys.stderr, flush=True)
                design, row = compile_row(model, order, mode, args.batch, budget)
                if simulate:
                    _simulate(design, workload_function(model, order, mode), row, args.seed)
                rows.append(row)
    inputs = {"model": spec, "batch": args.batch, "orders": args.orders, "modes": args.modes, "budgets": budgets,
              "sample_seed": args.seed, "torch": torch.__version__,
              "inr_arch": {"clock_mhz": INR_ARCH_CLOCK_MHZ, "results": INR_ARCH,
                           "order_1_resources": INR_ARCH_ORDER_1_RESOURCES}}
    figures = {"rows": rows}
    if not simulate:
        torch.set_num_threads(args.torch_threads)
        inputs.update({"torch_repeats": args.repeats, "torch_threads": torch.get_num_threads(), **machine_load()})
        figures["torch_cpu"] = _torch_rows(model, args.orders, args.batch, args.repeats, args.seed)
    key = "workload_quick" if args.quick else "workload_simulated" if simulate else "workload"
    _print_rows(rows)
    failures = simulation_failures(rows)
    if failures:
        print(f"error: the simulation failed: {' | '.join(failures)} (nothing recorded)", file=sys.stderr)
        return 1
    results.record(key, figures, inputs=inputs)
    print(f"\nrecorded under {key!r} in {results.RESULTS_PATH}; python -m bench.publish updates the README")
    return 0


if __name__ == "__main__":
    sys.exit(main())
