"""``python -m inrarch.sweep``: a design-space sweep, one :func:`inrarch.build.build` per point, on Dask.

Every flag of the grid (``--model``, ``--order``, ``--dsp-budget``, ``--tolerance``, ``--bits``,
``--board``, ``--batch`` and the default SIREN's ``--width``, ``--depth``, ``--w0``) takes several
values; the sweep builds every combination. Each point compiles and estimates; ``--synth``,
``--simulate`` and ``--run-vendor`` add those stages, as they do to the build.

The points run as tasks of a ``dask.distributed`` cluster: by default an embedded ``LocalCluster``
with one single-threaded worker process per core (``--workers`` changes the count), or an existing
cluster with ``--scheduler tcp://host:8786``. A point runs :func:`inrarch.build.build` into
``OUT/points/KEY/``; a remote cluster's workers therefore need ``OUT`` on a shared file system.

Writes ``OUT/results.csv`` and ``OUT/results.json`` (one row per point: its configuration,
cycles, first-sample latency, DSPs, BRAM, buffer memory, max error, Fmax when run, the wall time
of each stage, and the one-line error of a point that failed), ``OUT/pareto.png`` (cycles against
DSPs, coloured by error) and prints the Pareto front.

Each point's row is cached in ``OUT/cache/`` (or ``--cache DIR``) under a hash of the model's
parameters, the point's options and the project's version and source revision, as soon as it
finishes: a rerun skips finished points, so an interrupted sweep resumes. A failing point records
its error and the others go on; a point whose worker dies is run again on another worker.

Exit codes: 0 every point succeeded, 1 some point failed (its row says why), 2 a bad sweep option.
"""

import argparse
import csv
import hashlib
import importlib.metadata
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from dask.distributed import Client, LocalCluster, as_completed
from dask.distributed import progress as progress_bar

from . import build
from .errors import InrarchError
from .evaluation import first_line

__all__ = ["main", "grid", "model_digest", "point_key", "point_config", "run_point", "run_sweep", "pareto_front", "write_results"]

DEFAULT_MODEL = "siren"
# Flag → value type of the grid's axes, in the order of the rows' columns.
AXES = {"model": str, "order": int, "batch": int, "dsp_budget": int, "tolerance": float, "bits": int,
        "board": str, "width": int, "depth": int, "w0": float}
STAGES = ("synth", "simulate", "run_vendor")
STAGE_SECONDS = ("compile_seconds", "verilog_seconds", "simulate_seconds", "synth_seconds", "vendor_seconds")
METRICS = ("status", "cycles", "first_sample_latency_cycles", "latency_us", "dsp", "bram36", "uram", "buffer_kib",
           "max_error", "error_source", "synth_dsp", "synth_lut", "fmax_mhz", *STAGE_SECONDS, "total_seconds",
           "error", "key", "directory")
# The packages whose source decides a point's result: uncommitted changes to them change the keys.
_SOURCE_PACKAGES = ("inrarch", "cores", "devices", "boards", "sim")
# Attempts of a point beyond the first when its task raises (a worker that dies is rescheduled by Dask).
_RETRIES = 2
# Workers that imported torch take seconds to exit on a loaded machine: Dask's default 5 s kills them noisily.
_CLOSE_SECONDS = 30
# Capture patches torch's tracing and swaps the model's tensors for float64 copies while it runs:
# a worker with several threads (a remote cluster's default) builds one point at a time.
_BUILD_LOCK = threading.Lock()


def grid(axes, stages=()):
    """Every combination of the ``axes`` values, as point dicts: ``{"config": {...}, "stages": [...]}``.

    ``axes`` maps axis names (keys of :data:`AXES`) to lists of values; an axis left out keeps the
    build's default and does not appear in the configs.
    """
    names = [name for name in AXES if axes.get(name)]
    return [{"config": dict(zip(names, values)), "stages": sorted(stages)}
            for values in itertools.product(*(axes[name] for name in names))]


