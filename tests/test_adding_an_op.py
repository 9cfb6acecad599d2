"""``docs/adding-an-op.md``, applied as written to a stand-in op, ``erf``: the walkthrough's core and
registry entry (its code blocks, run here) make an op that compiles with its derivatives, runs in
Verilator within the tolerance of float64 torch, and that the registry-derived test lists and the formal
proofs take up."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import inrarch
from bench import registry
from cores.nonlinear import saturating
from formal import cores as formal_cores
from inrarch import ops

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-an-op.md"


def walkthrough():
    """The walkthrough's top-level Python blocks: the core, then the registry entry."""
    core, entry = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)
    return core, entry


@pytest.fixture
def erf(monkeypatch):
    """The walkthrough applied: ``Erf`` in ``cores/nonlinear/saturating.py``, ``erf`` in the registry."""
    core, entry = walkthrough()
    module = dict(vars(saturating))
    exec(compile(core, "docs/adding-an-op.md: the core", "exec"), module)
    for name in ("ErfModel", "Erf"):
        monkeypatch.setattr(saturating, name, module[name], raising=False)
    exec(compile(entry, "docs/adding-an-op.md: the registry entry", "exec"), {**vars(ops), "math": math})
    yield module["Erf"]
    del ops.OPS["erf"]
    ops.core_class.cache_clear()


def test_the_walkthrough_makes_an_op_that_runs_in_verilator(erf):
    def fn(x):
        return torch.erf(3.0 * x)

    design = inrarch.compile(fn, torch.zeros(8, 2))
    assert design.report["ops"]["erf"] == 1
    assert any(instance.blueprint.core is erf for instance in design.netlist.instances)
    x = torch.rand(8, 2) * 2 - 1
    result = design.simulate(x)
    reference = inrarch.reference(fn, x)[0].numpy()
    assert np.max(np.abs(result.outputs[0] - reference)) <= 1e-3 * np.max(np.abs(reference))
    assert result.cycles == design.report["cycles_predicted"] and not result.overflow


class Gelu(torch.nn.Module):
    """2 → 4 → 1 with the exact GELU, written with ``torch.erf`` as the walkthrough says."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)

    def forward(self, x):
        h = self.hidden(x)
        return self.out(0.5 * h * (1 + torch.erf(h / 2 ** 0.5)))


def test_derivatives_of_a_gelu_network_compile(erf):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Gelu()
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2))
    assert design.report["ops"]["erf"] >= 1 and design.report["ops"]["exp"] >= 1


def test_the_registry_derived_test_lists_take_the_op_up(erf):
    assert erf in registry.nonlinear_cores()
    assert registry.missing([(cls,) for cls in registry.nonlinear_cores() if cls is not erf]) == [erf]
    fin, fout = registry.small_formats(erf)
    assert (fin, fout) == ("q4.8", "q2.14")  # its bound, 1
    # The check tests/cores/test_nonlinear.py runs on a core without cases of its own: every input.
    core = erf.model(fin, fout)
    raw = np.arange(core.in_format.min_raw, core.in_format.max_raw + 1)
    exact = registry.float64(erf)(core.in_format.to_float(raw)) * 2.0 ** core.out_format.frac_bits
    assert np.max(np.abs(np.asarray(core.reference(raw), dtype=np.float64) - exact)) <= 2


def test_formal_proofs_take_the_op_up(erf, tmp_path):
    """The op's core is proved with no edit to ``formal.cores``: its stream contract over two
    whole firings, every output element against its reference."""
    assert "Erf" in formal_cores.instance_names() and not formal_cores.missing_instances()
    assert formal_cores.build("Erf").__class__ is erf
    result, spec = formal_cores.contract_proof("Erf", directory=tmp_path)
    assert result.passed, result.summary()
    assert not spec.unchecked, spec.unchecked
