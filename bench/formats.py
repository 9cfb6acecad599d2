"""Error versus bits for the default SIREN (2→256×4→3, w0 = 30), orders 1–3.

For each order: every edge at one width, for a sweep of widths, and the formats
:func:`inrarch.formats.search_formats` picks (tolerance 1e-3). Errors are measured by bit-exact
emulation of the hardware (:mod:`inrarch.emulate`, checked word for word against Verilator in the
tests) on random inputs the search never saw, as ``max |hardware - float64| / max |float64|`` over
the outputs. Bits are the mean width of a value, weighted by the elements each edge carries per
sample.

Run ``python -m bench.formats [--orders 1 2 3]``; records the figures under ``"formats"`` in
``bench/results.json`` (the table in ``docs/formats.md``), draws ``docs/formats.png`` and prints a
table.
"""

import argparse
import time

import matplotlib
import numpy as np
import torch

import inrarch
from bench import results
from bench.constants import WORKLOAD
from bench.results import machine_load
from inrarch.capture import capture
from inrarch.emulate import emulation_errors
from inrarch.formats import assign_formats, search_formats
from inrarch.passes import optimize

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

TOLERANCE = 1e-3
WIDTHS = range(12, 31, 2)
TEST_SAMPLES = 256
TEST_SEED = 2026
PLOT = results.REPOSITORY / "docs" / "formats.png"


def mean_bits(graph, formats):
    elements = sum(node.numel for node in graph.nodes)
    return sum(formats[node].width * node.numel for node in graph.nodes) / elements


def measure(order, x):
    fn = inrarch.derivatives(inrarch.models.siren(**WORKLOAD), order)
    graph = optimize(capture(fn, torch.zeros(2, 2, dtype=torch.float64))[0])
    sweep = []
    for width in WIDTHS:
        formats = assign_formats(graph, width=width)
        sweep.append({"width": width, "mean_bits": mean_bits(graph, formats),
                      "error": max(emulation_errors(graph, formats, x))})
        print(f"order {order}: {width} bits everywhere: error {sweep[-1]['error']:.2e}", flush=True)
    start = time.perf_counter()
    formats = search_formats(graph, tolerance=TOLERANCE)
    search = formats.search
    seconds = time.perf_counter() - start
    searched = {"mean_bits": mean_bits(graph, formats), "error": max(emulation_errors(graph, formats, x)),
                "uniform_width": search.uniform_width, "widths": sorted({fmt.width for fmt in formats.values()}),
                "trials": search.trials, "seconds": round(seconds, 1)}
    return {"sweep": sweep, "searched": searched}


def plot(results, path):
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for (order, result), style in zip(results.items(), ("-", "--", ":", "-.")):
        line, = axes.semilogy([p["mean_bits"] for p in result["sweep"]], [p["error"] for p in result["sweep"]],
                              marker=".", linestyle=style, label=f"order {order}: one width everywhere")
        searched = result["searched"]
        axes.semilogy([searched["mean_bits"]], [searched["error"]], marker="*", markersize=13, linestyle="",
                      color=line.get_color(), label=f"order {order}: searched per edge")
    axes.axhline(TOLERANCE, color="grey", linestyle="--", linewidth=1, label="error bar 1e-3")
    axes.set_xlabel("mean bits per value")
    axes.set_ylabel("max |hardware − float64| / max |float64|")
    axes.set_title("Default SIREN 2→256×4→3: error vs bits (bit-exact emulation)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    x = np.random.default_rng(TEST_SEED).uniform(-1.0, 1.0, size=(TEST_SAMPLES, 2))
    figures = {order: measure(order, x) for order in args.orders}
    results.record("formats", figures, inputs={"model": WORKLOAD, "orders": args.orders, "tolerance": TOLERANCE,
                                               "widths": list(WIDTHS), "test_samples": TEST_SAMPLES,
                                               "test_seed": TEST_SEED, **machine_load()})
    plot(figures, PLOT)
    print(f"{'order':>5}  {'uniform bits':>12}  {'searched mean bits':>18}  {'error':>8}  {'search s':>8}")
    for order, result in figures.items():
        s = result["searched"]
        print(f"{order:>5}  {s['uniform_width']:>12}  {s['mean_bits']:>18.1f}  {s['error']:>8.1e}  {s['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
