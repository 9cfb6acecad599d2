"""``Design.simulate(x, trace=path)`` and ``build --simulate --trace`` write an FST of the run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import pywellen
import torch

import inrarch

# The CLI's default SIREN at --width 4 --depth 1 --batch 4: both tests share one traced Verilator build.
WIDTH, DEPTH, BATCH = 4, 1, 4


@pytest.fixture(scope="module")
def design():
    model = inrarch.models.siren(in_features=2, hidden=WIDTH, layers=DEPTH, out_features=3, w0=30.0, seed=0)
    return inrarch.compile(inrarch.derivatives(model, order=1), example_input=torch.zeros(BATCH, 2))


def signals(path):
    """The waveform's top-level signals by name."""
    wave = pywellen.Waveform(str(path))
    assert wave.file_format == "FST"
    return wave, {var.name: var for var in wave.all_vars() if var.full_name.startswith("top.")}


def transfers(path, port):
    """The payloads that moved on stream ``port``: at each rising clock edge where valid and ready were high."""
    wave, found = signals(path)
    edges = []
    wave.stream_changes(lambda time, _, value: edges.append(time) if value == 1 else None, [found["clk"]])
    valid, ready, payload = (found[f"{port}__{name}"].signal for name in ("valid", "ready", "payload"))
    return [payload.value_at(time - 1) for time in edges
            if time > 0 and valid.value_at(time - 1) and ready.value_at(time - 1)]


def test_simulate_traces_every_handshake_of_the_run(design, tmp_path):
    x = torch.rand(BATCH, 2) * 2 - 1
    plain = design.simulate(x)
    path = tmp_path / "run.fst"
    # A model built without tracing refuses to trace: the traced run needs a cache entry of its own.
    traced = design.simulate(x, trace=path, ready_prob=0.5)
    for a, b in zip(plain.outputs, traced.outputs):
        np.testing.assert_array_equal(a, b)
    assert path.read_bytes()[0] == 0  # an FST starts with its header block
    _, found = signals(path)
    ports = [f"{port}__{name}" for port in ("x", "y0", "y1") for name in ("payload", "valid", "ready")]
    assert {"clk", "rst", "overflow", *ports} <= set(found)
    assert transfers(path, "x") == [int(w) for w in design.input_format.to_unsigned(
        design.input_format.quantize(x.double().numpy().reshape(-1)))]
    for port in ("y0", "y1"):
        assert transfers(path, port) == traced.run.outputs[port]


def test_build_simulate_trace_writes_waves_into_the_output(design, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "inrarch.build", "--width", str(WIDTH), "--depth", str(DEPTH),
                             "--batch", str(BATCH), "--simulate", "--trace", "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["waves"] == "waves.fst" and "waves.fst" in result.stdout
    assert (out / "top.v").read_text() == design.verilog()
    assert len(transfers(out / "waves.fst", "y0")) == BATCH * 3
    assert [path.name for path in tmp_path.iterdir()] == ["out"]