def _source_revision():
    """The git commit of the source tree, plus a digest of its uncommitted changes; None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--", *_SOURCE_PACKAGES], cwd=root, capture_output=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (f"+{hashlib.sha256(diff).hexdigest()[:16]}" if diff else "")


def _project_version():
    try:
        return importlib.metadata.version("inrarch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def model_digest(config):
    """A digest of the parameters and buffers of the model a point compiles (and of its file, if any)."""
    spec = config.get("model", DEFAULT_MODEL)
    options = {name: config[name] for name in ("width", "depth", "w0") if name in config}
    model, _ = build.load_model(None if spec == DEFAULT_MODEL else spec, **options)
    digest = hashlib.sha256()
    if spec != DEFAULT_MODEL:
        digest.update(Path(spec.partition(":")[0]).read_bytes())
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def point_key(point, model_hash, revision):
    """The cache key of ``point``: a hash of its model's parameters, its options and the project's revision."""
    text = json.dumps({"point": point, "model": model_hash, "version": _project_version(), "revision": revision},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _row(point, report, seconds, error):
    row = {**point["config"], "status": "failed" if error else "ok", "error": error,
           "total_seconds": round(seconds, 3)}
    if report is None:
        return row
    paths = report.get("critical_path", {}).get("outputs", [])
    estimate = report["estimate"]
    simulated = "max_error" in report
    searched = (report.get("format_search") or {}).get("errors")
    fmax = [clock["achieved_mhz"] for clock in report.get("vendor_run", {}).get("fmax_mhz", {}).values()]
    row.update({
        "cycles": report["cycles_predicted"],
        "first_sample_latency_cycles": max((path["latency"] for path in paths), default=None),
        "latency_us": report["latency_us"],
        "dsp": estimate["DSP"],
        "bram36": estimate["BRAM36"],
        "uram": estimate["URAM"],
        "buffer_kib": report["buffer_bits"] / 8 / 1024,
        "max_error": report["max_error"] if simulated else max(searched) if searched else None,
        "error_source": "simulated" if simulated else "emulated" if searched else None,
        "synth_dsp": report["synth"]["DSP"] if "synth" in report else None,
        "synth_lut": report["synth"]["LUT"] if "synth" in report else None,
        "fmax_mhz": min(fmax) if fmax else None,
        **{name: report.get(name) for name in STAGE_SECONDS},
    })
    return row


def point_config(point, directory):
    """The :class:`inrarch.build.BuildConfig` of ``point``, building into ``directory``."""
    values = {name: value for name, value in point["config"].items()
              if not (name == "model" and value == DEFAULT_MODEL)}
    return build.BuildConfig(**values, **dict.fromkeys(point["stages"], True), out=directory)


def run_point(point, directory):
    """Build ``point`` into ``directory`` with :func:`inrarch.build.build`; returns its row.

    A point that the build refuses or fails returns a row with ``status`` "failed" and the build's
    one-line error: the sweep goes on. The metrics of a simulation that failed its checks are kept,
    as the build keeps its report. An internal error of the build raises, so that Dask retries the
    point on another worker.
    """
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with _BUILD_LOCK:
        start = time.perf_counter()
        report, error = None, None
        try:
            result = build.build(point_config(point, directory))
            report = result.report
            if result.problems:
                error = f"the simulation failed: {'; '.join(result.problems)}"
        except InrarchError as failure:
            error = build.error_line(failure)
        except build.ToolFailure as failure:
            tail = failure.log_tail.splitlines()
            error = f"{failure}{': ' + tail[-1].strip() if tail else ''}"
        seconds = time.perf_counter() - start
    row = _row(point, report, seconds, error)
    row["directory"] = str(directory) if report is not None else None
    return row


def _write_atomically(path, text):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def run_sweep(points, client, out, cache=None, progress=False):
    """Run ``points`` on the Dask ``client``; returns ``(rows, computed)`` in the order of ``points``.

    Points whose row is in ``cache`` (default ``out/cache``) are not run; the others run as Dask
    tasks (``retries`` on another worker when a task raises; a worker that dies has its task
    rescheduled by Dask) and each row is cached as soon as it arrives. A point whose task could
    not finish at all (its workers kept dying) gets a failed row, not cached, so that a rerun
    tries it again. ``computed`` counts the points that ran.
    """
    out = Path(out).resolve()
    cache = Path(cache).resolve() if cache else out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    revision = _source_revision()
    digests = {}
    keyed = {}
    for point in points:
        model = tuple(point["config"].get(name) for name in ("model", "width", "depth", "w0"))
        if model not in digests:
            digests[model] = model_digest(point["config"])
        keyed.setdefault(point_key(point, digests[model], revision), point)
    rows = {}
    for key in keyed:
        if (cache / f"{key}.json").exists():
            rows[key] = json.loads((cache / f"{key}.json").read_text())
    pending = {key: point for key, point in keyed.items() if key not in rows}
    futures = {client.submit(run_point, point, out / "points" / key, retries=_RETRIES, pure=False): key
               for key, point in pending.items()}

    def collect():
        for future in as_completed(list(futures)):
            key = futures[future]
            if future.status == "finished":
                row = {**future.result(), "key": key}
                _write_atomically(cache / f"{key}.json", json.dumps(row, sort_keys=True))
            else:
                error = future.exception()
                row = {**_row(pending[key], None, 0.0, f"{type(error).__name__}: {first_line(error)}"),
                       "key": key}
            rows[key] = row

    collector = threading.Thread(target=collect, name="sweep-results", daemon=True)
    collector.start()
    if progress and futures:
        progress_bar(list(futures))
    collector.join()
    return [rows[key] for key in keyed], len(futures)


def pareto_front(rows):
    """The successful rows that no other row beats in both cycles and DSPs, by DSPs."""
    done = [row for row in rows if row["status"] == "ok"]
    front = [row for row in done
             if not any(other["cycles"] <= row["cycles"] and other["dsp"] <= row["dsp"]
                        and (other["cycles"], other["dsp"]) != (row["cycles"], row["dsp"]) for other in done)]
    return sorted(front, key=lambda row: (row["dsp"], row["cycles"]))


def _columns(rows):
    return [name for name in (*AXES, *METRICS) if any(name in row for row in rows)]


def write_results(rows, out):
    """``out/results.csv``, ``out/results.json`` and ``out/pareto.png``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    columns = _columns(rows)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({name: "" if row.get(name) is None else row[name] for name in columns} for row in rows)
    _write_atomically(out / "results.csv", table.getvalue())
    _write_atomically(out / "results.json",
                      json.dumps([{name: row.get(name) for name in columns} for row in rows], indent=2) + "\n")
    _plot(rows, out / "pareto.png")
    return [out / "results.csv", out / "results.json", out / "pareto.png"]


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors
    import matplotlib.pyplot as plt

    done = [row for row in rows if row["status"] == "ok"]
    measured = [row for row in done if row.get("max_error")]
    unmeasured = [row for row in done if not row.get("max_error")]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    if measured:
        errors = [row["max_error"] for row in measured]
        scatter = axes.scatter([row["dsp"] for row in measured], [row["cycles"] for row in measured], c=errors,
                               cmap="viridis", norm=matplotlib.colors.LogNorm(min(errors), max(errors) * 1.0001),
                               zorder=3)
        figure.colorbar(scatter, ax=axes, label="max error (× max|ref|)")
    if unmeasured:
        axes.scatter([row["dsp"] for row in unmeasured], [row["cycles"] for row in unmeasured], color="grey",
                     label="error not measured", zorder=3)
        axes.legend()
    front = pareto_front(rows)
    if front:
        axes.step([row["dsp"] for row in front], [row["cycles"] for row in front], where="post", color="black",
                  linewidth=0.8, label="Pareto front", zorder=2)
    axes.set_xlabel("DSP48E2 (estimate)")
    axes.set_ylabel("cycles per batch")
    failed = len(rows) - len(done)
    axes.set_title(f"{len(done)} points" + (f", {failed} failed (not shown)" if failed else ""))
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _summary(rows, out):
    front = pareto_front(rows)
    failed = [row for row in rows if row["status"] != "ok"]
    axes = [name for name in AXES if any(name in row for row in rows)]
    lines = [f"{len(rows)} points, {len(failed)} failed; Pareto front (cycles against DSPs), {len(front)} points:"]
    for row in front:
        config = ", ".join(f"{name} {row[name]}" for name in axes)
        error = f"{row['max_error']:.1e} ({row['error_source']})" if row.get("max_error") is not None else "-"
        lines.append(f"  {config}: {row['cycles']} cycles, first sample {row['first_sample_latency_cycles']} "
                     f"cycles, {row['dsp']} DSP, {row['bram36']:g} BRAM36, {row['buffer_kib']:.1f} KiB buffers, "
                     f"max error {error}")
    for row in failed:
        lines.append(f"  failed: {', '.join(f'{name} {row[name]}' for name in axes)}: {row['error']}")
    lines.append(f"results: {out / 'results.csv'}, {out / 'results.json'}, {out / 'pareto.png'}")
    return "\n".join(lines)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m inrarch.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", type=str,
                        help=f"models: path.py:attr as the build takes, or {DEFAULT_MODEL!r} (the default SIREN)")
    for name, kind in AXES.items():
        if name != "model":
            parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", type=kind, metavar=name.upper(),
                                help=f"values of the build's --{name.replace('_', '-')}")
    parser.add_argument("--synth", action="store_true", help="each point also synthesizes (yosys synth_xilinx)")
    parser.add_argument("--simulate", action="store_true", help="each point also runs in Verilator, checked against torch")
    parser.add_argument("--run-vendor", action="store_true", help="each point also runs the board's P&R flow")
    parser.add_argument("--out", default="sweep", help="output directory (default: sweep)")
    parser.add_argument("--cache", help="cache directory of the points' rows (default: OUT/cache)")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786 "
                                            "(default: an embedded LocalCluster)")
    parser.add_argument("--workers", type=int,
                        help="worker processes of the embedded LocalCluster (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _client(args):
    if args.scheduler:
        return Client(args.scheduler), None
    workers = args.workers or len(os.sched_getaffinity(0))
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def main(argv=None):
    args = _parser().parse_args(argv)
    stages = [stage for stage in STAGES if getattr(args, stage)]
    # Workers import a user's model file by its path: absolute, so that their working directory does not matter.
    args.model = [model if model == DEFAULT_MODEL else f"{Path(model.partition(':')[0]).resolve()}:{model.partition(':')[2]}"
                  for model in args.model or ()]
    points = grid({name: getattr(args, name) for name in AXES}, stages)
    if args.workers is not None and (args.workers < 1 or args.scheduler):
        print("error: --workers sizes the embedded cluster: a positive count, without --scheduler", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} exists and is not a directory", file=sys.stderr)
        return 2
    client, cluster = None, None
    try:
        for model in args.model:
            if model != DEFAULT_MODEL:
                model_digest({"model": model})  # a bad --model fails here, once, not in every point
        client, cluster = _client(args)
        rows, computed = run_sweep(points, client, out, args.cache,
                                   progress=sys.stdout.isatty() and not args.no_progress)
    except InrarchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {args.scheduler or 'the local cluster'}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the finished points are cached in {args.cache or out / 'cache'}; "
              "the same command resumes", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close(timeout=_CLOSE_SECONDS)
    write_results(rows, out)
    print(f"{computed} points computed, {len(rows) - computed} from the cache")
    print(_summary(rows, out))
    return 1 if any(row["status"] != "ok" for row in rows) else 0


if __name__ == "__main__":
    # Dask pickles the functions of __main__ by value: run the imported module, whose tasks pickle by name.
    from inrarch import sweep

    sys.exit(sweep.main())
