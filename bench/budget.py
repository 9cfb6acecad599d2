"""``python -m bench.budget``: cycles against the DSP budget, with the MAC bound, on INR-Arch's workload.

For every budget and gradient order (forward-mode derivatives, batch 64) it compiles the design
and records what the compiler chose and what the latency solver predicts: the sample lanes, the
pace, the cycles for the batch and for one sample (the first-sample latency), the DSP estimate and
the BRAM36 of the U280. Beside them it records the MAC bound, the cycles the batch's matmul
multiply-accumulates take on ``budget`` multipliers kept busy every cycle, and the issue's limit
``1.3 × bound + first-sample latency``. Everything goes under ``"budget"`` in
``bench/results.json`` and the plot to ``docs/budget.png``; ``python -m bench.publish`` rewrites
the table in ``docs/performance.md``.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

from boards import AlveoU280Platform
from inrarch import derivatives, models
from inrarch.compiler import compile as compile_design
from inrarch.resources import design_resources

from . import results
from .constants import INR_ARCH_ORDER_1_RESOURCES, U280_DSP_BUDGET, WORKLOAD
from .results import machine_load

__all__ = ["BUDGETS", "SLACK", "BRAM_SHARE", "budget_row", "mac_bound", "plot", "main"]

BUDGETS = (1000, 2000, INR_ARCH_ORDER_1_RESOURCES["DSP"], 5000, U280_DSP_BUDGET)
#: The design may take this many times the MAC bound, plus its first-sample latency.
SLACK = 1.3
#: Share of the U280's BRAM36 the design may use.
BRAM_SHARE = 0.8
PLOT = Path(__file__).resolve().parent.parent / "docs" / "budget.png"


def mac_bound(macs_per_sample, batch, budget):
    """Cycles of ``batch`` samples' matmul MACs on ``budget`` multipliers busy every cycle."""
    return macs_per_sample * batch / budget


def budget_row(model, order, batch, budget):
    """Compile the order-``order`` design for ``budget`` DSP slices; its figures as a dict."""
    device = AlveoU280Platform.fpga
    start = time.perf_counter()
    design = compile_design(derivatives(model, order), torch.zeros(batch, WORKLOAD["in_features"]), dsp_budget=budget,
                            device=device)
    seconds = time.perf_counter() - start
    report = design.report
    bram = design_resources(design.netlist, design.schedule.depths, device)["BRAM36"]
    bound = mac_bound(report["macs_per_sample"], batch, budget)
    return {
        "order": order, "batch": batch, "dsp_budget": budget, "lanes": report["lanes"],
        "period_cycles": report["period_cycles"], "cycles_predicted": report["cycles_predicted"],
        "first_sample_cycles": report["first_sample_cycles"], "dsp_estimate": report["dsp_estimate"],
        "macs_per_sample": report["macs_per_sample"], "mac_bound_cycles": round(bound, 1),
        "limit_cycles": round(SLACK * bound + report["first_sample_cycles"], 1),
        "bram36": round(bram, 1), "bram36_capacity": device.capacity["BRAM36"],
        "buffer_bits": report["buffer_bits"], "buffer_bits_by_kind": report["buffer_bits_by_kind"],
        "formats": report["formats"], "weight_width": report["format_search"]["weight_width"],
        "compile_seconds": round(seconds, 1),
    }


def problems(rows):
    """One line per broken promise: cycles above the limit, DSP estimate above the budget, BRAM
    above its share, or a larger budget that takes more cycles."""
    lines = []
    for row in rows:
        where = f"order {row['order']}, budget {row['dsp_budget']:,}"
        if row["cycles_predicted"] > row["limit_cycles"]:
            lines.append(f"{where}: {row['cycles_predicted']:,} cycles, above the limit {row['limit_cycles']:,.0f}")
        if row["dsp_estimate"] > row["dsp_budget"]:
            lines.append(f"{where}: {row['dsp_estimate']:,} DSP estimated, over the budget")
        if row["bram36"] > BRAM_SHARE * row["bram36_capacity"]:
            lines.append(f"{where}: {row['bram36']:,} BRAM36, above {BRAM_SHARE:.0%} of {row['bram36_capacity']:,}")
    for order in sorted({row["order"] for row in rows}):
        ordered = sorted((row for row in rows if row["order"] == order), key=lambda row: row["dsp_budget"])
        for smaller, larger in zip(ordered, ordered[1:]):
            if larger["cycles_predicted"] > smaller["cycles_predicted"]:
                lines.append(f"order {order}: budget {larger['dsp_budget']:,} takes {larger['cycles_predicted']:,} "
                             f"cycles, more than the {smaller['cycles_predicted']:,} of budget "
                             f"{smaller['dsp_budget']:,}")
    return lines


def plot(rows, path=PLOT):
    """Cycles against the budget per order, with the MAC bound and the limit drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for order, color in zip(sorted({row["order"] for row in rows}), ("tab:blue", "tab:orange", "tab:green")):
        ordered = sorted((row for row in rows if row["order"] == order), key=lambda row: row["dsp_budget"])
        budgets = [row["dsp_budget"] for row in ordered]
        axes.plot(budgets, [row["cycles_predicted"] for row in ordered], "o-", color=color,
                  label=f"order {order}: cycles (solver)")
        axes.plot(budgets, [row["mac_bound_cycles"] for row in ordered], "--", color=color,
                  label=f"order {order}: MAC bound")
        axes.plot(budgets, [row["limit_cycles"] for row in ordered], ":", color=color,
                  label=f"order {order}: {SLACK} × bound + first-sample latency")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("DSP budget")
    axes.set_ylabel(f"cycles for batch {rows[0]['batch']}")
    axes.set_title("SIREN 2→256×4→3, forward-mode derivatives, U280")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    model = models.siren(**WORKLOAD)
    rows = []
    for order in args.orders:
        for budget in args.budgets:
            print(f"order {order}, DSP budget {budget} ...", file=sys.stderr, flush=True)
            rows.append(budget_row(model, order, args.batch, budget))
            row = rows[-1]
            print(f"  {row['lanes']} lanes, period {row['period_cycles']}, {row['cycles_predicted']:,} cycles "
                  f"(limit {row['limit_cycles']:,.0f}, MAC bound {row['mac_bound_cycles']:,.0f}), first sample "
                  f"{row['first_sample_cycles']:,}, {row['dsp_estimate']:,} DSP, {row['bram36']:g} BRAM36",
                  file=sys.stderr, flush=True)
    plot(rows)
    misses = problems(rows)
    for line in misses:
        print(f"miss: {line}", file=sys.stderr)
    results.record("budget", {"rows": rows, "problems": misses},
                   inputs={"model": WORKLOAD, "batch": args.batch, "orders": args.orders, "budgets": args.budgets,
                           "mode": "forward", "slack": SLACK, "bram_share": BRAM_SHARE, **machine_load()})
    print(f"recorded under 'budget' in {results.RESULTS_PATH}; python -m bench.publish updates docs/performance.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
