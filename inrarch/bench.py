"""``python -m inrarch.bench``: inrarch against INR-Arch and torch on INR-Arch's own workload.

For each gradient order it compiles the SIREN 2→256→256→256→256→3 (w0 = 30) at batch 64, takes
the solver's cycles, optionally runs the Verilog in Verilator (``--simulate``: measured cycles and
error against float64 torch), and times the torch CPU baseline on the same inputs in this process
(median of ``--repeats`` runs after warm-up, threads stated), computed as INR-Arch did: autograd
on every component of every gradient, in float32. It prints a table, writes
``bench/results.json`` and a plot of cycles against order and batch with the MAC bound drawn.

``--quick`` runs a small SIREN (2→16→16→3) with Verilator simulation, in a few minutes.
Full-size Verilog generation takes about ten minutes per design, and its Verilator build longer.
"""

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from boards import AlveoU280Platform

from . import derivatives, models
from .design import compile as compile_design

INR_ARCH = {  # published results at 300 MHz (sharc-lab/inr-arch results.csv)
    1: {"cycles": 558_000, "memory_mb": 0.8547, "dsps": 3199},
    2: {"cycles": 763_000, "memory_mb": 7.6707},
}
U280_DSP_BUDGET = int(AlveoU280Platform.capacity["DSP"] * AlveoU280Platform.usable_fraction)


def autograd_per_component(model, order):
    """INR-Arch's CPU/GPU baseline: ``torch.autograd.grad`` on every component of every gradient."""

    def fn(x):
        x = x.detach().requires_grad_(True)
        y = model(x)
        current = [y[:, o] for o in range(y.shape[1])]
        results = [y]
        for _ in range(order):
            current = [g[:, i] for c in current
                       for g in [torch.autograd.grad(c.sum(), x, create_graph=True)[0]] for i in range(x.shape[1])]
            results.append(torch.stack(current, 1))
        return results

    return fn


def torch_baseline(fn, x, repeats):
    """Median wall time (ms) of ``fn(x)`` on the CPU after two warm-up calls."""
    for _ in range(2):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_case(model, order, batch, *, dsp_budget, simulate, repeats, workload=True, seed=0):
    fn = derivatives(model, order)
    start = time.perf_counter()
    design = compile_design(fn, torch.zeros(batch, 2, dtype=torch.float64), dsp_budget=dsp_budget)
    compile_seconds = time.perf_counter() - start
    report = design.report
    x = torch.tensor(np.random.default_rng(seed).uniform(-1.0, 1.0, size=(batch, 2)))
    macs = report["macs_per_sample"] * batch
    row = {
        "order": order, "batch": batch, "dsp_budget": dsp_budget,
        "cycles_predicted": report["cycles_predicted"],
        "latency_ms": report["cycles_predicted"] / (report["clock_mhz"] * 1e3),
        "multipliers": report["multipliers"], "dsp_estimate": report["dsp_estimate"],
        "mac_bound_cycles": macs / report["multipliers"],
        "utilization": macs / (report["multipliers"] * report["cycles_predicted"]),
        "buffer_mb": report["fifo_bits"] / 8 / 1e6,
        "weight_mb": report["weight_bits"] / 8 / 1e6,
        "compile_seconds": compile_seconds,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_ms": torch_baseline(autograd_per_component(copy.deepcopy(model).float(), order), x.float(), repeats),
    }
    if simulate:
        result = design.simulate(x)
        reference = fn(x)
        row["cycles_simulated"] = result.cycles
        row["max_error"] = max(float(np.max(np.abs(got - ref.detach().numpy())) / float(ref.abs().max()))
                               for got, ref in zip(result.outputs, reference))
    cycles = row.get("cycles_simulated", row["cycles_predicted"])
    row["speedup_vs_torch_cpu"] = row["torch_cpu_ms"] / (cycles / (report["clock_mhz"] * 1e3))
    published = INR_ARCH.get(order)
    if published and batch == 64 and workload:
        row["cycles_vs_inr_arch"] = published["cycles"] / cycles
        row["memory_vs_inr_arch"] = published["memory_mb"] / max(row["buffer_mb"], 1e-12)
    return row


