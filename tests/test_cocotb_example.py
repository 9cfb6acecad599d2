"""The README's example, a cocotb test of one's own on a generated top.v, runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_cocotb_example_runs_as_written(tmp_path):
    text = README.read_text().split("## Your own cocotb testbench", 1)[1].split("\n## ", 1)[0]
    test_code, run_code = re.findall(r"```python\n(.*?)```", text, re.S)
    assert "Write `test_top.py`" in text and "`python run.py`" in text
    (tmp_path / "test_top.py").write_text(test_code)
    (tmp_path / "run.py").write_text(run_code)
    # As a user runs it: not under pytest, which cocotb's runner would otherwise detect.
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}
    result = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test_top.sine passed" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "1 of 1 cocotb tests passed"
    assert "module top" in (tmp_path / "top.v").read_text()
