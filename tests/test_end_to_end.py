"""The backbone, end to end: torch gradients → Verilog → Verilator (cocotb) → compared with float64 torch."""

import numpy as np
import pytest
import torch

import inrarch
from inrarch.emulate import emulate

BATCH = 8


@pytest.fixture(scope="module")
def model():
    return inrarch.models.siren(in_features=2, hidden=16, layers=2, out_features=3, w0=30.0, seed=0)


@pytest.mark.parametrize("order", [1, 2])
def test_siren_gradients_run_in_verilator_and_match_torch(model, order):
    fn = inrarch.derivatives(model, order)
    design = inrarch.compile(fn, torch.zeros(BATCH, 2))
    x = torch.tensor(np.random.default_rng(order).uniform(-1.0, 1.0, size=(BATCH, 2)))
    result = design.simulate(x)
    reference = inrarch.reference(fn, x)
    assert len(result.outputs) == order + 1
    for k, (got, ref) in enumerate(zip(result.outputs, reference)):
        ref = ref.detach().numpy()
        assert got.shape == ref.shape == (BATCH, 3) + (2,) * k
        error = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
        assert error <= 1e-3, f"order-{k} output off by {error:.2e} of max|ref|"
    assert not result.overflow
    assert result.cycles == design.report["cycles_predicted"]
    # The software emulation the format search relies on is the hardware, word for word.
    for got, emulated in zip(result.outputs, emulate(design.graph, design.formats, x.numpy())):
        assert np.array_equal(got.reshape(BATCH, -1), emulated.reshape(BATCH, -1))


def test_report_has_the_contract_keys(model):
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2))
    for key in ("cycles_predicted", "clock_mhz", "latency_us", "fifo_bits", "multipliers"):
        assert key in design.report
    assert design.report["latency_us"] == pytest.approx(design.report["cycles_predicted"] / 300.0)
    assert design.report["fifo_bits"] == sum(f["depth"] * f["width"] for f in design.report["fifos"])


def test_same_inputs_give_byte_identical_verilog(model):
    first = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2)).verilog()
    second = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2)).verilog()
    assert first == second


def test_buffer_memory_does_not_grow_with_batch(model):
    fn = inrarch.derivatives(model, 1)
    bits = {batch: inrarch.compile(fn, torch.zeros(batch, 2)).report["fifo_bits"]
            for batch in (16, 64, 256)}
    assert len(set(bits.values())) == 1, bits