def _table(rows):
    columns = [("order", "{}"), ("batch", "{}"), ("dsp_budget", "{}"), ("cycles_predicted", "{}"),
               ("cycles_simulated", "{}"), ("latency_ms", "{:.3f}"), ("multipliers", "{}"), ("dsp_estimate", "{}"),
               ("utilization", "{:.0%}"), ("buffer_mb", "{:.4f}"), ("max_error", "{:.1e}"),
               ("torch_cpu_ms", "{:.2f}"), ("speedup_vs_torch_cpu", "{:.1f}x"), ("cycles_vs_inr_arch", "{:.1f}x"),
               ("memory_vs_inr_arch", "{:.0f}x")]
    header = "| " + " | ".join(name for name, _ in columns) + " |"
    lines = [header, "|" + "---|" * len(columns)]
    for row in rows:
        cells = [fmt.format(row[name]) if row.get(name) is not None else "-" for name, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(rows, sweep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_order, by_batch) = plt.subplots(1, 2, figsize=(11, 4))
    for budget in sorted({r["dsp_budget"] for r in rows}, key=str):
        chosen = [r for r in rows if r["dsp_budget"] == budget]
        by_order.plot([r["order"] for r in chosen], [r["cycles_predicted"] for r in chosen], "o-",
                      label=f"inrarch, DSP budget {budget}")
        by_order.plot([r["order"] for r in chosen], [r["mac_bound_cycles"] for r in chosen], "k:", alpha=0.6)
    orders = sorted(INR_ARCH)
    by_order.plot(orders, [INR_ARCH[o]["cycles"] for o in orders], "s--", label="INR-Arch (published)")
    by_order.set(xlabel="gradient order", ylabel="cycles (batch 64)", yscale="log",
                 title="cycles vs order (dotted: MAC bound)")
    by_order.legend(fontsize=8)
    by_batch.plot([r["batch"] for r in sweep], [r["cycles_predicted"] for r in sweep], "o-", label="inrarch")
    by_batch.plot([r["batch"] for r in sweep], [r["mac_bound_cycles"] for r in sweep], "k:", label="MAC bound")
    by_batch.set(xlabel="batch", ylabel="cycles", xscale="log", yscale="log", title="cycles vs batch (order 1)")
    by_batch.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m inrarch.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budgets", type=int, nargs="+", default=[U280_DSP_BUDGET, 3199],
                        help="DSP budgets to build for (default: the U280's usable 80%% and INR-Arch's 3199)")
    parser.add_argument("--quick", action="store_true", help="small SIREN 2→16→16→3, simulated in Verilator")
    parser.add_argument("--simulate", action="store_true", help="run every design in Verilator")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="bench")
    args = parser.parse_args(argv)
    if args.quick:
        model = models.siren(in_features=2, hidden=16, layers=2, out_features=3, w0=30.0, seed=0)
        args.simulate = True
    else:
        model = models.default_siren()
    rows = []
    for budget in args.budgets:
        for order in args.orders:
            print(f"order {order}, DSP budget {budget} ...", file=sys.stderr, flush=True)
            rows.append(run_case(model, order, args.batch, dsp_budget=budget, simulate=args.simulate,
                                 repeats=args.repeats, workload=not args.quick))
    sweep = [run_case(model, 1, batch, dsp_budget=args.budgets[0], simulate=False, repeats=3, workload=not args.quick)
             for batch in (16, 64, 256)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"rows": rows, "batch_sweep": sweep}, indent=2) + "\n")
    _plot(rows, sweep, out / "cycles.png")
    print(_table(rows))
    print(f"\ntorch {torch.__version__} on CPU with {torch.get_num_threads()} threads; results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
