"""The device model: DSP multiplier widths, the one memory rule, and both reaching the compiler."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

import inrarch
from boards import board_device, get_board
from boards.device import ECP5_USABLE_FRACTION
from cores.dsp import DSP48E2_REGISTERED, MULT18X18D_REGISTERED
from cores.rom import DP16KD_REGISTERED
from cores.pipelining import UNPIPELINED, Pipelining
from devices import DSP48E1, DSP48E2, ECP5, MULT18X18D, SERIES7, ULTRASCALE, ULTRASCALE_PLUS
from inrarch.resources import design_resources
from inrarch.solver_report import fifo_entries


def test_families_carry_their_dsp_multipliers():
    assert ULTRASCALE_PLUS.multiplier == ULTRASCALE.multiplier == DSP48E2 == (27, 18)
    assert SERIES7.multiplier == DSP48E1 == (25, 18)
    assert ECP5.multiplier == MULT18X18D == (18, 18)
    assert ULTRASCALE_PLUS.weight_widths == (18, 27)
    assert SERIES7.weight_widths == (18, 25) and ECP5.weight_widths == (18,)
    # A 28 x 18 product fits one DSP48E2 (27 bits and a 1-bit LUT piece) but takes two DSP48E1s and
    # two 18 x 18 multipliers.
    assert ULTRASCALE_PLUS.dsps(28, 18) == 1 and SERIES7.dsps(28, 18) == 2 and ECP5.dsps(28, 18) == 2
    assert ECP5.dsps(28, 28) == 4


@pytest.mark.parametrize("width, depth, kind", [
    (32, 2, "LUTRAM"), (1024, 32, "LUTRAM"), (32, 64, "LUTRAM"),
    (16, 65, "BRAM"), (16, 99, "BRAM"), (32, 4096, "BRAM"), (72, 2048, "BRAM"),
    (72, 16384, "URAM"), (32, 16384, "URAM"),
])
def test_memory_kind_follows_the_block_count(width, depth, kind):
    assert ULTRASCALE_PLUS.memory_kind(width, depth) == kind
    blocks = ULTRASCALE_PLUS.memory_blocks(width, depth)
    assert (blocks["LUTRAM_bits"] > 0, blocks["BRAM36"] > 0, blocks["URAM"] > 0) == (
        kind == "LUTRAM", kind == "BRAM", kind == "URAM")


def test_a_100_deep_fifo_memory_is_half_a_bram36():
    # A 100-deep FIFO keeps 99 beats in its memory: more than distributed RAM's 64 entries.
    assert ULTRASCALE_PLUS.memory_kind(16, 99) == "BRAM"
    assert ULTRASCALE_PLUS.memory_blocks(16, 99) == {"BRAM36": 0.5, "URAM": 0, "LUTRAM_bits": 0}


def test_initialized_memories_and_parts_without_uram_stay_in_block_ram():
    assert ULTRASCALE_PLUS.memory_kind(72, 16384, initialized=True) == "BRAM"
    assert SERIES7.memory_kind(72, 16384) == "BRAM"
    zcu102 = board_device(get_board("zcu102"))
    assert not zcu102.uram and zcu102.memory_kind(72, 16384) == "BRAM"
    assert board_device(get_board("alveo_u50")).memory_kind(72, 16384) == "URAM"


def test_part_adds_capacity_to_the_family():
    part = ULTRASCALE_PLUS.part(capacity={"DSP": 100, "URAM": 0}, usable_fraction=0.5, vitis=True)
    assert part.usable == {"DSP": 50, "URAM": 0} and part.vitis and not part.uram
    assert part.multiplier == ULTRASCALE_PLUS.multiplier and ULTRASCALE_PLUS.capacity is None


def _siren(hidden=8):
    model = inrarch.models.siren(in_features=2, hidden=hidden, layers=1, out_features=3, w0=30.0, seed=0)
    return inrarch.derivatives(model, 1)


def test_fifo_report_and_estimate_use_one_memory_rule():
    device = board_device(get_board("alveo_u280"))
    design = inrarch.compile(_siren(), torch.zeros(4, 2), device=device)
    fifos = design.report["fifos"]
    for entry in fifos:
        assert entry["memory"] == device.memory_kind(entry["width"], entry["depth"] - 1)
    # With every FIFO in distributed RAM, the estimate counts each FIFO memory's bits as LUTRAM.
    assert {entry["memory"] for entry in fifos} == {"LUTRAM"}
    no_fifos = design_resources(design.netlist, design.schedule.depths, device)["LUTRAM_bits"] - sum(
        entry["width"] * (entry["depth"] - 1) for entry in fifos)
    deep_fifos = dict.fromkeys(design.netlist.streams, 100)
    deep = design_resources(design.netlist, deep_fifos, device)
    assert deep["LUTRAM_bits"] == no_fifos
    assert {entry["memory"] for entry in fifo_entries(design.netlist, deep_fifos, device)} == {"BRAM"}


def test_7_series_multipliers_reach_lowering():
    fn = _siren()
    x = torch.zeros(4, 2)
    wide = inrarch.compile(fn, x, width=28)
    seven = inrarch.compile(fn, x, width=28, device=SERIES7)
    blueprints = list({id(i.blueprint): i.blueprint for i in seven.netlist.instances}.values())
    multipliers = [multiplier for blueprint in blueprints for multiplier in blueprint.model.multipliers]
    # Every multiplier of every core (matmuls, sines, element-wise products) is split for the DSP48E1.
    assert {blueprint.core.__name__ for blueprint in blueprints if blueprint.model.multipliers} >= {"MatVec", "Sin"}
    assert multipliers and all(multiplier.dsp_shape == DSP48E1 for multiplier in multipliers)
    matvecs = [blueprint.model for blueprint in blueprints if blueprint.core.__name__ == "MatVec"]
    assert all(core.weight_format.width == 18 for core in matvecs)
    # 28-bit inputs times 18-bit weights: one DSP48E2 per product (and a LUT piece), two DSP48E1s.
    assert all(core.multiplier.dsps == 2 for core in matvecs)
    assert seven.report["dsp_estimate"] == sum(multiplier.dsps for multiplier in multipliers)
    assert seven.report["dsp_estimate"] > wide.report["dsp_estimate"]


def test_the_format_search_tries_the_device_weight_widths():
    seven = inrarch.compile(_siren(4), torch.zeros(2, 2), tolerance=1e-4, device=SERIES7)
    # 18-bit weights bound the error above this target: the search widens them to the DSP48E1's 25-bit port.
    assert seven.report["format_search"]["weight_width"] == 25
    ecp5 = inrarch.compile(_siren(4), torch.zeros(2, 2), device=ECP5)
    assert ecp5.report["format_search"]["weight_width"] == 18


def test_a_compile_for_a_board_folds_into_its_multipliers_by_default():
    """The order-2 SIREN 2→8→8→3 at full parallelism needs more MULT18X18D than the share of the ULX3S
    85F's 156 that the open flow routes."""
    model = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=3, w0=30.0, seed=0)
    fn = inrarch.derivatives(model, 2)
    x = torch.zeros(8, 2)
    unlimited = inrarch.compile(fn, x, device=ECP5)
    ulx3s = inrarch.compile(fn, x, device=board_device(get_board("ulx3s_85f")))
    assert ulx3s.report["dsp_budget"] == int(156 * ECP5_USABLE_FRACTION)
    assert unlimited.report["dsp_estimate"] > ulx3s.report["dsp_budget"]
    assert ulx3s.report["dsp_estimate"] <= ulx3s.report["dsp_budget"]


