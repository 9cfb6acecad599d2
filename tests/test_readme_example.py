"""The README's examples of "Using the cores in your own design" and "Formal proofs" run as written."""

import math
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_core_example_converts_and_simulates(capsys):
    text = README.read_text()
    section = text[text.index("## Using the cores in your own design"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert "module activation" in namespace["text"]
    printed = eval(capsys.readouterr().out.strip())
    inputs = [0, 1 << 10, -(1 << 12)]
    expected = [math.sin(30.0 * 2.0 * v * 2.0 ** -16) for v in inputs]
    assert all(abs(a - b) <= 2 * 2.0 ** -18 for a, b in zip(printed, expected))


def test_formal_readme_example_proves_the_output_protocol(capsys):
    """The "Formal proofs" example, on the component of the example before it."""
    text = README.read_text()
    cores_example = re.search(r"```python\n(.*?)```", text[text.index("## Using the cores in your own design"):], re.S)
    formal_example = re.search(r"```python\n(.*?)```", text[text.index("## Formal proofs"):], re.S)
    namespace = {}
    exec(compile(cores_example.group(1), str(README), "exec"), namespace)
    capsys.readouterr()
    exec(compile(formal_example.group(1), str(README), "exec"), namespace)
    assert capsys.readouterr().out.strip().startswith("activation: k-induction at length 2: PASS")
