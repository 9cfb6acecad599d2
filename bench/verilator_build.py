"""The Verilator build and run of a mid-size design, without and with the parallel-build options.

    python -m bench.verilator_build

Compiles the order-1 derivatives of the SIREN 2→64→64→3 (batch 16), then simulates it twice, each
time with a fresh Verilator cache: with Verilator's options as they were before
:data:`sim.verilator.PARALLEL_BUILD_ARGS` (20000-statement C++ files, one Verilation thread) and
with them. Both caches first build a one-line design, so that the design-independent runtime
objects are not counted. Records the build and run seconds and the build's speedup under
``"verilator_build"`` in ``bench/results.json``, with the machine's load average: other work on
the machine lengthens the builds.
"""

import argparse
import os
import tempfile
import time

import numpy as np
import torch

import inrarch
from bench import results
from bench.constants import WORKLOAD
from bench.results import machine_load
from sim import verilator

MODEL = {**WORKLOAD, "hidden": 64, "layers": 2}
ORDER = 1
BATCH = 16
_WARM_UP = "module top(input clk, output o); assign o = clk; endmodule\n"


def _simulate(design, x, args):
    """Build and run ``design`` on ``x`` with Verilator options ``args``, in a cache of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-verilator-") as cache:
        os.environ["INRARCH_CACHE"] = cache
        verilator.VERILATOR_ARGS = args
        verilator.build_model(_WARM_UP, "top")
        start = time.perf_counter()
        result = design.simulate(x)
        wall = time.perf_counter() - start
    run = result.run
    if result.cycles != design.report["cycles_predicted"]:
        raise SystemExit(f"error: {result.cycles} cycles simulated, {design.report['cycles_predicted']} predicted")
    return {"build_seconds": round(run.build_seconds, 1), "run_seconds": round(run.loop_seconds, 2),
            "wall_seconds": round(wall, 1), "load_average": machine_load()["load_average"]}


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    model = inrarch.models.siren(**MODEL)
    design = inrarch.compile(inrarch.derivatives(model, ORDER), torch.zeros(BATCH, MODEL["in_features"]))
    x = torch.tensor(np.random.default_rng(0).uniform(-1.0, 1.0, size=(BATCH, MODEL["in_features"])))
    design.verilog()
    options = verilator.VERILATOR_ARGS
    parallel = verilator.PARALLEL_BUILD_ARGS
    if options[-len(parallel):] != parallel:
        raise SystemExit("error: sim.verilator.VERILATOR_ARGS no longer ends with PARALLEL_BUILD_ARGS")
    serial = options[:-len(parallel)]
    saved = os.environ.get("INRARCH_CACHE")
    try:
        before = _simulate(design, x, serial)
        print(f"before: {before}", flush=True)
        after = _simulate(design, x, options)
        print(f"after: {after}", flush=True)
    finally:
        verilator.VERILATOR_ARGS = options
        if saved is None:
            del os.environ["INRARCH_CACHE"]
        else:
            os.environ["INRARCH_CACHE"] = saved
    speedup = round(before["build_seconds"] / after["build_seconds"], 2)
    print(f"build speedup {speedup}×")
    results.record("verilator_build", {"before": before, "after": after, "build_speedup": speedup},
                   inputs={"model": MODEL, "order": ORDER, "batch": BATCH, "verilog_bytes": len(design.verilog()),
                           "before_args": list(serial), "after_args": list(options), **machine_load()})


if __name__ == "__main__":
    main()
