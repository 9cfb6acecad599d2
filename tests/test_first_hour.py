"""A researcher's first hour (issue #26), as the trial went: a trained SIREN saved with
``torch.save(state_dict)``, loaded in ``my_inr.py`` that imports its class from ``siren_def.py``
beside it, built from another directory with ``--function`` (a Laplacian written with
``requires_grad_`` and ``torch.autograd.grad``, in a fresh interpreter as a user runs it; a PINN
residual on its own domain) and ``--model`` (the class by mistake, a factory that loads the
state); errors in the user's terms. ``my_inr.py``
is the README quick start's, with the trial's additions."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inrarch
from boards import board_device, get_board
from cores import Q
from inrarch.build import main
from inrarch.loading import load, parameter_hash

SIREN_DEF = '''
import torch
from torch import nn


class Sine(nn.Module):
    def __init__(self, a, b, w0=30.0):
        super().__init__()
        self.linear = nn.Linear(a, b)
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    def __init__(self, hidden=4):
        super().__init__()
        self.net = nn.Sequential(Sine(2, hidden), Sine(hidden, hidden, w0=1.0), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)
'''

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_model_file():
    """The quick start's ``my_inr.py``, as the README shows it."""
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    return re.search(r"```python\n(# my_inr.py\n.*?)```", section, re.S).group(1)


# What the trial added to the quick start's file: a factory that loads the weights, and a PINN residual.
MY_INR_MORE = '''

def trained():
    net = Siren()
    net.load_state_dict(torch.load(Path(__file__).with_name("siren.pt")))
    return net


def burgers_residual(tx):
    """u_t + u u_x - nu u_xx of u(t, x): Burgers' equation, as PINNs train it."""
    tx = tx.requires_grad_(True)
    u = model(tx)[:, 0]
    (grad,) = torch.autograd.grad(u.sum(), tx, create_graph=True)
    u_t, u_x = grad[:, 0], grad[:, 1]
    u_xx = torch.autograd.grad(u_x.sum(), tx, create_graph=True)[0][:, 1]
    return u_t + u * u_x - (0.01 / torch.pi) * u_xx
'''

