"""The Vitis kernel's memory safety, proved (:mod:`formal.kernel`) for the kernels of a small
design, with constant and with runtime weights (a weights buffer), at narrow widths
(``formal.kernel.NARROW``): the memory properties by k-induction, for any register values and runs
of any length; the byte-exact writes by bounded model checking over whole runs. ``python -m
bench.formal`` proves the kernels as built, with 64-bit addresses."""

import pytest

import boards.axi
from formal.design import siren_design
from formal.kernel import BYTES, MEMORY, NARROW, kernel_proof

#: Cycles of the byte-exact check: a run's last, partly written word is out by cycle 6, a whole
#: run of two samples done by cycle 12 (``bench.formal`` shows both covers).
BYTES_DEPTH = 13


@pytest.mark.parametrize("weights", ["constant", "runtime"])
def test_formal_kernel_memory_safety_by_induction(weights, tmp_path):
    result = kernel_proof(siren_design(weights), properties=(MEMORY,), mode="prove", depth=2, directory=tmp_path,
                          **NARROW)
    assert result.passed, result.summary()


def test_formal_kernel_writes_no_byte_outside_its_buffer(tmp_path):
    """On the kernel with a weights buffer: its output masters are the constant kernel's."""
    result = kernel_proof(siren_design("runtime"), properties=(BYTES,), mode="bmc", depth=BYTES_DEPTH,
                          directory=tmp_path, **NARROW)
    assert result.passed, result.summary()


def test_formal_kernel_burst_across_a_page_is_caught(tmp_path, monkeypatch):
    """Masters that split bursts at 8 KiB instead of 4 KiB: the proof finds a burst across 4 KiB."""
    monkeypatch.setattr(boards.axi, "PAGE_BYTES", 8192)
    result = kernel_proof(siren_design(), properties=(MEMORY,), mode="bmc", depth=8, directory=tmp_path, **NARROW)
    assert result.status == "fail", result.summary()
    assert any(name.endswith("_inside_page") for name in result.failed), result.summary()
