"""Board support: names, the Vivado build plan, the analytic estimate, yosys synthesis and fit checks."""

import json
import subprocess
import sys

import pytest
import torch

import inrarch

from boards import AlveoU280Platform, board_device, get_board, list_boards
from boards.device import ECP5_CAPACITY
from boards.estimate import estimate
from inrarch.resources import design_resources
from boards.harness import mmcm_settings
from boards.plan import nextpnr_fmax
from boards.synth import check_fit, count_xilinx_cells
from devices import ULTRASCALE_PLUS


def run_build(*args, cwd):
    return subprocess.run([sys.executable, "-m", "inrarch.build", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """One tiny SIREN built for the U280 with --synth (yosys takes about a minute)."""
    cwd = tmp_path_factory.mktemp("u280")
    out = cwd / "out"
    result = run_build("--width", "4", "--depth", "1", "--batch", "2", "--synth", "--run-vendor",
                       "--out", str(out), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return out, result


def test_list_boards_names_ours_and_amaranth_boards(tmp_path):
    result = run_build("--list-boards", cwd=tmp_path)
    assert result.returncode == 0
    names = result.stdout.split()
    assert {"alveo_u280", "ulx3s_85f", "versa_ecp5", "icebreaker"} <= set(names)
    assert list_boards() == names
    assert get_board("versa_ecp5").__name__ == "VersaECP5Platform"


def test_unknown_board_is_one_line_exit_2(tmp_path):
    result = run_build("--board", "no_such_board", "--width", "4", "--depth", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]]
    assert "unknown board 'no_such_board'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_vivado_plan_targets_the_u280_part(synthesized):
    out, _ = synthesized
    plan = out / "board_plan"
    tcl = (plan / "board_top.tcl").read_text()
    assert "xcu280-fsvh2892-2L-e" in tcl
    assert 'add_files "inrarch_top.v"' in tcl and (plan / "inrarch_top.v").read_text() == (out / "top.v").read_text()
    xdc = (plan / "board_top.xdc").read_text()
    assert "BJ43" in xdc and "create_clock" in xdc and "D32" in xdc
    wrapper = (plan / "board_top.v").read_text()
    assert "MMCME4_BASE" in wrapper and "assign hbm_cattrip_0__o = 1'h0;" in wrapper
    assert "DONT_TOUCH" in wrapper and "top dataflow (" in wrapper
    assert (plan / "build_board_top.sh").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["board_plan"]["design_clock_mhz"] == 300.0
    assert report["vendor_run"]["ran"] is False and "build_board_top.sh" in report["vendor_run"]["how"]


def test_synth_reports_resources_against_capacity(synthesized):
    out, result = synthesized
    report = json.loads((out / "report.json").read_text())
    synth = report["synth"]
    assert synth["LUT"] > 0 and synth["FF"] > 0 and synth["DSP"] > 0 and synth["fits"]
    assert report["capacity"]["DSP"] == int(9_024 * 0.8)
    for name in ("LUT", "FF", "DSP", "BRAM36", "URAM"):
        assert f"synth {name}" in result.stdout
    assert "estimate" in result.stdout and report["estimate"]["DSP"] > 0
    assert "synthesizing with yosys" in result.stderr


def test_dsp_budget_below_the_estimate_is_exit_2(tmp_path):
    result = run_build("--width", "4", "--depth", "1", "--batch", "2", "--dsp-budget", "1",
                       "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert "over the budget of 1" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_mmcm_reaches_common_clocks_exactly():
    limits = ULTRASCALE_PLUS.mmcm
    for mhz in (100, 250, 300, 333.333, 450):
        settings = mmcm_settings(100.0, mhz, limits)
        assert 800 <= settings["vco_mhz"] <= 1600
        assert settings["output_mhz"] == pytest.approx(mhz, rel=1e-3)
    assert mmcm_settings(125.0, 300, limits)["output_mhz"] == pytest.approx(300)
    with pytest.raises(ValueError, match="outside"):
        mmcm_settings(100.0, 900, limits)


def test_dsp_and_memory_rules():
    dsps, memory_blocks = ULTRASCALE_PLUS.dsps, ULTRASCALE_PLUS.memory_blocks
    assert dsps(27, 18) == dsps(18, 27) == 1
    assert dsps(32, 32) == 4 and dsps(45, 18) == 2 and dsps(8, 2) == 0
    assert memory_blocks(32, 16) == {"BRAM36": 0.0, "URAM": 0, "LUTRAM_bits": 512}
    assert memory_blocks(18, 1024)["BRAM36"] == 0.5
    assert memory_blocks(72, 512)["BRAM36"] == 1
    assert memory_blocks(72, 16384) == {"BRAM36": 0.0, "URAM": 4, "LUTRAM_bits": 0}
    assert memory_blocks(72, 16384, initialized=True)["BRAM36"] == 32


def test_fit_check_and_cell_counts():
    counts = count_xilinx_cells({"LUT6": 10, "LUT2": 5, "RAM32M16": 2, "FDRE": 7, "FDSE": 1, "DSP48E2": 3,
                                 "RAMB36E2": 2, "RAMB18E2": 3, "CARRY8": 4})
    assert counts == {"LUT": 31, "FF": 8, "DSP": 3, "BRAM36": 3.5, "URAM": 0}
    device = AlveoU280Platform.fpga
    fits, rows = check_fit({**counts, "DSP": 8000}, device.capacity, device.usable_fraction)
    assert not fits and ("DSP", 8000, 7219) in rows
    seven = count_xilinx_cells({"DSP48E1": 2, "RAMB36E1": 1, "RAMB18E1": 1})
    assert seven["DSP"] == 2 and seven["BRAM36"] == 1.5


def test_nextpnr_fmax_takes_the_last_report():
    log = ("Info: Max frequency for clock '$glbnet$clk': 80.00 MHz (PASS at 25.00 MHz)\n"
           "Info: Max frequency for clock '$glbnet$clk': 72.51 MHz (PASS at 25.00 MHz)\n")
    assert nextpnr_fmax(log) == {"$glbnet$clk": {"achieved_mhz": 72.51, "target_mhz": 25.0, "pass": True}}


def test_budget_folds_matmul_parallelism_to_fit():
    model = inrarch.models.siren(in_features=2, hidden=16, layers=2, out_features=3, w0=30.0, seed=0)
    fn = inrarch.derivatives(model, 1)
    free = inrarch.compile(fn, torch.zeros(8, 2))
    budget = free.report["dsp_estimate"] - 20
    folded = inrarch.compile(fn, torch.zeros(8, 2), dsp_budget=budget)
    assert folded.report["dsp_estimate"] <= budget
    assert folded.report["period_cycles"] > free.report["period_cycles"]


def test_core_level_estimate_agrees_with_the_elaborated_netlist():
    model = inrarch.models.siren(in_features=2, hidden=8, layers=1, out_features=3, w0=30.0, seed=0)
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2))
    fast = design_resources(design.netlist, design.schedule.depths)
    exact = estimate(design.elaboratable)
    # Every core counts the Multipliers it builds, so the budget it enforces is the real netlist's.
    assert fast["DSP"] == exact["DSP"]
    assert fast["BRAM36"] == exact["BRAM36"] and fast["LUTRAM_bits"] == exact["LUTRAM_bits"]


def tiny_build(board, tmp_path, *args):
    """The output directory of a build of a tiny SIREN for ``board``."""
    out = tmp_path / "out"
    result = run_build("--board", board, "--width", "4", "--depth", "1", "--batch", "2", *args, "--out", str(out),
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return out


def test_vivado_plan_targets_the_u50_part_with_a_vitis_kernel(tmp_path):
    out = tiny_build("alveo_u50", tmp_path)
    plan = out / "board_plan"
    assert "xcu50-fsvh2104-2-e" in (plan / "board_top.tcl").read_text()
    xdc = (plan / "board_top.xdc").read_text()
    assert "G17" in xdc and "create_clock" in xdc and "J18" in xdc
    wrapper = (plan / "board_top.v").read_text()
    assert "MMCME4_BASE" in wrapper and "assign hbm_cattrip_0__o = 1'h0;" in wrapper
    report = json.loads((out / "report.json").read_text())
    assert report["board_plan"]["design_clock_mhz"] == 300.0
    kernel = report["vitis_kernel"]
    assert kernel["directory"] == "vitis_kernel" and (out / "vitis_kernel" / "kernel.xml").exists()
    assert kernel["platform"] == "xilinx_u50_gen3x16_xdma_5_202210_1"
    assert "--platform xilinx_u50_gen3x16_xdma_5_202210_1" in (out / "vitis_kernel" / "README.md").read_text()
    assert report["capacity"] == {"LUT": 697_600, "FF": 1_394_400, "DSP": 4_761, "BRAM36": 1_075, "URAM": 512}


def test_vivado_plan_targets_the_zcu102_part_without_a_kernel(tmp_path):
    out = tiny_build("zcu102", tmp_path, "--clock-mhz", "250")
    plan = out / "board_plan"
    assert "xczu9eg-ffvb1156-2-e" in (plan / "board_top.tcl").read_text()
    xdc = (plan / "board_top.xdc").read_text()
    assert "G21" in xdc and "AM13" in xdc and "AG14" in xdc
    assert "MMCME4_BASE" in (plan / "board_top.v").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["board_plan"]["board_clock_mhz"] == 125.0 and report["board_plan"]["design_clock_mhz"] == 250.0
    assert "vitis_kernel" not in report and not (out / "vitis_kernel").exists()
    assert report["capacity"]["DSP"] == int(2_520 * 0.8) and report["capacity"]["URAM"] == 0
    assert report["dsp_budget"] == int(2_520 * 0.8)


def test_amaranth_boards_get_their_family_devices():
    assert board_device(get_board("artya7_35")).multiplier == (25, 18)
    assert board_device(get_board("kcu105")).family == "UltraScale"
    assert board_device(get_board("rfsoc4x2")).family == "UltraScale+"
    assert board_device(get_board("ulx3s_85f")).multiplier == (18, 18)
    assert board_device(get_board("icebreaker")) is None
    assert board_device(AlveoU280Platform) is AlveoU280Platform.fpga


def test_ecp5_boards_state_their_parts_capacity():
    assert board_device(get_board("ulx3s_85f")).capacity == ECP5_CAPACITY["85F"]
    assert board_device(get_board("ulx3s_85f")).capacity["DSP"] == 156
    assert board_device(get_board("ulx3s_25f")).capacity["DSP"] == 28
    assert board_device(get_board("versa_ecp5")).capacity == ECP5_CAPACITY["45F"]
    # nextpnr places the 12F as the larger 25F die: no capacity is stated rather than a wrong one.
    assert board_device(get_board("ulx3s_12f")).capacity is None
