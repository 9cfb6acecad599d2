"""The README's "Using the cores in your own design" example runs as written."""

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
