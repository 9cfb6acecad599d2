"""``python -m inrarch.sweep`` on a 2-worker LocalCluster: every point exactly once with the numbers of a
direct compile, failing points as one-line error rows, a worker killed mid-sweep, and cached reruns; and
the generality tests' Verilator cases as tasks of the same cluster."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

import inrarch
from inrarch.sweep import _error_scale, computes, grid, main, pareto_fronts, point_name, run_sweep

distributed = pytest.importorskip("dask.distributed")

# SIREN 2→4→3 at order 1; a DSP budget of 1 is below the 12 DSPs it needs with one multiplier per matmul.
AXES = {"width": [4], "depth": [1], "batch": [4, 8], "dsp_budget": [16, 1]}
CLI = ["--width", "4", "--depth", "1", "--batch", "4", "8", "--dsp-budget", "16", "1"]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def finished_sweep(client, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    rows, computed = run_sweep(grid(AXES), client, out)
    return out, rows, computed


def test_every_point_once_with_the_numbers_of_a_direct_compile(finished_sweep):
    out, rows, computed = finished_sweep
    assert computed == 4 and len(rows) == 4
    assert [(row["batch"], row["dsp_budget"]) for row in rows] == [(4, 16), (4, 1), (8, 16), (8, 1)]
    assert len({row["key"] for row in rows}) == 4 and len(list((out / "cache").glob("*.json"))) == 4
    model = inrarch.models.siren(2, 4, 1, 3, 30.0, 0)
    for row in (row for row in rows if row["dsp_budget"] == 16):
        assert row["status"] == "ok" and row["error"] is None
        design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(row["batch"], 2), dsp_budget=16)
        report = design.report
        assert row["cycles"] == report["cycles_predicted"]
        assert row["first_sample_latency_cycles"] == max(path["latency"] for path in
                                                         report["critical_path"]["outputs"])
        assert row["dsp"] == report["dsp_estimate"] <= 16
        assert row["buffer_kib"] == report["buffer_bits"] / 8 / 1024
        assert row["max_error"] == max(report["format_search"]["errors"]) and row["error_source"] == "emulated"
        assert row["compile_seconds"] > 0 and row["total_seconds"] >= row["compile_seconds"]
        assert row["name"] == f"b{row['batch']}_dsp16_w4_d1" and row["lanes"] == report["lanes"]
        assert row["directory"] == str(out / "points" / row["name"])
        assert json.loads((out / "points" / row["name"] / "report.json").read_text())["batch"] == row["batch"]


def test_a_point_the_build_refuses_is_a_one_line_error_row(finished_sweep):
    _, rows, _ = finished_sweep
    failed = [row for row in rows if row["status"] == "failed"]
    assert [row["dsp_budget"] for row in failed] == [1, 1]
    for row in failed:
        assert row["error"] == ("the design needs at least 12 DSP slices even with one multiplier per matmul, "
                                "over the budget of 1")
        assert row.get("cycles") is None and row["directory"] is None


def test_the_command_reruns_a_finished_sweep_from_the_cache_on_a_named_scheduler(finished_sweep, client, capsys):
    out, rows, _ = finished_sweep
    reports = sorted(out.glob("points/*/report.json"))
    modified = [path.stat().st_mtime_ns for path in reports]
    start = time.perf_counter()
    assert main([*CLI, "--scheduler", client.scheduler.address, "--out", str(out)]) == 1  # two points fail
    assert time.perf_counter() - start < 5
    printed = capsys.readouterr().out
    assert printed.startswith("0 points computed, 4 from the cache\n")
    assert "failed: batch 4, dsp_budget 1, width 4, depth 1: the design needs at least 12 DSP" in printed
    assert [path.stat().st_mtime_ns for path in reports] == modified
    recorded = json.loads((out / "results.json").read_text())
    assert [(row["key"], row["cycles"]) for row in recorded] == [(row["key"], row.get("cycles")) for row in rows]
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("name,batch,dsp_budget,width,depth,status,cycles,lanes,")
    assert csv_lines[0].endswith(",key,directory")
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")


def test_a_worker_killed_mid_sweep_loses_no_point_and_records_none_twice(client, tmp_path):
    """The kill lands once the first row is cached; the killed worker's point runs again elsewhere."""
    points = grid({"width": [4], "depth": [1], "batch": [2, 3, 5], "dsp_budget": [16]})
    outcome = {}
    sweep = threading.Thread(target=lambda: outcome.update(result=run_sweep(points, client, tmp_path)))
    sweep.start()
    deadline = time.monotonic() + 300
    while not list((tmp_path / "cache").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    busy = [worker for worker, keys in client.processing().items() if keys]
    assert busy, "no point was running after the first result"
    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
    os.kill(pid, signal.SIGKILL)
    sweep.join(timeout=300)
    rows, computed = outcome["result"]
    assert computed == 3 and [row["batch"] for row in rows] == [2, 3, 5]
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    keys = sorted(row["key"] for row in rows)
    assert sorted(path.stem for path in (tmp_path / "cache").glob("*.json")) == keys
    # The killed build may leave its hidden staging directory beside the points' outputs.
    assert sorted(path.name for path in (tmp_path / "points").iterdir() if not path.name.startswith(".")) == \
        ["b2_dsp16_w4_d1", "b3_dsp16_w4_d1", "b5_dsp16_w4_d1"]


def test_generality_cases_run_as_tasks_of_a_named_scheduler(client):
    """``pytest --scheduler ADDR`` runs tests/test_generality.py's Verilator cases on that cluster."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_generality.py",
                          "-k", "test_design_matches_torch_in_verilator and leaky_relu-derivatives-1",
                          "--scheduler", client.scheduler.address], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-2000:]
    prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert "design_problems" in prefixes


FUNCTIONS = """
import torch

layer = torch.nn.Linear(2, 4)


def gaussian_bump(x):
    return torch.exp(-(layer(x) ** 2)).sum(dim=1)


def wave(x):
    return torch.sin(3 * layer(x))
"""


def test_functions_sweep_like_models_each_with_its_own_front(client, tmp_path):
    (tmp_path / "fields.py").write_text(FUNCTIONS)
    specs = [f"{tmp_path / 'fields.py'}:gaussian_bump", f"{tmp_path / 'fields.py'}:wave"]
    rows, computed = run_sweep(grid({"function": specs, "dsp_budget": [64]}, options={"inputs": 2}), client,
                               tmp_path / "sweep")
    assert computed == 2 and all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    assert [row["name"] for row in rows] == ["gaussian_bump_dsp64", "wave_dsp64"]
    fronts = pareto_fronts(rows)
    assert list(fronts) == ["gaussian_bump", "wave"]
    assert all(computes(row) == what for what, front in fronts.items() for row in front)
    report = json.loads((tmp_path / "sweep" / "points" / "wave_dsp64" / "report.json").read_text())
    assert report["built"]["kind"] == "function" and report["outputs"][0]["meaning"] == "wave(x)"


def test_folder_names_fronts_and_the_error_scale():
    assert point_name({"config": {"model": "/a/my_inr.py:model", "order": 2, "dsp_budget": 1000, "batch": 16}}) == \
        "model_o2_dsp1000_b16"
    assert point_name({"config": {"tolerance": 0.001, "board": "alveo_u50"}}) == "tol0.001_alveo_u50"
    rows = [{"status": "ok", "order": order, "dsp": dsp, "cycles": cycles}
            for order, dsp, cycles in ((1, 10, 100), (1, 20, 50), (1, 30, 60), (2, 10, 300))]
    fronts = pareto_fronts(rows)
    assert {what: [row["dsp"] for row in front] for what, front in fronts.items()} == \
        {"siren, order 1": [10, 20], "siren, order 2": [10]}
    # Errors 1.354e-4 to 1.380e-4 are noise: the scale spans whole decades, so they get one colour.
    scale = _error_scale([1.354e-4, 1.380e-4])
    assert (scale.vmin, scale.vmax) == (1e-4, 1e-3)
    assert abs(scale(1.354e-4) - scale(1.380e-4)) < 0.01
