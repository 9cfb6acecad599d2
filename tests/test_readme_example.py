"""The README's examples run as written: the Python API (its design is tests/test_end_to_end.py's
order-2 SIREN, so the Verilator build is shared), "Using the cores in your own design" and "Formal
proofs"."""

import math
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def run_readme_example(heading, namespace=None):
    """Run the first Python block of the README's section ``heading`` (in ``namespace``, a new one
    by default); returns its namespace."""
    text = README.read_text()
    section = text[text.index(heading):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {} if namespace is None else namespace
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_readme_core_example_converts_and_simulates(capsys):
    namespace = run_readme_example("## Using the cores in your own design")
    assert "module activation" in namespace["text"]
    printed = eval(capsys.readouterr().out.strip())
    inputs = [0, 1 << 10, -(1 << 12)]
    expected = [math.sin(30.0 * 2.0 * v * 2.0 ** -16) for v in inputs]
    assert all(abs(a - b) <= 2 * 2.0 ** -18 for a, b in zip(printed, expected))


def test_formal_readme_example_proves_the_output_protocol(capsys):
    """The "Formal proofs" example, on the component of the example before it."""
    namespace = run_readme_example("## Using the cores in your own design")
    capsys.readouterr()
    run_readme_example("## Formal proofs", namespace)
    assert capsys.readouterr().out.strip().startswith("activation: k-induction at length 2: PASS")
def test_readme_python_api_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it writes top.v
    namespace = run_readme_example("## Python API")
    assert namespace["check"].problems == []
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "within 1e-3 of float64 torch, as many cycles as predicted, no overflow"
    assert eval(printed[1])[2] == ("y2", "Hessian", [3, 2, 2], namespace["design"].report["output_formats"][2])
    assert (tmp_path / "top.v").read_text() == namespace["design"].verilog()
