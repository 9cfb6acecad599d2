"""Latency-solver benchmark: compile-stage wall times for the order-3 full-size SIREN (the
``Design.timings`` that :func:`inrarch.compile` records), and the FIFO buffer memory of orders 1
and 2 compared with INR-Arch's published figures.

Run ``python bench/solver.py``. No Verilog is generated.
"""

import time

import torch

import inrarch

BATCH = 64
INR_ARCH_BUFFER_MB = {1: 0.85, 2: 7.67}  # INR-Arch (Table: on-chip buffer memory, SIREN 2-256x4-3)


def main():
    design = inrarch.compile(inrarch.derivatives(inrarch.models.default_siren(), 3),
                             torch.zeros(BATCH, 2, dtype=torch.float64))
    print(f"order 3 SIREN 2-256x4-3, batch {BATCH}: {len(design.netlist.instances)} cores, "
          f"{len(design.netlist.streams)} streams, {design.report['cycles_predicted']} cycles predicted")
    for stage, value in design.timings.items():
        print(f"  {stage.removesuffix('_seconds'):8s} {value:8.2f} s")
    print(f"  {'total':8s} {sum(design.timings.values()):8.2f} s")
    print()
    print(f"FIFO buffer memory, SIREN 2-256x4-3, batch {BATCH} (1 MB = 2**20 bytes)")
    for order in (1, 2):
        fn = inrarch.derivatives(inrarch.models.default_siren(), order)
        start = time.perf_counter()
        design = inrarch.compile(fn, torch.zeros(BATCH, 2, dtype=torch.float64))
        elapsed = time.perf_counter() - start
        bits = design.report["fifo_bits"]
        megabytes = bits / 8 / 2**20
        print(f"  order {order}: {bits} bits = {bits / 8 / 1024:.2f} KB = {megabytes:.5f} MB in {design.report['fifo_count']} FIFOs "
              f"(INR-Arch {INR_ARCH_BUFFER_MB[order]} MB, ratio {megabytes / INR_ARCH_BUFFER_MB[order]:.3f}); "
              f"compiled in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
