"""Latency-solver benchmark: compile-stage wall times for the order-3 full-size SIREN, and the FIFO
buffer memory of orders 1 and 2 compared with INR-Arch's published figures.

Run ``python bench/solver.py``. No Verilog is generated.
"""

import time

import torch

import inrarch
from inrarch.capture import capture
from inrarch.formats import assign_formats
from inrarch.lower import lower
from inrarch.passes import optimize
from inrarch.schedule import solve

BATCH = 64
INR_ARCH_BUFFER_MB = {1: 0.85, 2: 7.67}  # INR-Arch (Table: on-chip buffer memory, SIREN 2-256x4-3)


def timed_stages(order):
    """Wall seconds of each compiler stage for ``order``, and the solved schedule."""
    fn = inrarch.derivatives(inrarch.models.default_siren(), order)
    example = torch.zeros(BATCH, 2, dtype=torch.float64)
    seconds = {}
    start = time.perf_counter()
    graph, _ = capture(fn, example)
    seconds["capture"] = time.perf_counter() - start
    start = time.perf_counter()
    graph = optimize(graph)
    seconds["passes"] = time.perf_counter() - start
    start = time.perf_counter()
    assign_formats(graph, width=27, margin=2.0, domain=(-1.0, 1.0))
    seconds["formats"] = time.perf_counter() - start
    start = time.perf_counter()
    netlist = lower(graph)
    seconds["lower"] = time.perf_counter() - start
    start = time.perf_counter()
    schedule = solve(netlist, BATCH)
    seconds["solve"] = time.perf_counter() - start
    return seconds, netlist, schedule


def main():
    seconds, netlist, schedule = timed_stages(3)
    print(f"order 3 SIREN 2-256x4-3, batch {BATCH}: {len(netlist.instances)} cores, {len(netlist.streams)} streams, "
          f"{schedule.cycles} cycles predicted")
    for stage, value in seconds.items():
        print(f"  {stage:8s} {value:8.2f} s")
    print(f"  {'total':8s} {sum(seconds.values()):8.2f} s")
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
