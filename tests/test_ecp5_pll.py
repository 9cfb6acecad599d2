"""ECP5 boards make the design clock with the EHXPLLL at ``--clock-mhz``, constrained there for nextpnr,
and a board build that runs too long is stopped with every tool it started."""

import json
import subprocess
import sys
import time
from fractions import Fraction

import pytest

from boards import get_board
from boards.harness import pll_settings
from boards.plan import BuildTimeout, nextpnr_cells, run_build_plan
from devices import ECP5

LIMITS = ECP5.pll


def reachable(input_mhz):
    """Every frequency an EHXPLLL with its feedback from CLKOP makes from ``input_mhz``, however it is divided."""
    def in_range(value, limits):
        return limits[0] <= value <= limits[1]

    def divisions(limits):
        return range(limits[0], limits[1] + 1)

    pfds = [Fraction(input_mhz) / clki_div for clki_div in divisions(LIMITS.clki_div)]
    outputs = {pfd * clkfb_div for pfd in pfds if in_range(pfd, LIMITS.pfd_mhz)
               for clkfb_div in divisions(LIMITS.clkfb_div)}
    return {output for output in outputs if in_range(output, LIMITS.output_mhz)
            and any(in_range(output * clkop_div, LIMITS.vco_mhz) for clkop_div in divisions(LIMITS.clkop_div))}


@pytest.mark.parametrize("target,dividers", [
    # (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE), as prjtrellis's ecppll -i 25 -o TARGET chooses them
    (50, (1, 2, 12, 6)), (150, (1, 6, 4, 2)), (200, (1, 8, 3, 1)), (133.33, (3, 16, 5, 2))])
def test_the_pll_makes_common_clocks_from_25_mhz_within_its_limits(target, dividers):
    settings = pll_settings(25.0, target, LIMITS)
    assert (settings["clki_div"], settings["clkfb_div"], settings["clkop_div"], settings["clkop_cphase"]) == dividers
    assert LIMITS.pfd_mhz[0] <= settings["pfd_mhz"] == 25.0 / settings["clki_div"] <= LIMITS.pfd_mhz[1]
    assert LIMITS.vco_mhz[0] <= settings["vco_mhz"] <= LIMITS.vco_mhz[1]
    assert settings["vco_mhz"] == pytest.approx(settings["output_mhz"] * settings["clkop_div"])
    assert settings["output_mhz"] == pytest.approx(25.0 / settings["clki_div"] * settings["clkfb_div"])
    assert settings["output_mhz"] == pytest.approx(target, abs=0.005)


@pytest.mark.parametrize("target", [147.0, 133.33, 99.9])
def test_the_pll_makes_the_closest_reachable_frequency(target):
    closest = min(abs(float(frequency) - target) for frequency in reachable(25))
    assert abs(pll_settings(25.0, target, LIMITS)["output_mhz"] - target) == pytest.approx(closest)


@pytest.mark.parametrize("input_mhz,target", [(25.0, 450.0), (25.0, 5.0), (4.0, 100.0)])
def test_what_the_pll_cannot_make_is_refused(input_mhz, target):
    with pytest.raises(ValueError, match="outside what the ECP5 PLL takes"):
        pll_settings(input_mhz, target, LIMITS)


def test_the_ulx3s_plan_clocks_the_design_from_the_pll_and_constrains_it(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "inrarch.build", "--board", "ulx3s_85f", "--width", "4", "--depth",
                             "1", "--batch", "2", "--clock-mhz", "150", "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / "report.json").read_text())["board_plan"]
    assert plan["pll"] == pll_settings(25.0, 150.0, LIMITS)
    assert (plan["board_clock_mhz"], plan["requested_clock_mhz"], plan["design_clock_mhz"]) == (25.0, 150.0, 150.0)
    assert plan["part"] == "LFE5U-85F-6BG381C"
    assert "150 MHz from the 25 MHz board clock via EHXPLLL)" in result.stdout

    netlist = (out / "board_plan" / "board_top.il").read_text()
    pll = netlist[netlist.index("cell \\EHXPLLL"):]
    pll = pll[:pll.index("\n  end")]
    for parameter in ("CLKI_DIV 1", "CLKFB_DIV 6", "CLKOP_DIV 4", "CLKOP_CPHASE 2", 'FEEDBK_PATH "CLKOP"'):
        assert f"parameter \\{parameter}\n" in pll
    # The PLL drives the design's clock; the kept wire design_clock names that net for the constraint.
    assert "connect \\CLKOP \\clk\n" in pll and "connect \\CLKFB \\clk [0]\n" in pll
    assert "attribute \\keep 1\n  wire width 1 \\design_clock\n" in netlist
    assert "connect \\design_clock \\clk [0]\n" in netlist
    constraints = (out / "board_plan" / "board_top.lpf").read_text()
    assert 'FREQUENCY NET "design_clock" 150000000.0 HZ;' in constraints
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in constraints
    script = (out / "board_plan" / "build_board_top.sh").read_text()
    assert "--timing-allow-fail --report board_top.report.json" in script


def test_nextpnr_cells_are_the_used_rows_of_its_device_utilisation():
    log = ("Info: Device utilisation:\n"
           "Info: \t          TRELLIS_IO:       2/    365     0%\n"
           "Info: \t          MULT18X18D:      25/    156    16%\n"
           "Info: \t              ALU54B:       0/     78     0%\n"
           "Info: \t        TRELLIS_COMB:    3384/  83640     4%\n"
           "\n"
           "Info: Placed 3 cells based on constraints.\n")
    assert nextpnr_cells(log) == {"TRELLIS_IO": 2, "MULT18X18D": 25, "TRELLIS_COMB": 3384}
    assert nextpnr_cells("Info: Packing IOs..\n") == {}


def test_a_build_over_its_time_limit_is_stopped_with_the_tools_it_started(tmp_path):
    # The build script starts a tool and waits for it, as the open flow's script waits for nextpnr.
    (tmp_path / "build_board_top.sh").write_text("sleep 60 &\necho $! > tool.pid\nwait\n")
    start = time.monotonic()
    with pytest.raises(BuildTimeout, match="longer than 1 s"):
        run_build_plan(get_board("ulx3s_85f"), tmp_path, timeout=1)
    assert time.monotonic() - start < 10
    tool = int((tmp_path / "tool.pid").read_text())
    deadline = time.monotonic() + 5
    while _running(tool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(tool)


def _running(pid):
    """Whether ``pid`` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
