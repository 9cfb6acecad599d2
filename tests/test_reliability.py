"""Reliability of a compiled design: stalls at its ports, overflow reporting, bad inputs, determinism.

One small design (SIREN 2→8→3, first order) is built in Verilator once for the module and run
with and without valid-gaps and back-pressure; a second, with a too-narrow forced format, must
report the core that overflowed. Input checks run without any simulation.
"""

import dataclasses
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import inrarch
import sim
from inrarch import ir
from inrarch.verification import check_simulation

BATCH = 16
STALLS = [  # (valid_prob, ready_prob, seed)
    (0.3, 1.0, 1),   # input valid-gaps only
    (1.0, 0.3, 2),   # output back-pressure only
    (0.5, 0.5, 3),   # both
    (0.9, 0.2, 4),   # heavy back-pressure
]


def _siren_fn():
    return inrarch.derivatives(inrarch.models.siren(2, 8, 1, 3, 30.0, 0), 1)


@pytest.fixture(scope="module")
def fn():
    return _siren_fn()


@pytest.fixture(scope="module")
def design(fn):
    return inrarch.compile(fn, torch.zeros(BATCH, 2))


@pytest.fixture(scope="module")
def x():
    return torch.tensor(np.random.default_rng(8).uniform(-1.0, 1.0, size=(BATCH, 2)))


@pytest.fixture(scope="module")
def unstalled(design, x):
    return design.simulate(x)


def test_unstalled_run_matches_torch_and_the_prediction(design, fn, x, unstalled):
    assert check_simulation(design, unstalled, inrarch.reference(fn, x), 1e-3) == []
    assert unstalled.cycles == design.report["cycles_predicted"]
    assert not unstalled.overflow
    assert unstalled.overflow_core is None and unstalled.overflow_op is None


def test_the_check_names_a_wrong_output_and_a_wrong_cycle_count(design, fn, x, unstalled):
    references = inrarch.reference(fn, x)
    late = dataclasses.replace(unstalled, cycles=unstalled.cycles + 1)
    assert check_simulation(design, late, references, 1e-3) == [
        f"{unstalled.cycles + 1} cycles simulated, {unstalled.cycles} predicted"]
    outputs = [output.copy() for output in unstalled.outputs]
    outputs[1][3, 0, 1] += 0.01 * float(references[1].abs().max())
    off = dataclasses.replace(unstalled, outputs=outputs)
    [problem] = check_simulation(design, off, references, 1e-3)
    off_by = re.fullmatch(r"output y1 is off by (\S+) × max\|ref\|, over the tolerance 0\.001", problem)
    assert off_by and float(off_by[1]) == pytest.approx(0.01, abs=1e-3), problem


def _environment_stalls(run, seed, ready_prob):
    """Cycles from the first accepted input on in which the test bench held the design up: an input
    port with words left was not offering one, or an output port with words left was not ready.

    The not-ready cycles are recovered by replaying the bench's back-pressure draws, which
    ``sim.cocotb_streams`` makes with ``random.Random(f"{seed}:{port}")``, one per cycle while the
    port still expects words; every taken word must fall in a replayed ready cycle.
    """
    stalled = set()
    for port, accepts in run.accepts.items():
        arrivals = run.arrivals[port]
        for previous, offered in zip(accepts, arrivals[1:]):
            stalled.update(range(previous + 1, offered))
    if ready_prob < 1.0:
        for port, emits in run.emits.items():
            draw = random.Random(f"{seed}:{port}").random
            taken = set(emits)
            for cycle in range(emits[-1] + 1):
                ready = draw() < ready_prob
                if cycle in taken:
                    assert ready, f"replayed back-pressure of {port} disagrees with the run: the bench changed"
                elif not ready:
                    stalled.add(cycle)
    return len([cycle for cycle in stalled if cycle >= run.first_accept])


@pytest.mark.parametrize("valid_prob, ready_prob, seed", STALLS)
def test_stalls_change_no_output_word(design, x, unstalled, valid_prob, ready_prob, seed):
    stalled = design.simulate(x, valid_prob=valid_prob, ready_prob=ready_prob, seed=seed)
    # Bit-exact, whole sequences: a lost, duplicated or reordered sample changes them.
    assert stalled.run.outputs == unstalled.run.outputs
    for port, words in stalled.run.outputs.items():
        assert len(words) == len(stalled.run.emits[port])
        assert stalled.run.emits[port] == sorted(set(stalled.run.emits[port]))
    assert len(stalled.run.accepts["x"]) == BATCH * 2
    assert not stalled.overflow
    # A stall can only delay the design, and each cycle the bench holds it up delays it by at most
    # one cycle: every core waits on its handshakes alone, so the design's timing is monotone and
    # shift-invariant in the environment's (measured bound on this design: 0.4-0.9 of the stalls).
    holdups = _environment_stalls(stalled.run, seed, ready_prob)
    assert holdups > 0
    assert unstalled.cycles <= stalled.cycles <= unstalled.cycles + holdups


@pytest.fixture(scope="module")
def narrow(fn):
    return inrarch.compile(fn, torch.zeros(BATCH, 2), format="q2.6")


