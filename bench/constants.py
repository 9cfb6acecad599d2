"""The benchmarks' constants, in one place: INR-Arch's published figures and the workloads.

INR-Arch's figures are the FPGA rows of its ``results.csv`` (sharc-lab/inr-arch), in its own units
and labels; the workload is the model its results are for.
"""

from boards import AlveoU280Platform

__all__ = ["INR_ARCH", "INR_ARCH_CLOCK_MHZ", "INR_ARCH_ORDER_1_RESOURCES", "inr_arch_cycles", "U280_DSP_BUDGET",
           "WORKLOAD", "QUICK"]

INR_ARCH_CLOCK_MHZ = 300
INR_ARCH = {  # the FPGA rows of INR-Arch's results.csv (sharc-lab/inr-arch), as it labels them
    1: {"latency_ms": 1.8284, "memory_mb": 0.8547},
    2: {"latency_ms": 2.5448, "memory_mb": 7.6707},
}
INR_ARCH_ORDER_1_RESOURCES = {"DSP": 3199, "LUT": 502_000, "FF": 388_000, "BRAM18K": 347}
U280_DSP_BUDGET = AlveoU280Platform.fpga.usable["DSP"]
WORKLOAD = {"in_features": 2, "hidden": 256, "layers": 4, "out_features": 3, "w0": 30.0, "seed": 0}
QUICK = {**WORKLOAD, "hidden": 16, "layers": 2}


def inr_arch_cycles(order):
    """INR-Arch's published latency for ``order`` in cycles of its 300 MHz clock."""
    return round(INR_ARCH[order]["latency_ms"] * INR_ARCH_CLOCK_MHZ * 1e3)
