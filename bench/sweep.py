"""A 6-point sweep on a 1-worker against a 2-worker LocalCluster, and the rerun of a finished sweep.

    python -m bench.sweep

Runs the same 6 points of ``python -m inrarch.sweep`` (the small SIREN at 3 batches × 2 DSP
budgets, compile and estimate) on a LocalCluster of 1 worker, then of 2 workers, each into a fresh
output directory, then reruns the finished 2-worker sweep, which must take every row from the
cache. The workers import inrarch before the clock starts, so that the ratio compares the sweeps
and not the imports; the cluster start-ups are timed on their own. Records the seconds, the
speedup and the rerun under ``"sweep"`` in ``bench/results.json``, with the machine's load
average before and after each sweep: other work on the machine lengthens the times and shrinks the
speedup. The concurrency (the points' seconds added up, over the sweep's wall time) tells how many
points ran at once, which the load does not change.
"""

import argparse
import importlib
import tempfile
import time
from pathlib import Path

from dask.distributed import Client, LocalCluster

from bench import results
from bench.constants import QUICK
from bench.results import machine_load
from inrarch.sweep import grid, run_sweep

AXES = {"width": [QUICK["hidden"]], "depth": [QUICK["layers"]], "batch": [16, 32, 64], "dsp_budget": [64, 128]}


def _timed_sweep(workers, out, rerun=False):
    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(workers)
        startup = time.perf_counter() - start
        client.run(importlib.import_module, "inrarch.build")
        start = time.perf_counter()
        load_before = machine_load()["load_average"]
        rows, computed = run_sweep(grid(AXES), client, out)
        seconds = time.perf_counter() - start
        # Point-seconds per wall second: how many points ran at once, whatever the CPU share each one got.
        concurrency = sum(row["total_seconds"] for row in rows) / seconds
        timings = {"startup_seconds": round(startup, 2), "seconds": round(seconds, 2), "computed": computed,
                   "concurrency": round(concurrency, 2),
                   "load_average": [load_before, machine_load()["load_average"]]}
        if rerun:
            start = time.perf_counter()
            rerun_rows, recomputed = run_sweep(grid(AXES), client, out)
            timings["rerun"] = {"seconds": round(time.perf_counter() - start, 2), "computed": recomputed,
                                "rows_equal": rerun_rows == rows}
    failed = [row["error"] for row in rows if row["status"] != "ok"]
    if failed:
        raise SystemExit(f"error: {len(failed)} points failed: {failed[0]} (nothing recorded)")
    return timings


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        one = _timed_sweep(1, Path(scratch) / "one")
        print(f"1 worker: {one}", flush=True)
        two = _timed_sweep(2, Path(scratch) / "two", rerun=True)
        print(f"2 workers: {two}", flush=True)
    speedup = round(one["seconds"] / two["seconds"], 2)
    print(f"speedup {speedup}×; rerun {two['rerun']['seconds']} s, {two['rerun']['computed']} points recomputed")
    results.record("sweep", {"one_worker": one, "two_workers": two, "speedup": speedup},
                   inputs={"points": len(grid(AXES)), "axes": AXES, "model": QUICK, **machine_load()})


if __name__ == "__main__":
    main()