def test_overflow_names_the_core_that_saturated(narrow, fn, x):
    with pytest.warns(RuntimeWarning, match=r"overflow: the \w+ core \w+") as caught:
        result = narrow.simulate(x)
    assert result.overflow
    code = result.run.status["overflow_core"]
    culprit = narrow.overflow_source(code)
    assert culprit is not None and culprit.node.op != "input"
    assert (result.overflow_core, result.overflow_op) == (culprit.name, culprit.node.op) == \
        (culprit.node.name, culprit.node.op)
    message = str(caught[0].message)
    assert f"the {culprit.node.op} core {culprit.name}" in message and "q2.6" in message
    problems = check_simulation(narrow, result, inrarch.reference(fn, x), 1e-3)
    assert problems[-1] == (f"overflow: the {culprit.node.op} core {culprit.name} saturated values beyond the "
                            f"±{culprit.format.max_value:g} of its format q2.6")
    # The flagged node really leaves its format's range in exact arithmetic.
    values = ir.evaluate(narrow.graph, x.numpy().reshape(BATCH, *narrow.graph.input.shape))[culprit.node]
    assert np.max(np.abs(values)) > culprit.format.max_value


class _Simulated(Exception):
    """Raised by the stand-in simulator: the inputs passed every check."""


@pytest.fixture
def no_simulator(monkeypatch):
    """Replace the simulator: input checks must reject bad inputs before anything is simulated."""
    def refuse(*args, **kwargs):
        raise _Simulated(kwargs["inputs"])
    monkeypatch.setattr(sim, "run_verilog", refuse)
    monkeypatch.setattr(inrarch.Design, "verilog", lambda self: "")


@pytest.mark.parametrize("bad, kind", [(float("nan"), "NaN"), (float("inf"), "infinite"),
                                       (-float("inf"), "infinite")])
def test_non_finite_inputs_are_refused_before_simulation(design, no_simulator, bad, kind):
    x = torch.zeros(4, 2)
    x[2, 1] = bad
    with pytest.raises(inrarch.InrarchError, match=rf"{kind} values \(in sample 2\).*finite"):
        design.simulate(x)
    with pytest.raises(inrarch.InrarchError, match=kind):
        design.simulate(x.numpy().tolist())


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(0, 2), "no samples"),
    (torch.zeros(4, 3), r"shape \(4, 3\) do not hold samples of shape \(2,\)"),
    (torch.zeros(5), "do not hold samples"),
    (torch.zeros(4, 2, dtype=torch.complex64), "real numbers"),
    (torch.zeros(4, 2, dtype=torch.bool), "real numbers"),
    (np.array([["a", "b"]]), "real numbers"),
    ([[0.0, 0.1], [0.2]], "not an array of numbers"),
])
def test_malformed_inputs_are_refused_before_simulation(design, no_simulator, bad, message):
    with pytest.raises(inrarch.InrarchError, match=message):
        design.simulate(bad)


def test_any_real_dtype_reaches_the_simulator(design, no_simulator):
    for x in (torch.zeros(4, 2, dtype=torch.bfloat16), torch.zeros(4, 2, dtype=torch.int32),
              np.zeros((4, 2), dtype=np.float32), [[0.5, -0.5]]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(_Simulated):
                design.simulate(x)


def test_inputs_outside_the_domain_are_warned_about(design, no_simulator):
    x = torch.zeros(4, 2)
    x[1, 0] = 1.5
    with pytest.warns(UserWarning, match=r"inputs span \[0, 1.5\] in element 0, outside the domain \[-1, 1\]") as caught:
        with pytest.raises(_Simulated):
            design.simulate(x)
    assert "clipped" not in str(caught[0].message)
    x[1, 0] = -40.0  # beyond the input format (q2.x) as well
    with pytest.warns(UserWarning, match=rf"clipped to the input format {design.input_format}"):
        with pytest.raises(_Simulated):
            design.simulate(x)


_FINGERPRINT = textwrap.dedent("""
    import hashlib, json, torch, inrarch
    fn = inrarch.derivatives(inrarch.models.siren(2, 8, 1, 3, 30.0, 0), 1)
    design = inrarch.compile(fn, torch.zeros(16, 2))
    report = {key: value for key, value in design.report.items() if not key.endswith("_seconds")}
    print(hashlib.sha256(design.verilog().encode()).hexdigest())
    print(hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest())
""")


def test_same_model_and_options_give_identical_verilog_and_report(design):
    # Separate processes with different hash seeds: set and dict orders must not leak into the output.
    runs = [subprocess.Popen([sys.executable, "-c", _FINGERPRINT], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONHASHSEED": str(hash_seed)})
            for hash_seed in (1, 2)]
    fingerprints = [run.communicate(timeout=600)[0].split() for run in runs]
    assert all(run.returncode == 0 for run in runs)
    report = {key: value for key, value in design.report.items() if not key.endswith("_seconds")}
    here = [hashlib.sha256(design.verilog().encode()).hexdigest(),
            hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()]
    assert fingerprints[0] == fingerprints[1] == here
