"""``python -m inrarch.build``: outputs, one-line errors with exit code 2 for bad input, and exit code 1
for a simulation that fails its checks."""

import io
import json
import re
import subprocess
import sys

import matplotlib.image
import pytest

from inrarch.build import main


def run_build(*args, cwd):
    return subprocess.run([sys.executable, "-m", "inrarch.build", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_build_writes_verilog_and_report(tmp_path):
    out = tmp_path / "out"
    result = run_build("--board", "alveo_u280", "--width", "8", "--depth", "1", "--batch", "4", "--out", str(out),
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["board"] == "alveo_u280" and report["order"] == 1 and report["batch"] == 4
    assert report["cycles_predicted"] > 0
    assert "module top" in (out / "top.v").read_text()
    assert "cycles (predicted)" in result.stdout
    assert "format search" not in result.stderr  # no progress bars when stderr is not a terminal


# SIREN 2→8→3 at batch 16, as tests/test_reliability.py simulates it: the Verilator models are shared.
SMALL_SIREN = ("--width", "8", "--depth", "1", "--batch", "16", "--simulate")


def test_simulate_checks_the_design_and_reports_it(tmp_path):
    out = tmp_path / "out"
    result = run_build(*SMALL_SIREN, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["simulation_problems"] == []
    assert report["cycles_simulated"] == report["cycles_predicted"]
    assert report["max_error"] <= 1e-3 and not report["overflow"]


def test_a_simulation_that_fails_its_checks_exits_1_naming_every_problem(tmp_path):
    """Too few integer bits: outputs saturate. The report is written for inspection, and says so."""
    out = tmp_path / "out"
    result = run_build(*SMALL_SIREN, "--format", "q2.6", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    report = json.loads((out / "report.json").read_text())
    assert error == (f"error: the simulation failed: {'; '.join(report['simulation_problems'])} "
                     f"(report in {out / 'report.json'})")
    problems = report["simulation_problems"]
    assert any(p.startswith("output y0 is off by ") and p.endswith("over the tolerance 0.001") for p in problems)
    assert problems[-1].startswith("overflow: the ") and "of its format q2.6" in problems[-1]
    assert report["overflow"] and report["max_error"] > 1e-3


@pytest.mark.parametrize("args,message", [
    (["--board", "no_such_board"], "unknown board 'no_such_board'"),
    (["--format", "q16"], "--format 'q16' is not a number format"),
    (["--order", "0"], "--order must be an integer >= 1, not 0"),
    (["--lanes", "0"], "--lanes must be at least 1, not 0"),
    (["--bits", "12", "--format", "q8.8"], "--format and --bits both set the number formats"),
    (["--model", "missing.py:net"], "no such file 'missing.py'"),
    (["--trace"], "--trace records the waveform of the simulation: add --simulate"),
    (["--board", "ulx3s_85f", "--timing"], "--timing counts AMD/Xilinx primitives; ulx3s_85f is not"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = run_build(*args, "--width", "8", "--depth", "1", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plots_are_written_into_the_output_and_listed(tmp_path):
    out = tmp_path / "out"
    result = run_build("--width", "4", "--depth", "1", "--batch", "4", "--plots", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["plots"] == ["plots/timeline.png", "plots/fifo_occupancy.png"]
    for name in report["plots"]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
        image = matplotlib.image.imread(out / name)
        assert image.shape[1] >= 1000 and image.shape[0] >= 300
        assert image[..., :3].std() > 0.05  # drawn on, not a blank canvas
        assert name in result.stdout
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("flags,bars", [((), True), (("--no-progress",), False)])
def test_progress_bars_on_a_terminal_unless_turned_off(tmp_path, monkeypatch, capsys, flags, bars):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["--width", "4", "--depth", "1", "--batch", "4", "--out", str(tmp_path / "out"), *flags]) == 0
    trials = json.loads((tmp_path / "out" / "report.json").read_text())["format_search"]["trials"]
    shown = terminal.getvalue()
    if bars:
        assert f"format search: 100%" in shown and f" {trials}/{trials} [" in shown
    else:
        assert "format search" not in shown and "%|" not in shown
    assert "cycles (predicted)" in capsys.readouterr().out


def test_timing_reports_the_deepest_path_of_every_module(tmp_path):
    out = tmp_path / "out"
    result = run_build("--width", "4", "--depth", "1", "--batch", "2", "--timing", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    timing, verilog = report["timing"], (out / "top.v").read_text()
    modules = timing["modules"]
    assert set(modules) == set(re.findall(r"^module \\?(\S+?) ?\(", verilog, re.MULTILINE))
    worst = timing["worst"]
    # top holds every path of the design; the worst module is the innermost one as deep.
    assert worst["levels"] == modules["top"]["levels"] == max(module["levels"] for module in modules.values()) > 0
    assert {key: value for key, value in worst.items() if key != "module"} == modules[worst["module"]]
    assert worst["levels"] == worst["lut_levels"] + worst["carry_chains"] + worst["dsp_stages"]
    assert timing["over_target"] == [name for name, module in modules.items() if module["levels"] > 6]
    assert timing["unregistered_dsps"] == modules["top"]["unregistered_dsps"]
    assert f"{worst['levels']} levels in {worst['module']}" in result.stdout
    assert report["timing_seconds"] > 0 and [path.name for path in (out / "timing").iterdir()] == ["yosys.log"]


def test_unwritable_output_directory_is_a_user_error(tmp_path):
    result = run_build("--width", "8", "--depth", "1", "--out", str(tmp_path / "missing" / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


REFUSED_MODELS = """
import torch
from torch import nn


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 4)
        self.out = nn.Linear(4, 1)


class UnsupportedOp(Base):
    def forward(self, x):
        return self.out(torch.special.bessel_j0(self.hidden(x)))


class ControlFlow(Base):
    def forward(self, x):
        h = self.hidden(x)
        if h.sum() > 0:
            h = torch.sin(h)
        return self.out(h)


class DynamicShape(Base):
    def forward(self, x):
        h = self.hidden(x)
        return self.out(h) + h[h > 0].sum()


class IntegerValues(Base):
    def forward(self, x):
        return self.out(self.hidden(x).to(torch.int32).to(x.dtype))


class TwoTensors(Base):
    def forward(self, x, y):
        return self.out(self.hidden(x) * y)
"""


@pytest.mark.parametrize("model,message", [
    ("UnsupportedOp", "unsupported op torch.special.bessel_j0 at "),
    ("ControlFlow", "data-dependent control flow is not supported"),
    ("DynamicShape", "boolean masks give data-dependent shapes"),
    ("IntegerValues", "integer values are not supported"),
    ("TwoTensors", "only functions of one tensor are supported"),
])
def test_every_refusal_is_one_line_exit_2_and_writes_nothing(tmp_path, model, message):
    models = tmp_path / "models"
    models.mkdir()
    (models / "refused.py").write_text(REFUSED_MODELS)
    work = tmp_path / "work"
    work.mkdir()
    result = run_build("--model", f"{models / 'refused.py'}:{model}", "--batch", "4", "--out", str(work / "out"),
                       cwd=work)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and message in error
    assert "Traceback" not in result.stderr
    assert list(work.iterdir()) == []
