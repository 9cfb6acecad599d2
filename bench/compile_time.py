"""Time to compile the default SIREN's derivatives, per order, and optionally to write the Verilog.

    python bench/compile_time.py [--orders 3 4] [--verilog]

Prints, per order, the seconds of each stage as ``inrarch.compile`` measures them
(``Design.timings``: capture, IR passes, number-format search, lowering, latency solver) and, with
``--verilog``, of ``Design.verilog()``.
"""

import argparse
import time

import torch

import inrarch

STAGES = ("capture", "passes", "formats", "lower", "solve")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--hidden", type=int, default=256, help="SIREN width (default: the INR-Arch 256)")
    parser.add_argument("--verilog", action="store_true", help="also write the Verilog and time it")
    args = parser.parse_args(argv)
    model = inrarch.models.siren(in_features=2, hidden=args.hidden, layers=4, out_features=3, w0=30.0, seed=0)
    print(f"SIREN 2→{args.hidden}×4→3, batch 64: seconds per stage")
    columns = STAGES + (("verilog",) if args.verilog else ()) + ("total", "nodes")
    print(" ".join(f"{name:>8}" for name in ("order",) + columns))
    for order in args.orders:
        start = time.perf_counter()
        design = inrarch.compile(inrarch.derivatives(model, order), torch.zeros(64, 2, dtype=torch.float64))
        if args.verilog:
            design.verilog()
        total = time.perf_counter() - start
        stages = [design.timings[f"{stage}_seconds"] for stage in columns[:-2]]
        print(" ".join([f"{order:>8}"] + [f"{value:>8.1f}" for value in stages + [total]]
                       + [f"{len(design.graph.nodes):>8}"]), flush=True)


if __name__ == "__main__":
    main()
