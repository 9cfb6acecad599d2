"""``python -m inrarch.sweep``: a design-space sweep, one :func:`inrarch.build.build` per point, on Dask.

Every flag of the grid (``--model`` or ``--function``, ``--order``, ``--dsp-budget``,
``--tolerance``, ``--bits``, ``--board``, ``--batch`` and the default SIREN's ``--width``,
``--depth``, ``--w0``) takes several values; the sweep builds every combination, with ``--domain``
and ``--inputs`` for all of them. Each point compiles and estimates; ``--synth``, ``--simulate``
and ``--run-vendor`` add those stages, as they do to the build.

The points run as tasks of a ``dask.distributed`` cluster: by default an embedded ``LocalCluster``
with one single-threaded worker process per core (``--workers`` changes the count), or an existing
cluster with ``--scheduler tcp://host:8786``. A point runs :func:`inrarch.build.build` into
``OUT/points/NAME/``, named by its values (``o2_b16_dsp1000``, :func:`point_name`); a remote
cluster's workers therefore need ``OUT`` on a shared file system.

Writes ``OUT/results.csv`` and ``OUT/results.json`` (one row per point: its folder's name, its
configuration, cycles, lanes, first-sample latency, DSPs, BRAM, buffer memory, max error, Fmax
when run, the wall time of each stage, the one-line error of a point that failed and its cache
key), ``OUT/pareto.png`` (cycles against DSPs, one panel per thing computed: each function, each
model at each order; labelled points coloured by error on whole decades) and prints the Pareto
front of each.

Each point's row is cached in ``OUT/cache/`` (or ``--cache DIR``) under a hash of the model's
parameters, the point's options and the project's version and source revision, as soon as it
finishes: a rerun skips finished points, so an interrupted sweep resumes. A failing point records
its error and the others go on; a point whose worker dies is run again on another worker.

Exit codes: 0 every point succeeded, 1 some point failed (its row says why), 2 a bad sweep option.
"""

import argparse
import collections
import csv
import hashlib
import importlib.metadata
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from dask.distributed import Client, LocalCluster, as_completed
from dask.distributed import progress as progress_bar

from . import build
from .errors import InrarchError
from .evaluation import first_line

__all__ = ["main", "grid", "model_digest", "point_key", "point_name", "point_config", "run_point", "run_sweep",
           "pareto_front", "pareto_fronts", "write_results"]

DEFAULT_MODEL = "siren"
# Flag → value type of the grid's axes, in the order of the rows' columns.
AXES = {"model": str, "function": str, "order": int, "batch": int, "dsp_budget": int, "tolerance": float,
        "bits": int, "board": str, "width": int, "depth": int, "w0": float}
# How a point's folder names the value of each axis: o2_dsp1000_b16.
_FOLDER_PREFIXES = {"order": "o", "batch": "b", "dsp_budget": "dsp", "tolerance": "tol", "bits": "bits",
                    "width": "w", "depth": "d", "w0": "w0_"}
STAGES = ("synth", "simulate", "run_vendor")
STAGE_SECONDS = ("compile_seconds", "verilog_seconds", "simulate_seconds", "synth_seconds", "vendor_seconds")
METRICS = ("status", "cycles", "lanes", "first_sample_latency_cycles", "latency_us", "dsp", "bram36", "uram",
           "buffer_kib",
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


def grid(axes, stages=(), options=None):
    """Every combination of the ``axes`` values, as point dicts:
    ``{"config": {...}, "stages": [...], "options": {...}}``.

    ``axes`` maps axis names (keys of :data:`AXES`) to lists of values; an axis left out keeps the
    build's default and does not appear in the configs. ``options`` holds fields of
    :class:`inrarch.build.BuildConfig` that every point shares (``domain``, ``inputs``).
    """
    names = [name for name in AXES if axes.get(name)]
    return [{"config": dict(zip(names, values)), "stages": sorted(stages), "options": dict(options or {})}
            for values in itertools.product(*(axes[name] for name in names))]


def _spec_name(spec):
    """A short name for a ``path.py:attr`` spec: its attribute."""
    return spec if spec == DEFAULT_MODEL else spec.rpartition(":")[2]


def point_name(point):
    """A readable folder name for ``point``: its axes' values, ``o2_dsp1000_b16`` (the model or
    function by its attribute, the board by its name)."""
    parts = []
    for name, value in point["config"].items():
        if name in ("model", "function"):
            parts.append(_spec_name(value))
        elif name == "board":
            parts.append(value)
        else:
            parts.append(f"{_FOLDER_PREFIXES[name]}{value:g}")
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in "_".join(parts)) or "default"


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


