"""``python -m inrarch.build``: outputs, and one-line errors with exit code 2 for bad input."""

import json
import subprocess
import sys

import pytest


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


@pytest.mark.parametrize("args,message", [
    (["--board", "no_such_board"], "unknown board 'no_such_board'"),
    (["--format", "q16"], "bad number format 'q16'"),
    (["--order", "0"], "--order must be at least 1"),
    (["--model", "missing.py:net"], "no such file 'missing.py'"),
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
    ("UnsupportedOp", "unsupported op aten.special_bessel_j0 at "),
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
