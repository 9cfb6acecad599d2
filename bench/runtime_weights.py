"""``python -m bench.runtime_weights``: what runtime weights cost against constant ones, on INR-Arch's workload.

For each order it compiles the SIREN 2→256→256→256→256→3 (w0 = 30) in forward mode at batch 64
for the Alveo U280's DSP budget twice, with constant weights and with ``weights="runtime"`` (the
default family of the compiled network), and records the solver's batch cycles, the DSP estimate,
the BRAM36 and URAM of the resource model, the weight image and the cycles a load takes, under
``"runtime_weights"`` in ``bench/results.json``.

``--simulate`` instead runs the order-1 design with runtime weights in Verilator: one simulation
loads the compiled network, runs a batch, loads a second network (another initialization) and runs
the batch again, each checked against float64 torch with that network's weights, with the batch's
and the load's cycles against the prediction; it records ``"runtime_weights_simulated"``, or
records nothing and exits 1 naming every problem. ``python -m bench.publish`` then rewrites the
README's block.
"""

import argparse
import sys
import time

import numpy as np
import torch

from boards import AlveoU280Platform, board_device
from inrarch import derivatives, models
from inrarch.compiler import compile as compile_design
from inrarch.emulate import relative_errors
from inrarch.evaluation import reference
from inrarch.resources import design_resources

from . import results
from .constants import U280_DSP_BUDGET, WORKLOAD
from .results import machine_load

__all__ = ["compile_pair", "simulate_networks", "main", "TOLERANCE"]

#: Error allowed per simulated output, as a fraction of its largest magnitude: the format search's target.
TOLERANCE = 1e-3


def _row(design, device, seconds):
    report = design.report
    resources = design_resources(design.netlist, design.schedule.depths, device)
    row = {"cycles": report["cycles_predicted"], "dsp_estimate": report["dsp_estimate"], "lanes": report["lanes"],
           "bram36": resources["BRAM36"], "uram": resources["URAM"], "lutram_bits": resources["LUTRAM_bits"],
           "weight_bits": report["weight_bits"], "weight_widths": report["format_search"]["weight_widths"],
           "compile_seconds": round(seconds, 1)}
    if design.runtime_weights:
        row.update({"image_words": report["weight_image_words"], "image_bytes": report["weight_image_bytes"],
                    "load_cycles": report["weight_load_cycles"], "family": report["weight_family"]["tensors"]})
    return row


def compile_pair(model, order, batch, budget, device):
    """The order-``order`` designs of ``model`` with constant and with runtime weights, and their rows."""
    fn = derivatives(model, order)
    designs, rows = {}, {}
    for weights in ("constant", "runtime"):
        start = time.perf_counter()
        design = compile_design(fn, torch.zeros(batch, WORKLOAD["in_features"]), dsp_budget=budget, weights=weights)
        designs[weights], rows[weights] = design, _row(design, device, time.perf_counter() - start)
    constant, runtime = rows["constant"], rows["runtime"]
    return designs, {"order": order, "mode": "forward", "batch": batch, "dsp_budget": budget, "constant": constant,
                     "runtime": runtime,
                     "cycles_increase": runtime["cycles"] / constant["cycles"] - 1,
                     "dsp_increase": runtime["dsp_estimate"] / constant["dsp_estimate"] - 1}


