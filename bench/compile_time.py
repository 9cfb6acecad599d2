"""Time to capture and compile (no Verilog) the default SIREN's derivatives, per order.

    python bench/compile_time.py [--orders 3 4]

Prints, per order, the seconds spent in capture, in the IR passes and format calibration, and in
lowering and the latency solver, as ``inrarch.compile`` measures them (``Design.timings``).
"""

import argparse
import time

import torch

import inrarch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--hidden", type=int, default=256, help="SIREN width (default: the INR-Arch 256)")
    args = parser.parse_args(argv)
    model = inrarch.models.siren(in_features=2, hidden=args.hidden, layers=4, out_features=3, w0=30.0, seed=0)
    print(f"SIREN 2→{args.hidden}×4→3, capture + compile without Verilog")
    print(f"{'order':>5} {'capture s':>10} {'passes s':>9} {'solve s':>8} {'total s':>8} {'nodes':>6}")
    for order in args.orders:
        start = time.perf_counter()
        design = inrarch.compile(inrarch.derivatives(model, order), torch.zeros(4, 2, dtype=torch.float64))
        total = time.perf_counter() - start
        t = design.timings
        print(f"{order:>5} {t['capture_seconds']:>10.1f} {t['passes_seconds']:>9.1f} {t['solve_seconds']:>8.1f} "
              f"{total:>8.1f} {len(design.graph.nodes):>6}", flush=True)


if __name__ == "__main__":
    main()
