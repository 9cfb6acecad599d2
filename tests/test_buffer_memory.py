"""Buffer memory: the report and the build summary count every writable on-chip buffer: FIFOs,
matmul input buffers and gather buffers."""

import pytest
import torch
from amaranth.hdl import Fragment, Shape
from amaranth.lib.memory import Memory

import inrarch
from inrarch.build import summary
from inrarch.resources import design_resources


def writable_memories(elaboratable):
    """Every :class:`~amaranth.lib.memory.Memory` with a write port in the elaborated design."""
    found = []

    def walk(fragment):
        found.extend(origin for origin in fragment.origins or ()
                     if isinstance(origin, Memory) and origin.write_ports)
        for child, _, _ in fragment.subfragments:
            walk(child)

    walk(Fragment.get(elaboratable, None))
    return found


@pytest.fixture(scope="module")
def small_design():
    model = inrarch.models.siren(in_features=2, hidden=4, layers=1, out_features=2, seed=0)
    return inrarch.compile(inrarch.derivatives(model, 1), torch.rand(4, 2) * 2 - 1)


def test_buffer_bits_are_every_writable_memory_of_the_design(small_design):
    design = small_design
    report = design.report
    by_kind = report["buffer_bits_by_kind"]
    assert set(by_kind) == {"FIFO", "MatVec", "Gather"}
    assert by_kind["FIFO"] == report["fifo_bits"]
    memory_bits = sum(m.depth * Shape.cast(m.shape).width for m in writable_memories(design.elaboratable))
    # A FIFO of depth d keeps d - 1 beats in its memory and one in its output register.
    fifo_registers = sum(entry["width"] for entry in report["fifos"])
    assert report["buffer_bits"] == sum(by_kind.values()) == memory_bits + fifo_registers
    assert report["buffer_bits"] > report["fifo_bits"]


def test_build_summary_shows_buffer_memory(small_design):
    report = {**small_design.report, "board": "alveo_u280", "order": 1,
              "estimate": design_resources(small_design.netlist, small_design.schedule.depths)}
    line = next(line for line in summary(report, "out").splitlines() if "buffer memory" in line)
    assert f"{report['buffer_bits'] / 8 / 1024:.1f} KiB" in line
    assert all(kind in line for kind in report["buffer_bits_by_kind"])
