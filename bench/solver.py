"""Latency-solver benchmark: compile-stage wall times for the order-3 full-size SIREN (the
``Design.timings`` that :func:`inrarch.compile` records), and the buffer memory of orders 1 and 2
(FIFOs, matmul input buffers, gather buffers) beside INR-Arch's published memory.

Run ``python -m bench.solver``. No Verilog is generated.
"""

import argparse
import time

import torch

import inrarch
from bench.constants import INR_ARCH

BATCH = 64


def main(argv=None):
    argparse.ArgumentParser(prog="python -m bench.solver",
                            description=__doc__.split("\n\n")[0]).parse_args(argv)
    design = inrarch.compile(inrarch.derivatives(inrarch.models.default_siren(), 3),
                             torch.zeros(BATCH, 2, dtype=torch.float64))
    print(f"order 3 SIREN 2-256x4-3, batch {BATCH}: {len(design.netlist.instances)} cores, "
          f"{len(design.netlist.streams)} streams, {design.report['cycles_predicted']} cycles predicted")
    for stage, value in design.timings.items():
        print(f"  {stage.removesuffix('_seconds'):8s} {value:8.2f} s")
    print(f"  {'total':8s} {sum(design.timings.values()):8.2f} s")
    print()
    print(f"buffer memory, SIREN 2-256x4-3, batch {BATCH} (1 MB = 2**20 bytes)")
    for order in (1, 2):
        fn = inrarch.derivatives(inrarch.models.default_siren(), order)
        start = time.perf_counter()
        design = inrarch.compile(fn, torch.zeros(BATCH, 2, dtype=torch.float64))
        elapsed = time.perf_counter() - start
        bits = design.report["buffer_bits"]
        megabytes = bits / 8 / 2**20
        published = INR_ARCH[order]["memory_mb"]
        print(f"  order {order}: {bits} bits = {bits / 8 / 1024:.2f} KiB = {megabytes:.5f} MB "
              f"({design.report['buffer_bits_by_kind']}; INR-Arch memory {published} MB, ratio "
              f"{megabytes / published:.4f}); compiled in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