def simulate_networks(design, fn, networks, x):
    """One Verilator simulation of ``design`` that loads each of ``networks`` and runs ``x``; a row per network."""
    start = time.perf_counter()
    runs = design.simulate_runs([(x, network) for network in networks], progress=True)
    seconds = time.perf_counter() - start
    rows = []
    for network, result in zip(networks, runs):
        errors = relative_errors(result.outputs, reference(fn, x, weights=network))
        problems = [f"output {k} off by {error:.2e} × max|ref|" for k, error in enumerate(errors) if not error <= TOLERANCE]
        if result.cycles != design.report["cycles_predicted"]:
            problems.append(f"{result.cycles} cycles simulated, {design.report['cycles_predicted']} predicted")
        if result.load_cycles != design.report["weight_load_cycles"]:
            problems.append(f"the load took {result.load_cycles} cycles, {design.report['weight_load_cycles']} "
                            "predicted")
        if result.overflow:
            problems.append(f"overflow in {result.overflow_core}")
        rows.append({"cycles_simulated": result.cycles, "cycles_predicted": design.report["cycles_predicted"],
                     "load_cycles_simulated": result.load_cycles,
                     "load_cycles_predicted": design.report["weight_load_cycles"],
                     "max_error": max(errors), "overflow": result.overflow, "problems": problems})
    return rows, {"verilator_build_seconds": round(runs[0].run.build_seconds, 1),
                  "verilator_run_seconds": round(runs[0].run.wall_seconds, 1), "simulate_seconds": round(seconds, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.runtime_weights", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--simulate", action="store_true",
                        help="run the order-1 runtime-weight design in Verilator with two networks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input samples")
    args = parser.parse_args(argv)
    device = board_device(AlveoU280Platform)
    model = models.siren(**WORKLOAD)
    inputs = {"model": WORKLOAD, "batch": args.batch, "dsp_budget": U280_DSP_BUDGET, "mode": "forward",
              "board": "alveo_u280", **machine_load()}
    if args.simulate:
        print("order 1 with runtime weights: compile, Verilog, Verilator ...", file=sys.stderr, flush=True)
        fn = derivatives(model, 1)
        start = time.perf_counter()
        design = compile_design(fn, torch.zeros(args.batch, WORKLOAD["in_features"]), dsp_budget=U280_DSP_BUDGET,
                                weights="runtime")
        compile_seconds = time.perf_counter() - start
        design.verilog()
        second = models.siren(**{**WORKLOAD, "seed": 1})
        x = torch.tensor(np.random.default_rng(args.seed).uniform(-1.0, 1.0, size=(args.batch, 2)))
        rows, times = simulate_networks(design, fn, [model, second], x)
        figures = {"order": 1, "networks": ["compiled (seed 0)", "another initialization (seed 1)"], "rows": rows,
                   "image_bytes": design.report["weight_image_bytes"], "compile_seconds": round(compile_seconds, 1),
                   "verilog_seconds": round(design.timings["verilog_seconds"], 1), **times}
        for row, name in zip(rows, figures["networks"]):
            print(f"{name}: {row['cycles_simulated']} cycles ({row['cycles_predicted']} predicted), load "
                  f"{row['load_cycles_simulated']} ({row['load_cycles_predicted']}), error {row['max_error']:.1e}")
        problems = [problem for row in rows for problem in row["problems"]]
        if problems:
            print(f"error: the simulation failed: {'; '.join(problems)} (nothing recorded)", file=sys.stderr)
            return 1
        results.record("runtime_weights_simulated", figures, inputs={**inputs, "sample_seed": args.seed})
        print("recorded under 'runtime_weights_simulated'")
        return 0
    rows = []
    for order in args.orders:
        print(f"order {order}: constant and runtime weights ...", file=sys.stderr, flush=True)
        _, row = compile_pair(model, order, args.batch, U280_DSP_BUDGET, device)
        rows.append(row)
        print(f"order {order}: cycles {row['constant']['cycles']} -> {row['runtime']['cycles']} "
              f"({row['cycles_increase']:+.2%}), DSP {row['constant']['dsp_estimate']} -> "
              f"{row['runtime']['dsp_estimate']} ({row['dsp_increase']:+.2%}), BRAM36 {row['constant']['bram36']} -> "
              f"{row['runtime']['bram36']}, URAM {row['runtime']['uram']}, load {row['runtime']['load_cycles']} "
              f"cycles, image {row['runtime']['image_bytes'] / 1024:.1f} KiB")
    results.record("runtime_weights", {"rows": rows, "clock_mhz": 300.0}, inputs=inputs)
    print("recorded under 'runtime_weights'; python -m bench.publish updates the README")
    return 0


if __name__ == "__main__":
    sys.exit(main())