def test_the_device_chooses_the_pipeline_registers_from_the_clock():
    in_primitives = dataclasses.replace(UNPIPELINED, dsp=MULT18X18D_REGISTERED, rom=DP16KD_REGISTERED)
    assert ECP5.pipelining(50.0) == ECP5.pipelining(ECP5.unpipelined_max_mhz) == in_primitives
    assert (ECP5.pipelining(ECP5.unpipelined_max_mhz + 1) == ECP5.pipelining(150.0)
            == Pipelining(dsp=MULT18X18D_REGISTERED, rom=DP16KD_REGISTERED))
    # no placed evidence for the Xilinx families: every clock gets every register
    assert all(device.pipelining(10.0) == Pipelining(dsp=DSP48E2_REGISTERED) for device in (ULTRASCALE_PLUS, ULTRASCALE))
    # yosys packs the registers of the 7 series' DSP48E1 itself: its products stay a `*`
    assert SERIES7.pipelining(10.0) == Pipelining()


def test_a_slow_clock_builds_fewer_pipeline_stages_that_the_simulation_keeps_to():
    model = inrarch.models.siren(in_features=2, hidden=8, layers=1, out_features=3, w0=30.0, seed=0)
    slow, fast = (inrarch.compile(model, torch.zeros(4, 2), device=ECP5, clock_mhz=mhz) for mhz in (50.0, 150.0))
    assert slow.report["pipelining"] == {**UNPIPELINED.as_dict(), "dsp": "MULT18X18D", "rom": "DP16KD"}
    assert fast.report["pipelining"] == {**Pipelining().as_dict(), "dsp": "MULT18X18D", "rom": "DP16KD"}
    for design in (slow, fast):
        sines = [i.core for i in design.netlist.instances if i.node.op == "sin"]
        assert sines and all(core.pipelining == design.options.pipelining for core in sines)
    assert slow.report["first_sample_cycles"] < fast.report["first_sample_cycles"]
    assert slow.report["cycles_predicted"] < fast.report["cycles_predicted"]
    x = torch.tensor(np.random.default_rng(0).uniform(-1.0, 1.0, size=(4, 2)), dtype=torch.float32)
    result = slow.simulate(x)
    assert result.cycles == slow.report["cycles_predicted"] and not result.overflow
    reference = copy.deepcopy(model).double()(x.double()).detach().numpy()
    assert np.max(np.abs(result.outputs[0] - reference)) <= 1e-3 * np.max(np.abs(reference))
