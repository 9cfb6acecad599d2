"""The IR, its passes and capture need no hardware library: ``inrarch.ir`` imports, and a function
is captured, optimized and evaluated, with Amaranth impossible to import."""

import subprocess
import sys

SCRIPT = """
import sys

class NoAmaranth:
    def find_spec(self, name, path=None, target=None):
        if name == "amaranth" or name.startswith("amaranth."):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, NoAmaranth())

import numpy as np
import torch
import inrarch
from inrarch import ir
from inrarch.capture import capture
from inrarch.passes import optimize

model = inrarch.models.siren(in_features=2, hidden=4, layers=1, out_features=1, w0=30.0, seed=0)
fn = inrarch.derivatives(model, 1)
graph = optimize(capture(fn, torch.zeros(2, 2))[0])
x = np.random.default_rng(0).uniform(-1, 1, (3, 2))
values = ir.evaluate(graph, x)
expected = inrarch.reference(fn, torch.tensor(x))
assert all(np.allclose(values[node].reshape(ref.shape), ref.numpy()) for node, ref in zip(graph.outputs, expected))
assert not any(name.split(".")[0] in ("amaranth", "cores") for name in sys.modules)
"""


def test_the_ir_captures_and_evaluates_without_amaranth():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