USER_ERRORS = '''
import torch
from torch import nn


class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 8)
        self.norm = nn.LayerNorm(8)
        self.b = nn.Linear(8, 1)

    def forward(self, x):
        h = torch.sin(self.a(x))
        h = self.norm(h)
        return self.b(h)


stacked = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 1))


def clamped(x):
    return torch.clamp(stacked(x), -1.0, 1.0)
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The user's folder with the model files and trained weights, and another folder to work in."""
    root = tmp_path_factory.mktemp("first_hour")
    (root / "project").mkdir()
    (root / "elsewhere").mkdir()
    (root / "project" / "siren_def.py").write_text(SIREN_DEF)
    (root / "project" / "my_inr.py").write_text(readme_model_file() + MY_INR_MORE)
    (root / "project" / "user_errors.py").write_text(USER_ERRORS)
    sys.path.insert(0, str(root / "project"))
    try:
        from siren_def import Siren
    finally:
        sys.path.remove(str(root / "project"))
        sys.modules.pop("siren_def", None)
    torch.manual_seed(7)
    trained = Siren()
    torch.save(trained.state_dict(), root / "project" / "siren.pt")
    return root, parameter_hash([trained])


def run_build(*args, cwd):
    return subprocess.run([sys.executable, "-m", "inrarch.build", "--batch", "4", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def summary_row(stdout, name):
    return next(line.split(None, len(name.split()))[-1] for line in stdout.splitlines()
                if line.strip().startswith(name + "  "))


def test_a_laplacian_function_builds_from_another_directory(project):
    """The command line as a new user runs it; the design is the one inrarch.compile makes of the same
    function (whose Laplacians tests/test_generality.py runs in Verilator)."""
    root, trained_hash = project
    result = run_build("--function", "../project/my_inr.py:laplacian", "--out", "lap", cwd=root / "elsewhere")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr and "Traceback" not in result.stderr
    report = json.loads((root / "elsewhere" / "lap" / "report.json").read_text())
    built = report["built"]
    assert built["as"] == "function" and built["kind"] == "function" and built["order"] is None
    assert built["parameter_hash"] == trained_hash and not built["fresh_weights"]
    assert built["layers"] == "Siren(Sine(Linear(2→4)), Sine(Linear(4→4)), Linear(4→1))"
    assert report["input"] == {"port": "x", "shape": [2], "format": report["input_format"], "domain": [-1.0, 1.0]}
    assert [(o["port"], o["shape"], o["meaning"]) for o in report["outputs"]] == [("y0", [], "laplacian(x)")]
    laplacian = load(str(root / "project" / "my_inr.py:laplacian"), option="function").value
    design = inrarch.compile(laplacian, torch.zeros(4, 2), device=board_device(get_board("alveo_u280")))
    assert report["formats"] == design.report["formats"] and report["cycles_predicted"] == design.report["cycles_predicted"]
    assert summary_row(result.stdout, "built") == "function ../project/my_inr.py:laplacian, built as it is"
    assert summary_row(result.stdout, "model") == ("Siren(Sine(Linear(2→4)), Sine(Linear(4→4)), Linear(4→1)): "
                                                   f"37 parameters, sha256 {trained_hash[:16]}")
    assert summary_row(result.stdout, "outputs") == f"y0 laplacian(x) scalar {report['outputs'][0]['format']}"
    assert summary_row(result.stdout, "max error").endswith(
        "emulated by the format search; not simulated: --simulate runs the Verilog in Verilator against float64 torch")


def test_a_pinn_residual_builds_on_the_domain_of_each_input(project, monkeypatch, capsys):
    root, trained_hash = project
    monkeypatch.chdir(root / "elsewhere")
    assert main(["--function", "../project/my_inr.py:burgers_residual", "--domain", "0", "2", "-1", "1",
                 "--batch", "4", "--bits", "20", "--out", "pinn"]) == 0
    report = json.loads((root / "elsewhere" / "pinn" / "report.json").read_text())
    assert report["input"]["domain"] == [[0.0, 2.0], [-1.0, 1.0]]
    assert Q.parse(report["input_format"]).max_value >= 2
    residual = load("../project/my_inr.py:burgers_residual", option="function").value
    on_the_domain = inrarch.compile(residual, torch.zeros(4, 2), width=20, domain=((0, 2), (-1, 1)))
    assert report["formats"] == on_the_domain.report["formats"]
    assert report["built"]["parameter_hash"] == trained_hash
    assert report["outputs"][0]["meaning"] == "burgers_residual(x)"
    stdout = capsys.readouterr().out
    assert summary_row(stdout, "input").startswith("x: 2 inputs per sample, domain [0..2, -1..1]")
    # Not simulated: the summary says so and which flag checks it.
    assert "not simulated: --simulate runs the Verilog in Verilator" in summary_row(stdout, "max error")


def test_a_class_builds_with_a_one_line_warning(project, monkeypatch, capsys):
    root, trained_hash = project
    monkeypatch.chdir(root / "elsewhere")
    assert main(["--model", "../project/siren_def.py:Siren", "--batch", "4", "--bits", "20", "--out", "class"]) == 0
    printed = capsys.readouterr()
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: ../project/siren_def.py:Siren is a class that loaded no state (no load_state_dict "
                        "or torch.load): the design computes with freshly initialized weights; name the trained "
                        "instance, or a function that loads its state, to build the trained model"]
    report = json.loads((root / "elsewhere" / "class" / "report.json").read_text())
    assert report["built"]["kind"] == "class" and report["built"]["fresh_weights"]
    assert report["built"]["parameter_hash"] != trained_hash and report["warnings"] == [warnings[0][9:]]
    assert summary_row(printed.out, "built") == "order-1 derivatives of class ../project/siren_def.py:Siren"
    assert summary_row(printed.out, "model").endswith("(freshly initialized)")


def test_a_factory_that_loads_the_weights_builds_the_trained_model(project, monkeypatch, capsys):
    root, trained_hash = project
    monkeypatch.chdir(root / "elsewhere")
    assert main(["--model", "../project/my_inr.py:trained", "--batch", "4", "--bits", "20", "--out", "factory"]) == 0
    report = json.loads((root / "elsewhere" / "factory" / "report.json").read_text())
    assert report["built"]["kind"] == "factory" and report["built"]["parameter_hash"] == trained_hash
    assert [(o["meaning"], o["shape"]) for o in report["outputs"]] == [("value", [1]), ("gradient", [1, 2])]
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--function", "../project/my_inr.py:laplacian", "--order", "2"],
     "error: --order is the derivative order of a --model; a --function is built as it is"),
    (["--model", "../project/my_inr.py:model", "--function", "../project/my_inr.py:laplacian"],
     "error: --model and --function both name what to build: give one of them"),
    (["--function", "../project/my_inr.py:torch"],
     "error: --function ../project/my_inr.py:torch is a module; it takes a torch.nn.Module, its class"),
    (["--domain", "0", "1", "2"], "error: --domain takes LO HI pairs, not 3 numbers"),
])
def test_what_to_build_is_refused_in_one_line(project, monkeypatch, capsys, args, message):
    root, _ = project
    monkeypatch.chdir(root / "elsewhere")
    assert main([*args, "--out", "refused"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(message)
    assert not (root / "elsewhere" / "refused").exists()


def test_unsupported_ops_name_the_users_line_and_what_to_write_instead(project, monkeypatch, capsys):
    root, _ = project
    monkeypatch.chdir(root / "elsewhere")
    assert main(["--model", "../project/user_errors.py:Normed", "--bits", "20", "--out", "refused"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: unsupported op torch.layer_norm (normalizing divides by a streamed standard "
                            "deviation")
    # A file outside the working directory is named by its absolute path.
    where = root / "project" / "user_errors.py"
    assert f"at {where}:15: h = self.norm(h), in nn.LayerNorm 'norm';" in error
    assert "site-packages" not in error and "aten" not in error
    assert "inrarch computes sin, cos, tanh, sigmoid, exp, relu, softplus" in error
    # The user's line that calls a model holding the layer, and the layer's place in it.
    assert main(["--function", "../project/user_errors.py:clamped", "--bits", "20", "--out", "refused"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert ("unsupported op torch.layer_norm" in error and f"at {where}:23: return "
            "torch.clamp(stacked(x), -1.0, 1.0), in nn.LayerNorm '2';" in error)
    # A layer that no line of the user's calls is named by its place in the model.
    assert main(["--model", "../project/user_errors.py:stacked", "--bits", "20", "--out", "refused"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "at nn.LayerNorm '2' of the Sequential model (torch calls it: no line of yours does);" in error


def test_clamp_is_refused_with_its_rewrite_at_the_users_line():
    def fn(x):
        return torch.clamp(torch.sin(3 * x), -0.5, 0.5)

    with pytest.raises(inrarch.CompileError) as refused:
        inrarch.compile(fn, torch.zeros(2, 1), width=16)
    message = str(refused.value)
    assert message.startswith("unsupported op torch.clamp (there is no clamp core: write clamp(x, lo, hi) as "
                              "lo + relu(x - lo) - relu(x - hi)) at ")
    assert "test_first_hour.py:" in message and "return torch.clamp(torch.sin(3 * x), -0.5, 0.5)" in message


KINDS = '''
import dataclasses