def model_digest(point):
    """A digest of the parameters and buffers of the model or function a point compiles (and of its file,
    if any): :func:`inrarch.loading.parameter_hash`, as the build's report gives it."""
    config = point_config(point, ".")
    digest = hashlib.sha256(build.load_subject(config).built["parameter_hash"].encode())
    for spec in (config.model, config.function):
        if spec:
            digest.update(Path(spec.rpartition(":")[0]).read_bytes())
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
        "lanes": report["lanes"],
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
    return build.BuildConfig(**point.get("options", {}), **values, **dict.fromkeys(point["stages"], True),
                             out=directory)


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
        model = json.dumps([point["config"].get(name) for name in ("model", "function", "width", "depth", "w0")]
                           + [point.get("options", {})], sort_keys=True)
        if model not in digests:
            digests[model] = model_digest(point)
        keyed.setdefault(point_key(point, digests[model], revision), point)
    folders = _folders(keyed)
    rows = {}
    for key in keyed:
        if (cache / f"{key}.json").exists():
            rows[key] = {**json.loads((cache / f"{key}.json").read_text()), "name": folders[key]}
    pending = {key: point for key, point in keyed.items() if key not in rows}
    futures = {client.submit(run_point, point, out / "points" / folders[key], retries=_RETRIES, pure=False): key
               for key, point in pending.items()}

    def collect():
        for future in as_completed(list(futures)):
            key = futures[future]
            if future.status == "finished":
                row = {**future.result(), "key": key, "name": folders[key]}
                _write_atomically(cache / f"{key}.json", json.dumps(row, sort_keys=True))
            else:
                error = future.exception()
                row = {**_row(pending[key], None, 0.0, f"{type(error).__name__}: {first_line(error)}"),
                       "key": key, "name": folders[key]}
            rows[key] = row

    collector = threading.Thread(target=collect, name="sweep-results", daemon=True)
    collector.start()
    if progress and futures:
        progress_bar(list(futures))
    collector.join()
    return [rows[key] for key in keyed], len(futures)


def _folders(keyed):
    """``{key: folder name}``: :func:`point_name`, with the key's start added where two points share one."""
    names = {key: point_name(point) for key, point in keyed.items()}
    counts = collections.Counter(names.values())
    return {key: name if counts[name] == 1 else f"{name}_{key[:8]}" for key, name in names.items()}


def pareto_front(rows):
    """The successful rows that no other row beats in both cycles and DSPs, by DSPs."""
    done = [row for row in rows if row["status"] == "ok"]
    front = [row for row in done
             if not any(other["cycles"] <= row["cycles"] and other["dsp"] <= row["dsp"]
                        and (other["cycles"], other["dsp"]) != (row["cycles"], row["dsp"]) for other in done)]
    return sorted(front, key=lambda row: (row["dsp"], row["cycles"]))


def computes(row):
    """What a point computes, which only points computing the same compare with: its function, or
    its model and derivative order ("siren, order 2")."""
    if row.get("function"):
        return _spec_name(row["function"])
    return f"{_spec_name(row.get('model', DEFAULT_MODEL))}, order {row.get('order', 1)}"


def pareto_fronts(rows):
    """``{what a point computes: its Pareto front}`` (:func:`computes`, :func:`pareto_front`), in
    the order the rows first name them."""
    groups = {}
    for row in rows:
        groups.setdefault(computes(row), []).append(row)
    return {what: pareto_front(group) for what, group in groups.items()}


def _columns(rows):
    return [name for name in ("name", *AXES, *METRICS) if any(name in row for row in rows)]


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


