"""Time to compile the default SIREN's derivatives, per order, and optionally to write the Verilog.

    python -m bench.compile_time [--orders 1 3] [--verilog]

Records, per order, the seconds of each stage as ``inrarch.compile`` measures them
(``Design.timings``: capture, IR passes, number-format search, lowering, latency solver) and, with
``--verilog``, of ``Design.verilog()``, under ``"compile_time"`` in ``bench/results.json``, with
the machine's load average at the end: other work on the machine lengthens the times.
"""

import argparse
import time

import torch

import inrarch
from bench import results
from bench.constants import WORKLOAD
from bench.results import machine_load

STAGES = ("capture", "passes", "formats", "lower", "solve")
BATCH = 64


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--verilog", action="store_true", help="also write the Verilog and time it")
    args = parser.parse_args(argv)
    model = inrarch.models.siren(**WORKLOAD)
    stages = STAGES + (("verilog",) if args.verilog else ())
    rows = []
    for order in args.orders:
        start = time.perf_counter()
        design = inrarch.compile(inrarch.derivatives(model, order), torch.zeros(BATCH, 2, dtype=torch.float64))
        if args.verilog:
            design.verilog()
        total = time.perf_counter() - start
        rows.append({"order": order, "nodes": len(design.graph.nodes), "dsp_estimate": design.report["dsp_estimate"],
                     **{stage: round(design.timings[f"{stage}_seconds"], 2) for stage in stages},
                     "total": round(total, 2)})
        print(rows[-1], flush=True)
    results.record("compile_time", {"rows": rows}, inputs={"model": WORKLOAD, "batch": BATCH, "orders": args.orders,
                                                           "verilog": args.verilog, **machine_load()})


if __name__ == "__main__":
    main()