import torch


@dataclasses.dataclass
class Settings:  # a dataclass needs its module in sys.modules while the file runs
    hidden: int = 4


net = torch.nn.Linear(2, Settings().hidden)


class Needs(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()


def field(x, scale=2.0):
    return torch.sin(scale * net(x))


def make_field():
    return field


def pair(x, y):
    return x * y
'''


@pytest.mark.parametrize("attr,kind", [("net", "module"), ("field", "function"), ("make_field", "factory")])
def test_load_tells_apart_a_module_a_function_and_a_factory_by_their_signature(tmp_path, attr, kind):
    (tmp_path / "kinds.py").write_text(KINDS)
    loaded = load(f"{tmp_path / 'kinds.py'}:{attr}", option="function")
    assert loaded.kind == kind and not loaded.fresh
    assert loaded.value(torch.zeros(3, 2)).shape == (3, 4)


@pytest.mark.parametrize("attr,message", [
    ("Needs", "is the class Needs, whose constructor needs hidden: name the trained instance"),
    ("pair", "takes 2 arguments (x, y); only functions of one tensor are built"),
    ("Settings", "is the class Settings, not a torch.nn.Module"),
    ("missing", "has no attribute 'missing'"),
])
def test_load_refuses_what_it_cannot_build_in_one_line(tmp_path, attr, message):
    (tmp_path / "kinds.py").write_text(KINDS)
    with pytest.raises(inrarch.OptionError) as refused:
        load(f"{tmp_path / 'kinds.py'}:{attr}", option="model")
    assert refused.value.option == "model" and message in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