def _error_scale(errors):
    """A logarithmic colour scale of whole decades around ``errors``, so that errors that differ by
    noise (1.354e-4 and 1.380e-4) get one colour and only orders of magnitude stand out."""
    import matplotlib.colors

    low = 10.0 ** math.floor(math.log10(min(errors)))
    high = 10.0 ** math.ceil(math.log10(max(errors)))
    return matplotlib.colors.LogNorm(low, max(high, 10 * low))


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fronts = pareto_fronts(rows)
    done = [row for row in rows if row["status"] == "ok"]
    # Points are labelled by the axes that vary within a panel (model, function and order name it).
    varying = [name for name in AXES if name not in ("model", "function", "order")
               and len({json.dumps(row.get(name)) for row in rows}) > 1]
    errors = [row["max_error"] for row in done if row.get("max_error")]
    scale = _error_scale(errors) if errors else None
    columns = min(len(fronts), 3)
    lines = -(-len(fronts) // columns)
    figure, grid = plt.subplots(lines, columns, figsize=(6.5 * columns, 4.8 * lines), squeeze=False)
    scatter = None
    for axes, (what, front) in zip(grid.flat, fronts.items()):
        group = [row for row in done if computes(row) == what]
        measured = [row for row in group if row.get("max_error")]
        unmeasured = [row for row in group if not row.get("max_error")]
        if measured:
            scatter = axes.scatter([row["dsp"] for row in measured], [row["cycles"] for row in measured],
                                   c=[row["max_error"] for row in measured], cmap="viridis", norm=scale, zorder=3)
        if unmeasured:
            axes.scatter([row["dsp"] for row in unmeasured], [row["cycles"] for row in unmeasured], color="grey",
                         label="error not measured", zorder=3)
        for row in group:
            label = point_name({"config": {name: row[name] for name in varying if name in row}})
            axes.annotate(label, (row["dsp"], row["cycles"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        axes.margins(0.2)
        if front:
            axes.step([row["dsp"] for row in front], [row["cycles"] for row in front], where="post", color="black",
                      linewidth=0.8, label="Pareto front", zorder=2)
            axes.legend(fontsize=8)
        failed = sum(1 for row in rows if computes(row) == what and row["status"] != "ok")
        axes.set_title(f"{what}: {len(group)} points" + (f", {failed} failed (not shown)" if failed else ""))
        axes.set_xlabel("DSP48E2 (estimate)")
        axes.set_ylabel("cycles per batch")
        axes.grid(True, alpha=0.3)
    for axes in list(grid.flat)[len(fronts):]:
        axes.set_visible(False)
    if scatter is not None:
        figure.colorbar(scatter, ax=grid.ravel().tolist(), label="max error (× max|ref|), whole decades")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _summary(rows, out):
    fronts = pareto_fronts(rows)
    failed = [row for row in rows if row["status"] != "ok"]
    axes = [name for name in AXES if any(name in row for row in rows)]
    lines = [f"{len(rows)} points, {len(failed)} failed; the Pareto front (cycles against DSPs) of each thing "
             "computed:"]
    for what, front in fronts.items():
        lines.append(f"  {what}: {len(front)} points")
        for row in front:
            error = f"{row['max_error']:.1e} ({row['error_source']})" if row.get("max_error") is not None else "-"
            lines.append(f"    {row.get('name', '')}: {row['cycles']} cycles, {row['lanes']} lane"
                         f"{'s' if row['lanes'] > 1 else ''}, first sample "
                         f"{row['first_sample_latency_cycles']} cycles, {row['dsp']} DSP, {row['bram36']:g} BRAM36, "
                         f"{row['buffer_kib']:.1f} KiB buffers, max error {error}")
    for row in failed:
        lines.append(f"  failed: {', '.join(f'{name} {row[name]}' for name in axes if name in row)}: {row['error']}")
    lines.append(f"results: {out / 'results.csv'}, {out / 'results.json'}, {out / 'pareto.png'}")
    return "\n".join(lines)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m inrarch.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", type=str,
                        help=f"models: path.py:attr as the build takes, or {DEFAULT_MODEL!r} (the default SIREN)")
    parser.add_argument("--function", nargs="+", type=str,
                        help="functions of one tensor built as they are (a Laplacian, a PINN residual): path.py:attr "
                             "as the build takes (instead of --model and --order)")
    for name, kind in AXES.items():
        if name not in ("model", "function"):
            parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", type=kind, metavar=name.upper(),
                                help=f"values of the build's --{name.replace('_', '-')}")
    parser.add_argument("--domain", type=float, nargs="+", metavar=("LO", "HI"),
                        help="the build's --domain, for every point")
    parser.add_argument("--inputs", type=int, help="the build's --inputs, for every point")
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
    # Workers import a user's file by its path: absolute, so that their working directory does not matter.
    for name in ("model", "function"):
        setattr(args, name, [spec if spec == DEFAULT_MODEL else
                             f"{Path(spec.rpartition(':')[0]).resolve()}:{spec.rpartition(':')[2]}"
                             for spec in getattr(args, name) or ()])
    if args.model and args.function:
        print("error: --model and --function both name what to build: sweep one of them", file=sys.stderr)
        return 2
    try:
        options = {"domain": build.domain_option(args.domain)} if args.domain else {}
    except InrarchError as error:
        print(f"error: {build.error_line(error)}", file=sys.stderr)
        return 2
    if args.inputs is not None:
        options["inputs"] = args.inputs
    points = grid({name: getattr(args, name) for name in AXES}, stages, options)
    if args.workers is not None and (args.workers < 1 or args.scheduler):
        print("error: --workers sizes the embedded cluster: a positive count, without --scheduler", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} exists and is not a directory", file=sys.stderr)
        return 2
    client, cluster = None, None
    try:
        # A bad --model or --function fails here, once, not in every point.
        for name in ("model", "function"):
            for spec in getattr(args, name):
                if spec != DEFAULT_MODEL:
                    model_digest({"config": {name: spec}, "stages": [], "options": options})
        client, cluster = _client(args)
        rows, computed = run_sweep(points, client, out, args.cache,
                                   progress=sys.stdout.isatty() and not args.no_progress)
    except InrarchError as error:
        print(f"error: {build.error_line(error)}", file=sys.stderr)
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
